"""A hand-made `customer_profile` table with the schema of the profile spec (§2-3), for the icomm tests."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import duckdb

from vtex_pipeline.icomm.fields import WINDOWS

_WINDOW_TYPES = (
    ("orders", "INTEGER"),
    ("amount", "DECIMAL(18,2)"),
    ("avg_amount", "DECIMAL(18,2)"),
    ("products", "VARCHAR[]"),
    ("categories", "VARCHAR[]"),
    ("coupons", "VARCHAR[]"),
    ("rfm", "VARCHAR"),
)
PROFILE_SCHEMA: list[tuple[str, str]] = [
    ("customer_id", "VARCHAR"),
    ("as_of", "DATE"),
    ("email", "VARCHAR"),
    ("first_name", "VARCHAR"),
    ("last_name", "VARCHAR"),
    ("document", "VARCHAR"),
    ("phone", "VARCHAR"),
    ("gender", "VARCHAR"),
    ("birth_date", "DATE"),
    ("is_newsletter_opt_in", "BOOLEAN"),
    ("first_purchase_date", "DATE"),
    ("days_since_first_purchase", "INTEGER"),
    ("last_purchase_date", "DATE"),
    ("days_since_last_purchase", "INTEGER"),
    ("last_purchase_brands", "VARCHAR[]"),
    ("last_purchase_categories", "VARCHAR[]"),
    ("last_purchase_promo_codes", "VARCHAR[]"),
    *[(f"{name}_{w}", t) for w in WINDOWS for name, t in _WINDOW_TYPES],
    ("rfm_group", "VARCHAR"),
    ("rfm_segment", "VARCHAR"),
    ("p_alive", "DOUBLE"),
    ("expected_orders_30d", "DOUBLE"),
    ("expected_orders_90d", "DOUBLE"),
    ("expected_orders_365d", "DOUBLE"),
    ("expected_avg_order_value", "DECIMAL(18,2)"),
    ("predicted_clv_365d", "DECIMAL(18,2)"),
    ("expected_next_order_date", "DATE"),
    ("avg_days_between_orders", "DOUBLE"),
    ("churn_risk", "VARCHAR"),
]
COLUMNS = [c for c, _ in PROFILE_SCHEMA]
AS_OF = date(2026, 11, 26)


def create_profile_table(conn: duckdb.DuckDBPyConnection) -> None:
    cols = ",\n".join(f"{c} {t}" for c, t in PROFILE_SCHEMA)
    conn.execute(f"CREATE OR REPLACE TABLE customer_profile ({cols})")


def profile_row(i: int, **overrides: Any) -> dict[str, Any]:
    """A buyer with one purchase 10 days before AS_OF; `overrides` replace any column."""
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    row.update(
        customer_id=f"c{i:05d}",
        as_of=AS_OF,
        email=f"buyer{i}@example.com",
        first_name=f"Name{i}",
        last_name="Souza",
        is_newsletter_opt_in=True,
        first_purchase_date=date(2026, 11, 16),
        days_since_first_purchase=10,
        last_purchase_date=date(2026, 11, 16),
        days_since_last_purchase=10,
        last_purchase_brands=["Acme"],
        last_purchase_categories=["Shoes"],
        last_purchase_promo_codes=[],
        rfm_group="BEGINNERS",
        rfm_segment="BEGINNERS_NEW",
        p_alive=0.72663,
        expected_orders_30d=0.0843,
        expected_orders_90d=0.2371,
        expected_orders_365d=0.8125,
        expected_avg_order_value=Decimal("118.40"),
        predicted_clv_365d=Decimal("96.20"),
        expected_next_order_date=date(2027, 1, 20),
        avg_days_between_orders=None,
        churn_risk="low",
    )
    for w in WINDOWS:
        inside = w != "360plus"
        row[f"orders_{w}"] = 1 if inside else 0
        row[f"amount_{w}"] = Decimal("120.50") if inside else Decimal("0.00")
        row[f"avg_amount_{w}"] = Decimal("120.50") if inside else None
        row[f"products_{w}"] = ["Red Shoe"] if inside else []
        row[f"categories_{w}"] = ["Shoes"] if inside else []
        row[f"coupons_{w}"] = []
        row[f"rfm_{w}"] = "515" if inside else None
    row.update(overrides)
    return row


def insert_profiles(conn: duckdb.DuckDBPyConnection, rows: list[dict[str, Any]]) -> None:
    placeholders = ", ".join("?" for _ in COLUMNS)
    conn.executemany(
        f"INSERT INTO customer_profile ({', '.join(COLUMNS)}) VALUES ({placeholders})",
        [[r.get(c) for c in COLUMNS] for r in rows],
    )


def update_profile(conn: duckdb.DuckDBPyConnection, customer_id: str, **values: Any) -> None:
    sets = ", ".join(f"{c} = ?" for c in values)
    conn.execute(f"UPDATE customer_profile SET {sets} WHERE customer_id = ?", [*values.values(), customer_id])
