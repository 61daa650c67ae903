"""What changed since the last successful send: hashes and the export plan, computed inside DuckDB.

`icomm_sent` holds, per e-mail (icomm's contact identity), the hash of the last send icomm confirmed;
`icomm_dead_letter` holds what icomm refused or never confirmed, and is always planned again.
A contact is "changed" when the values it would be sent (formatted in SQL by `fields.sql_format_expr`)
differ from the ones last confirmed. The stored hash has two halves, 16 hex digits each:

* values hash: DuckDB's 64-bit `hash(fingerprint, value1, value2, ...)` of the formatted values, the
  fingerprint being a hash of the profile key and the exported field names, so pointing the export at
  another profile, or renaming a field, re-sends everyone. It decides what is sent.
* source hash: `hash(source fingerprint, column1, column2, ...)` of the profile columns as stored, the
  fingerprint covering everything else the formatting depends on (formats, list lengths, bool strings,
  column types, time zone, DuckDB version). Equal source hashes mean equal values, so the contacts whose
  source hash is the stored one are decided without formatting anything.

Formatting (~60 fields, lists joined and cut at 250 characters) is most of the cost, so a daily plan reads
every profile once for the source hash and formats only the new, retried and source-changed contacts:
on 2 cores, a million profiles with 2% changed are planned in about 1.6 s, a first plan (all new) in 5 s.

Hashes stored before this scheme (sha256 of the JSON of the formatted values, 64 hex digits) never match:
after the upgrade every contact is "changed" and re-sent once, then the new hashes apply. DuckDB's
`hash()` is not promised to stay the same across DuckDB versions: a version that changes it re-sends
everyone once too (a version that only formats differently re-sends just the contacts whose values change).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import duckdb

from vtex_pipeline.icomm.fields import (
    FieldMapping,
    MappingError,
    _quote_ident,
    _quote_str,
    sql_format_expr,
    sql_list_join_expr,
)
from vtex_pipeline.warehouse.schema import apply_schema
from vtex_pipeline.warehouse.sql_files import read_sql

PROFILE_TABLE = "customer_profile"
PLAN_TABLE = "_icomm_plan"
SEND_ACTIONS = ("new", "changed", "retry")
ACTIONS = ("new", "changed", "retry", "unchanged", "skipped_no_email", "skipped_duplicate_email")
ALIAS_DOMAIN = "ct.vtex.com.br"
EMAIL_PATTERN = r"[^@\s,;]+@[^@\s,;]+\.[^@\s,;]+"

SCHEMA_SQL = "icomm/create_icomm_tables.sql"


def ensure_tables(conn: duckdb.DuckDBPyConnection) -> None:
    """Create the sink's state tables, or add the columns an older file lacks (idempotent)."""
    apply_schema(conn, read_sql(SCHEMA_SQL))


def deliverable_sql(expr: str) -> str:
    """SQL predicate: `expr` (a lower-cased, trimmed e-mail) is an address icomm can deliver to."""
    return (
        f"({expr} IS NOT NULL AND regexp_full_match({expr}, '{EMAIL_PATTERN}') "
        f"AND NOT ends_with({expr}, '{ALIAS_DOMAIN}'))"
    )


@dataclass
class ExportPlan:
    """Counts per action and the temp table holding the contacts to send, numbered 1..to_send."""

    counts: dict[str, int]
    keys: list[str]
    to_send: int
    table: str = PLAN_TABLE
    dead_letter_replanned: int = 0
    columns: list[str] = field(default_factory=list)

    def batches(self, conn: duckdb.DuckDBPyConnection, size: int) -> Iterator[list[dict[str, Any]]]:
        """Rows to send, `size` at a time. Each page is a separate query, so the caller may write
        to the same connection between pages."""
        values = ", ".join(f"v{i}" for i in range(len(self.keys)))
        select_values = f", {values}" if values else ""
        for start in range(0, self.to_send, size):
            rows = conn.execute(
                f"SELECT email, customer_id, as_of, hash{select_values} FROM {self.table} "
                "WHERE rn > ? AND rn <= ? ORDER BY rn",
                [start, start + size],
            ).fetchall()
            yield [
                {
                    "email": r[0],
                    "customer_id": r[1],
                    "as_of": r[2],
                    "hash": r[3],
                    "contact": {
                        "Email": r[0],
                        "CustomFields": [
                            {"Key": k, "Value": v} for k, v in zip(self.keys, r[4:], strict=True)
                        ],
                    },
                }
                for r in rows
            ]


def mapping_fingerprint(mapping: FieldMapping, profile_key: str) -> str:
    """sha256 of the target profile and the exported field names: the first value of every values hash."""
    doc = {"profile": profile_key, "keys": [f.key for f in mapping.exported]}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def source_fingerprint(mapping: FieldMapping, profile_key: str, types: dict[str, str], timezone: str) -> str:
    """sha256 of everything but the profile values that the formatted values depend on: the target profile,
    the mapping (formats, list lengths, bool strings), the column types, the session time zone and the
    DuckDB version. The first value of every source hash, so equal source hashes mean equal formatted values."""
    doc = {
        "profile": profile_key,
        "fields": [
            [f.column, f.key, f.format, mapping.max_length(f), types[f.column]] for f in mapping.exported
        ],
        "bool_values": list(mapping.bool_values),
        "timezone": timezone,
        "duckdb": duckdb.__version__,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def _columns(conn: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    rows = conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = ? AND table_schema = current_schema() ORDER BY ordinal_position",
        [table],
    ).fetchall()
    return {r[0]: r[1] for r in rows}


def _hex_hash(values: list[str]) -> str:
    """SQL: DuckDB's 64-bit hash of `values` (in order) as 16 hex digits."""
    return f"printf('%016x', hash({', '.join(values)}))"


def plan_export(
    conn: duckdb.DuckDBPyConnection,
    mapping: FieldMapping,
    *,
    profile_key: str = "",
    table: str = PROFILE_TABLE,
) -> ExportPlan:
    """Classify every profile (new / changed / retry / unchanged / skipped) and stage the ones to send."""
    ensure_tables(conn)
    cols = _columns(conn, table)
    if not cols:
        raise MappingError(f"table {table} does not exist: materialize the customer profile first")
    exported = mapping.exported
    needed = [mapping.email_column, "customer_id", *(f.column for f in exported)]
    missing = [c for c in needed if c not in cols]
    if missing:
        raise MappingError(
            f"the icomm field mapping names columns {table} does not have: {', '.join(missing)}"
        )
    n = len(exported)
    timezone = str(conn.execute("SELECT current_setting('TimeZone')").fetchone()[0])
    source_fp = source_fingerprint(mapping, profile_key, cols, timezone)
    source_hash = _hex_hash([_quote_str(source_fp), *(_quote_ident(f.column) for f in exported)])
    values_fp = mapping_fingerprint(mapping, profile_key)
    values_hash = _hex_hash([_quote_str(values_fp), *(f"v{i}" for i in range(n))])
    # in step 2 the profile columns are r0, r1, ... (an exported column may be named like a key column)
    raw = "".join(f", p.{_quote_ident(f.column)} AS r{i}" for i, f in enumerate(exported))
    # lists are joined one step before they are formatted (the format uses the joined list several times)
    joins = "".join(
        f", {sql_list_join_expr(f'r{i}')} AS j{i}" for i, f in enumerate(exported) if f.format == "list"
    )
    values = "".join(
        ", "
        + sql_format_expr(
            f"r{i}",
            f.format,
            max_length=mapping.max_length(f),
            bool_values=mapping.bool_values,
            joined=f"j{i}" if f.format == "list" else None,
        )
        + f" AS v{i}"
        for i, f in enumerate(exported)
    )
    plain = "".join(f", v{i}" for i in range(n))
    as_of = "as_of" if "as_of" in cols else "CAST(NULL AS DATE)"
    tie = "last_purchase_date" if "last_purchase_date" in cols else "NULL"  # duplicates: latest buyer wins
    email_col = _quote_ident(mapping.email_column)
    email_expr = f"lower(trim(CAST({email_col} AS VARCHAR)))"
    send = ", ".join(_quote_str(a) for a in SEND_ACTIONS)
    to_format = "known_action IS NULL OR known_action IN ('new', 'retry')"

    for t in (PLAN_TABLE, "_icomm_keys"):
        conn.execute(f"DROP TABLE IF EXISTS {t}")
    # 1. every profile, narrow: its e-mail, a hash of the source values of the exported fields, and what can
    #    be decided without formatting: skipped, new, or unchanged (or retried) because its source values are
    #    those of the last confirmed send; NULL: they changed, the formatted values decide
    conn.execute(
        f"""
        CREATE TEMP TABLE _icomm_keys AS
        WITH dup_losers AS (  -- one contact per e-mail: the latest buyer wins, then the smallest id
            SELECT customer_id FROM (
                SELECT CAST(customer_id AS VARCHAR) AS customer_id, row_number() OVER (
                           PARTITION BY {email_expr} ORDER BY {tie} DESC NULLS LAST, customer_id) AS k
                FROM {table}
                WHERE {email_expr} IN (
                    SELECT {email_expr} FROM {table} GROUP BY 1 HAVING count(*) > 1)
            ) WHERE k > 1
        ),
        src AS (
            SELECT CAST(customer_id AS VARCHAR) AS customer_id, {as_of} AS as_of, {email_expr} AS email,
                   {source_hash} AS source_hash
            FROM {table}
        ),
        checked AS (SELECT *, {deliverable_sql("email")} AS deliverable FROM src)
        SELECT h.customer_id, h.as_of, h.email, h.source_hash, s.hash AS sent_hash,
               d.email IS NOT NULL AS in_dead_letter,
               CASE WHEN NOT h.deliverable THEN 'skipped_no_email'
                    WHEN h.customer_id IN (SELECT customer_id FROM dup_losers) THEN 'skipped_duplicate_email'
                    WHEN s.email IS NULL THEN 'new'
                    WHEN substr(s.hash, 17) <> h.source_hash THEN NULL
                    WHEN d.email IS NOT NULL THEN 'retry'
                    ELSE 'unchanged' END AS known_action
        FROM checked h
        LEFT JOIN icomm_sent s ON s.email = h.email AND h.deliverable
        LEFT JOIN icomm_dead_letter d ON d.email = h.email AND h.deliverable
        """
    )
    # 2. only the profiles that are new, retried or whose source values changed: format their values, hash
    #    them, decide, and store them numbered in e-mail order (stable batches, reproducible dry runs).
    #    Found again by customer id and e-mail, a pair no other row to format shares (a duplicated e-mail
    #    skips every row of a losing customer id). Formatting is most of the cost, so it is done on the rows
    #    the join picks (a lazy CASE in step 1 costs DuckDB almost as much per row as formatting every row);
    #    the numbering sorts the narrow rows (a window over the wide rows is slow).
    conn.execute(
        f"""
        CREATE TEMP TABLE {PLAN_TABLE} AS
        WITH numbered AS (SELECT *, row_number() OVER (ORDER BY email) AS rn FROM _icomm_keys WHERE {to_format}),
        picked AS (
            SELECT k.*{raw} FROM {table} p
            JOIN numbered k ON CAST(p.customer_id AS VARCHAR) IS NOT DISTINCT FROM k.customer_id
                            AND lower(trim(CAST(p.{email_col} AS VARCHAR))) = k.email
        ),
        joined AS (SELECT *{joins} FROM picked),
        formatted AS (
            SELECT rn, email, customer_id, as_of, source_hash, sent_hash, in_dead_letter, known_action{values}
            FROM joined
        ),
        hashed AS (SELECT *, {values_hash} || source_hash AS hash FROM formatted)
        SELECT rn, email, customer_id, as_of, hash,
               coalesce(known_action, CASE WHEN left(hash, 16) <> left(sent_hash, 16) THEN 'changed'
                                           WHEN in_dead_letter THEN 'retry'
                                           ELSE 'unchanged' END) AS action,
               in_dead_letter{plain}
        FROM hashed
        ORDER BY rn
        """
    )
    counts = dict.fromkeys(ACTIONS, 0)
    replanned = dropped = 0
    for in_plan, action, cnt, dl in conn.execute(
        f"""
        SELECT in_plan, action, count(*), count(*) FILTER (WHERE in_dead_letter) FROM (
            SELECT false AS in_plan, known_action AS action, in_dead_letter FROM _icomm_keys
            WHERE NOT ({to_format})
            UNION ALL
            SELECT true, action, in_dead_letter FROM {PLAN_TABLE}
        ) GROUP BY ALL
        """
    ).fetchall():
        counts[action] += int(cnt)
        if action in SEND_ACTIONS:
            replanned += int(dl)
        elif in_plan:
            dropped += int(cnt)
    if dropped:  # formatted, but the same values as sent: out of the plan, and the numbers closed up again
        conn.execute(f"DELETE FROM {PLAN_TABLE} WHERE action NOT IN ({send})")
        conn.execute(
            f"""
            UPDATE {PLAN_TABLE} SET rn = dense.new_rn
            FROM (SELECT rn, row_number() OVER (ORDER BY rn) AS new_rn FROM {PLAN_TABLE}) AS dense
            WHERE {PLAN_TABLE}.rn = dense.rn
            """
        )
    conn.execute("DROP TABLE _icomm_keys")
    to_send = sum(counts[a] for a in SEND_ACTIONS)
    counts["total"] = sum(counts[a] for a in ACTIONS)
    return ExportPlan(
        counts=counts,
        keys=[f.key for f in exported],
        to_send=to_send,
        dead_letter_replanned=int(replanned),
        columns=[f.column for f in exported],
    )
