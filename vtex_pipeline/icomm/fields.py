"""Which profile columns go to icomm, under which field names, and how each value is written (spec §5).

The mapping lives in a YAML file the operator edits (a copy of the packaged `icomm_fields.yaml`,
`vtex-pipeline fields` prints it): icomm only accepts
the field names of the target profile, and those are chosen by whoever created the profile.
Values are formatted twice, identically: in Python (`format_value`, for single contacts and as the
readable reference) and in SQL (`sql_format_expr`, so a million profiles are formatted and hashed by
DuckDB in seconds). Tests hold the two to the same strings.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal

import yaml

from vtex_pipeline.paths import resolve_path

Format = Literal["text", "date", "amount", "int", "list", "bool", "percent"]
FORMATS: tuple[str, ...] = ("text", "date", "amount", "int", "list", "bool", "percent")
DEFAULT_LIST_MAX_LENGTH = 250
LIST_SEPARATOR = ", "
WINDOWS = ("30d", "60d", "90d", "180d", "360d", "360plus")

LIFETIME_COLUMNS: tuple[tuple[str, Format], ...] = (
    ("first_name", "text"),
    ("last_name", "text"),
    ("document", "text"),
    ("phone", "text"),
    ("gender", "text"),
    ("birth_date", "date"),
    ("is_newsletter_opt_in", "bool"),
    ("first_purchase_date", "date"),
    ("days_since_first_purchase", "int"),
    ("last_purchase_date", "date"),
    ("days_since_last_purchase", "int"),
    ("last_purchase_brands", "list"),
    ("last_purchase_categories", "list"),
    ("last_purchase_promo_codes", "list"),
)
WINDOW_COLUMNS: tuple[tuple[str, Format], ...] = (
    ("orders", "int"),
    ("amount", "amount"),
    ("avg_amount", "amount"),
    ("products", "list"),
    ("categories", "list"),
    ("coupons", "list"),
    ("rfm", "text"),
)
TAIL_COLUMNS: tuple[tuple[str, Format], ...] = (("rfm_group", "text"), ("rfm_segment", "text"))
# Predictions (docs/attributes.md). p_alive goes out as a percentage with one decimal ("72.7" for 0.7266);
# expected orders and days between orders as numbers with 2 decimals and a '.' (the amount format).
PREDICTION_COLUMNS: tuple[tuple[str, Format], ...] = (
    ("p_alive", "percent"),
    ("expected_orders_30d", "amount"),
    ("expected_orders_90d", "amount"),
    ("expected_orders_365d", "amount"),
    ("expected_avg_order_value", "amount"),
    ("predicted_clv_365d", "amount"),
    ("expected_next_order_date", "date"),
    ("avg_days_between_orders", "amount"),
    ("churn_risk", "text"),
)


def profile_columns() -> list[tuple[str, Format]]:
    """Every exportable `customer_profile` column (all but the key and e-mail) with its format."""
    cols = list(LIFETIME_COLUMNS)
    for w in WINDOWS:
        cols.extend((f"{name}_{w}", fmt) for name, fmt in WINDOW_COLUMNS)
    cols.extend(TAIL_COLUMNS)
    cols.extend(PREDICTION_COLUMNS)
    return cols


class MappingError(ValueError):
    """The field mapping file is missing, malformed or names a column the profile does not have."""


@dataclass(frozen=True)
class FieldSpec:
    column: str
    key: str  # the icomm custom field name
    format: Format
    export: bool = True
    max_length: int | None = None  # lists only; None = the mapping's default


@dataclass(frozen=True)
class FieldMapping:
    fields: tuple[FieldSpec, ...]
    email_column: str = "email"
    list_max_length: int = DEFAULT_LIST_MAX_LENGTH
    bool_values: tuple[str, str] = ("true", "false")

    @property
    def exported(self) -> tuple[FieldSpec, ...]:
        return tuple(f for f in self.fields if f.export)

    def max_length(self, spec: FieldSpec) -> int:
        return spec.max_length if spec.max_length is not None else self.list_max_length

    def without_days_since(self) -> FieldMapping:
        """The same mapping with every `days_since_*` field switched off (spec §5, configurable)."""
        return FieldMapping(
            fields=tuple(
                FieldSpec(f.column, f.key, f.format, False, f.max_length)
                if f.column.startswith("days_since_")
                else f
                for f in self.fields
            ),
            email_column=self.email_column,
            list_max_length=self.list_max_length,
            bool_values=self.bool_values,
        )


def default_mapping() -> FieldMapping:
    """Every profile column, exported under its upper-cased name."""
    return FieldMapping(fields=tuple(FieldSpec(c, c.upper(), fmt) for c, fmt in profile_columns()))


_KEY_RE = re.compile(r"^[A-Za-z0-9_\-.]{1,100}$")
_COLUMN_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def packaged_mapping_file() -> Path:
    """The default mapping shipped with the package (copy it to start your own)."""
    return Path(str(files("vtex_pipeline.icomm") / "icomm_fields.yaml"))


def load_mapping(path: str | Path | None = None) -> FieldMapping:
    """Read the operator's mapping file (relative to the pipeline home); `None` or `""` reads the
    mapping shipped with the package."""
    p = resolve_path(path) if path else packaged_mapping_file()
    if not p.exists():
        raise MappingError(f"icomm field mapping file {p} does not exist")
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise MappingError(f"cannot read icomm field mapping {p}: {exc}") from exc
    return mapping_from_dict(doc, source=str(p))


def mapping_from_dict(doc: Mapping[str, Any], *, source: str = "mapping") -> FieldMapping:
    if not isinstance(doc, Mapping) or not isinstance(doc.get("fields"), list):
        raise MappingError(f"{source}: expected a 'fields' list")
    defaults = dict(profile_columns())
    specs: list[FieldSpec] = []
    for i, item in enumerate(doc["fields"]):
        if not isinstance(item, Mapping) or "column" not in item:
            raise MappingError(f"{source}: field #{i + 1} needs a 'column'")
        column = str(item["column"])
        if not _COLUMN_RE.match(column):
            raise MappingError(f"{source}: field #{i + 1}: {column!r} is not a column name")
        key = str(item.get("key") or column.upper())
        if not _KEY_RE.match(key):
            raise MappingError(f"{source}: field {column}: icomm key {key!r} is not a valid field name")
        fmt = str(item.get("format") or defaults.get(column, "text"))
        if fmt not in FORMATS:
            raise MappingError(f"{source}: field {column}: format {fmt!r} is not one of {FORMATS}")
        max_length = item.get("max_length")
        if max_length is not None and (not isinstance(max_length, int) or max_length < 1):
            raise MappingError(f"{source}: field {column}: max_length must be a positive integer")
        specs.append(FieldSpec(column, key, fmt, bool(item.get("export", True)), max_length))  # type: ignore[arg-type]
    for attr in ("column", "key"):
        seen: set[str] = set()
        for s in specs:
            if s.export and getattr(s, attr) in seen:
                raise MappingError(f"{source}: {attr} {getattr(s, attr)!r} is exported twice")
            seen.add(getattr(s, attr))
    list_max = doc.get("list_max_length", DEFAULT_LIST_MAX_LENGTH)
    if not isinstance(list_max, int) or list_max < 1:
        raise MappingError(f"{source}: list_max_length must be a positive integer")
    bools = doc.get("bool_values", ["true", "false"])
    if not isinstance(bools, list) or len(bools) != 2:
        raise MappingError(f"{source}: bool_values must be a list of two strings [true, false]")
    return FieldMapping(
        fields=tuple(specs),
        email_column=str(doc.get("email_column", "email")),
        list_max_length=list_max,
        bool_values=(str(bools[0]), str(bools[1])),
    )


# -- Python formatting ---------------------------------------------------------------------------


def join_list(items: Sequence[Any] | None, max_length: int = DEFAULT_LIST_MAX_LENGTH) -> str:
    """Items joined with ', ', keeping only whole items within `max_length` characters."""
    out = ""
    for item in items or ():
        if item is None:
            continue
        text = str(item)
        candidate = text if not out else out + LIST_SEPARATOR + text
        if len(candidate) > max_length:
            break
        out = candidate
    return out


def _to_date(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        return None


def format_value(
    value: Any,
    fmt: Format | None = None,
    *,
    max_length: int = DEFAULT_LIST_MAX_LENGTH,
    bool_values: tuple[str, str] = ("true", "false"),
) -> str:
    """One value as icomm gets it: always a string, NULL and empty lists as "" (so icomm clears them)."""
    if value is None:
        return ""
    if fmt is None:  # infer from the Python type
        if isinstance(value, bool):
            fmt = "bool"
        elif isinstance(value, date):
            fmt = "date"
        elif isinstance(value, Decimal | float):
            fmt = "amount"
        elif isinstance(value, int):
            fmt = "int"
        elif isinstance(value, list | tuple):
            fmt = "list"
        else:
            fmt = "text"
    if fmt == "list":
        if isinstance(value, str):
            value = [value]
        return join_list(value, max_length)
    if fmt == "date":
        d = _to_date(value)
        return d.strftime("%d/%m/%Y") if d else ""
    if fmt == "amount":
        try:
            dec = Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
        except (InvalidOperation, ValueError):
            return ""
        return f"{dec:.2f}"
    if fmt == "percent":
        try:
            share = float(value)
        except (TypeError, ValueError):
            return ""
        return f"{round(share * 100, 1):.1f}" if math.isfinite(share) else ""
    if fmt == "int":
        try:
            return str(int(value))
        except (TypeError, ValueError):
            return ""
    if fmt == "bool":
        if isinstance(value, str):
            value = value.strip().lower() in ("true", "1", "t", "yes")
        return bool_values[0] if value else bool_values[1]
    return str(value)


def custom_fields(row: Mapping[str, Any], mapping: FieldMapping) -> list[dict[str, str]]:
    """The exported fields of one profile row, formatted, in mapping order."""
    return [
        {
            "Key": f.key,
            "Value": format_value(
                row.get(f.column), f.format, max_length=mapping.max_length(f), bool_values=mapping.bool_values
            ),
        }
        for f in mapping.exported
    ]


def contact_payload(row: Mapping[str, Any], mapping: FieldMapping) -> dict[str, Any]:
    """`{"Email": ..., "CustomFields": [{"Key": ..., "Value": ...}]}` for one profile row."""
    email = str(row.get(mapping.email_column) or "").strip().lower()
    return {"Email": email, "CustomFields": custom_fields(row, mapping)}


# -- SQL formatting (the same strings, computed by DuckDB) -----------------------------------------


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def sql_list_join_expr(column: str) -> str:
    """A DuckDB expression joining the list `column` with ", ", NULL items skipped (as `join_list`)."""
    return f"array_to_string(CAST({_quote_ident(column)} AS VARCHAR[]), '{LIST_SEPARATOR}')"


def sql_format_expr(
    column: str, fmt: Format, *, max_length: int, bool_values: tuple[str, str], joined: str | None = None
) -> str:
    """A DuckDB expression giving `format_value(column)` as VARCHAR, never NULL.

    For lists, `joined` may name a column already holding `sql_list_join_expr(column)`: the expression uses
    the joined list several times, and DuckDB does not share repeated work inside a CASE.
    """
    c = _quote_ident(column)
    if fmt == "list":
        # keep items 1..k, k the largest with a joined length (", " between items) within max_length;
        # NULL items are dropped first (array_to_string skips them too)
        n = int(max_length)
        items = f"CAST({c} AS VARCHAR[])"
        whole = joined or sql_list_join_expr(column)
        # Almost every list fits whole. Otherwise the first n + 2 characters hold items 1..k, the separator
        # after item k and a part of item k + 1, so splitting them at ", " gives items 1..k and that part,
        # as long as none of items 1..k+1 holds a ", " or is NULL: comparing the pieces with the items shows
        # it. (No lambda there: DuckDB runs a lambda over whole vectors, however few rows need it.)
        parts = f"string_split(left({whole}, {n + 2}), ', ')"
        k = f"len({parts}) - 1"
        # Else item by item: the accumulator is a flag ('0' adding, '1' stopped at the first item that did
        # not fit) and ", item" for every kept item, so its length is 1 + 2 + the joined length.
        # At most n // 2 + 1 items fit (an empty item still costs its separator).
        kept = f"list_filter({items}, lambda x: x IS NOT NULL)[:{n // 2 + 1}]"
        step = (
            "lambda acc, x: CASE WHEN starts_with(acc, '1') THEN acc "
            f"WHEN length(acc) + length(x) <= {n + 1} THEN acc || ', ' || x ELSE '1' || substr(acc, 2) END"
        )
        expr = (
            f"CASE WHEN strlen({whole}) <= {n} THEN {whole} "  # bytes within the limit: characters are too
            f"WHEN length({whole}) <= {n} THEN {whole} "
            f"WHEN {items}[:{k}] = {parts}[:{k}] THEN array_to_string({parts}[:{k}], ', ') "
            f"ELSE substr(list_reduce({kept}, {step}, '0'), 4) END"
        )
    elif fmt == "date":
        expr = (
            f"strftime(coalesce(TRY_CAST({c} AS DATE), "
            f"TRY_CAST(left(CAST({c} AS VARCHAR), 10) AS DATE)), '%d/%m/%Y')"
        )
    elif fmt == "amount":
        expr = f"CAST(TRY_CAST({c} AS DECIMAL(18,2)) AS VARCHAR)"
    elif fmt == "percent":
        share = f"TRY_CAST({c} AS DOUBLE)"
        expr = f"CASE WHEN isfinite({share}) THEN printf('%.1f', round_even({share} * 100, 1)) END"
    elif fmt == "int":
        expr = f"CAST(TRY_CAST({c} AS BIGINT) AS VARCHAR)"
    elif fmt == "bool":
        t, f = (_quote_str(v) for v in bool_values)
        expr = (
            f"CASE WHEN {c} IS NULL THEN NULL "
            f"WHEN lower(trim(CAST({c} AS VARCHAR))) IN ('true', '1', 't', 'yes') THEN {t} ELSE {f} END"
        )
    else:
        expr = f"CAST({c} AS VARCHAR)"
    return f"coalesce({expr}, '')"
