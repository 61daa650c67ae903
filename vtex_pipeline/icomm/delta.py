"""What changed since the last successful send: hashes and the export plan, computed inside DuckDB.

Each contact's exported values are formatted in SQL (`fields.sql_format_expr`) and hashed as
`sha256(to_json([fingerprint, value1, value2, ...]))`, the fingerprint being a hash of the profile key
and the exported field names, so pointing the export at another profile, or renaming a field, re-sends everyone.
`icomm_sent` holds the hash of the last send icomm confirmed, per e-mail (icomm's contact identity);
`icomm_dead_letter` holds what icomm refused or never confirmed, and is always planned again.
Everything is set-based, so a million profiles are planned in seconds.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import duckdb

from vtex_pipeline.icomm.fields import FieldMapping, MappingError, _quote_ident, _quote_str, sql_format_expr

PROFILE_TABLE = "customer_profile"
PLAN_TABLE = "_icomm_plan"
SEND_ACTIONS = ("new", "changed", "retry")
ACTIONS = ("new", "changed", "retry", "unchanged", "skipped_no_email", "skipped_duplicate_email")
ALIAS_DOMAIN = "ct.vtex.com.br"
EMAIL_PATTERN = r"[^@\s,;]+@[^@\s,;]+\.[^@\s,;]+"

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS icomm_sent (
    email       VARCHAR PRIMARY KEY,
    customer_id VARCHAR,
    hash        VARCHAR NOT NULL,
    sent_at     TIMESTAMPTZ NOT NULL,
    as_of       DATE
);
CREATE TABLE IF NOT EXISTS icomm_dead_letter (
    email           VARCHAR PRIMARY KEY,
    customer_id     VARCHAR,
    payload         JSON,
    error           VARCHAR,
    attempts        INTEGER NOT NULL,
    first_failed_at TIMESTAMPTZ NOT NULL,
    last_failed_at  TIMESTAMPTZ NOT NULL
);
"""


def ensure_tables(conn: duckdb.DuckDBPyConnection) -> None:
    """Create the sink's state tables (idempotent)."""
    conn.execute(SCHEMA_SQL)


def deliverable_sql(expr: str) -> str:
    """SQL predicate: `expr` (a lower-cased, trimmed e-mail) is an address icomm can deliver to."""
    return (
        f"({expr} IS NOT NULL AND regexp_full_match({expr}, '{EMAIL_PATTERN}') "
        f"AND NOT ends_with({expr}, '{ALIAS_DOMAIN}'))"
    )


def is_deliverable(email: str | None) -> bool:
    """Python twin of `deliverable_sql` (for single contacts and tests)."""
    import re

    if not email:
        return False
    email = email.strip().lower()
    return bool(re.fullmatch(EMAIL_PATTERN, email)) and not email.endswith(ALIAS_DOMAIN)


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
    """sha256 of the target profile and the exported field names: the first element of every hashed list."""
    doc = {"profile": profile_key, "keys": [f.key for f in mapping.exported]}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def _columns(conn: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    rows = conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = ? AND table_schema = current_schema() ORDER BY ordinal_position",
        [table],
    ).fetchall()
    return {r[0]: r[1] for r in rows}


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

    value_exprs = [
        f"{sql_format_expr(f.column, f.format, max_length=mapping.max_length(f), bool_values=mapping.bool_values)} AS v{i}"
        for i, f in enumerate(exported)
    ]
    header = mapping_fingerprint(mapping, profile_key)
    hashed = ", ".join([_quote_str(header), *(f"v{i}" for i in range(len(exported)))])
    as_of = "as_of" if "as_of" in cols else "CAST(NULL AS DATE)"
    tie = "last_purchase_date" if "last_purchase_date" in cols else "NULL"  # duplicates: latest buyer wins
    # values are kept only for the contacts to send (a daily run may leave most profiles unchanged)
    vcols = "".join(
        f", CASE WHEN action IN ({', '.join(_quote_str(a) for a in SEND_ACTIONS)}) THEN v{i} END AS v{i}"
        for i in range(len(exported))
    )
    email = _quote_ident(mapping.email_column)
    send = ", ".join(_quote_str(a) for a in SEND_ACTIONS)

    email_expr = f"lower(trim(CAST({email} AS VARCHAR)))"
    conn.execute(f"DROP TABLE IF EXISTS {PLAN_TABLE}")
    conn.execute("DROP TABLE IF EXISTS _icomm_classified")
    # 1. format, hash and classify every profile in one pass; values are kept only for those to send
    #    (sorting or windowing the wide rows of a million profiles would cost more than everything else)
    conn.execute(
        f"""
        CREATE TEMP TABLE _icomm_classified AS
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
            SELECT CAST(customer_id AS VARCHAR) AS customer_id, {as_of} AS as_of,
                   {email_expr} AS email
                   {"," if value_exprs else ""} {", ".join(value_exprs)}
            FROM {table}
        ),
        hashed AS (
            SELECT *, {deliverable_sql("email")} AS deliverable, sha256(to_json([{hashed}])) AS hash
            FROM src
        ),
        actioned AS (
            SELECT h.*,
                   CASE WHEN NOT h.deliverable THEN 'skipped_no_email'
                        WHEN h.customer_id IN (SELECT customer_id FROM dup_losers) THEN 'skipped_duplicate_email'
                        WHEN s.email IS NULL THEN 'new'
                        WHEN s.hash <> h.hash THEN 'changed'
                        WHEN d.email IS NOT NULL THEN 'retry'
                        ELSE 'unchanged' END AS action,
                   d.email IS NOT NULL AS in_dead_letter
            FROM hashed h
            LEFT JOIN icomm_sent s ON s.email = h.email AND h.deliverable
            LEFT JOIN icomm_dead_letter d ON d.email = h.email AND h.deliverable
        )
        SELECT email, customer_id, as_of, hash, action, in_dead_letter{vcols}
        FROM actioned
        """
    )
    counts = dict.fromkeys(ACTIONS, 0)
    replanned = 0
    for action, n, dl in conn.execute(
        "SELECT action, count(*), count(*) FILTER (WHERE in_dead_letter) FROM _icomm_classified GROUP BY 1"
    ).fetchall():
        counts[action] = int(n)
        if action in SEND_ACTIONS:
            replanned += int(dl)
    # 2. number the contacts to send, in e-mail order (stable batches, reproducible dry runs)
    plain = "".join(f", v{i}" for i in range(len(exported)))
    conn.execute(
        f"""
        CREATE TEMP TABLE {PLAN_TABLE} AS
        SELECT row_number() OVER (ORDER BY email) AS rn, email, customer_id, as_of, hash, action{plain}
        FROM _icomm_classified WHERE action IN ({send})
        ORDER BY rn
        """
    )
    conn.execute("DROP TABLE _icomm_classified")
    to_send = sum(counts[a] for a in SEND_ACTIONS)
    counts["total"] = sum(counts[a] for a in ACTIONS)
    return ExportPlan(
        counts=counts,
        keys=[f.key for f in exported],
        to_send=to_send,
        dead_letter_replanned=int(replanned),
        columns=[f.column for f in exported],
    )
