"""Properties of the profile on generated stores (raw rows written directly, no HTTP, to stay fast):
the asset checks' invariants always hold, and the profile as of D ignores orders placed after D."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import duckdb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vtex_pipeline.config import IntegrationConfig
from vtex_pipeline.profile import ProfileSettings, compute_profile
from vtex_pipeline.profile.compute import WINDOWS
from vtex_pipeline.warehouse.connection import prepare
from vtex_pipeline.warehouse.raw_loads import insert_rows

D = date(2025, 6, 15)
NOW = datetime(2025, 7, 1, tzinfo=UTC)
STATUSES = ["invoiced", "handling", "canceled", "Cancellation-Requested", "payment-pending", None]
COUPONS = [None, "", " summer10 ", "SUMMER10", "vip", " Vip "]

orders_st = st.lists(
    st.fixed_dictionaries(
        {
            "customer": st.integers(0, 7),
            "ident": st.sampled_from(["user", "email", "alias", "document", "nobody"]),
            "days_before": st.integers(-20, 800),  # negative: placed after D
            "minute": st.integers(0, 24 * 60 - 1),
            "value": st.integers(0, 50_000),
            "status": st.sampled_from(STATUSES),
            "channel": st.sampled_from(["1", "2", "3"]),
            "coupon": st.sampled_from(COUPONS),
            "items": st.lists(st.integers(1, 6), max_size=4),  # product 6 is not in the catalog
        }
    ),
    max_size=40,
)
store_st = st.fixed_dictionaries(
    {
        "customers": st.integers(1, 8),
        "created_days_before": st.lists(st.integers(-5, 900), min_size=8, max_size=8),
        "orders": orders_st,
        "timezone": st.sampled_from(["UTC", "America/Sao_Paulo", "Asia/Tokyo"]),
        "channels": st.sampled_from([None, ["1", "2"]]),
    }
)


def _conn() -> duckdb.DuckDBPyConnection:
    conn = duckdb.connect()
    prepare(conn)
    conn.execute("SET threads = 1")
    now = NOW
    insert_rows(
        conn,
        "raw_categories",
        [
            {"category_id": "1", "name": "Dept", "depth": 0, "fetched_at": now, "record": "{}"},
            {
                "category_id": "10",
                "name": "Leaf",
                "parent_id": "1",
                "depth": 1,
                "fetched_at": now,
                "record": "{}",
            },
        ],
    )
    insert_rows(conn, "raw_brands", [{"brand_id": "7", "name": "Brand", "fetched_at": now, "record": "{}"}])
    insert_rows(
        conn,
        "raw_products",
        [
            {"product_id": str(p), "found": True, "name": f"P{p % 4}", "category_id": "10" if p % 2 else "1",
             "brand_id": "7", "fetched_at": now}
            for p in range(1, 6)
        ] + [{"product_id": "6", "found": False, "fetched_at": now}],
    )  # fmt: skip
    return conn


def _customers(conn, store, tz: ZoneInfo) -> None:
    rows = []
    for i in range(store["customers"]):
        created = datetime.combine(
            D - timedelta(days=store["created_days_before"][i]), datetime.min.time(), tz
        )
        rows.append(
            {
                "customer_id": f"c{i}",
                "user_id": f"u{i}",
                "email": f"c{i}@mail.com" if i != 3 else "c3@ct.vtex.com.br",
                "document": f"doc{i}",
                "created_in": created.astimezone(UTC) + timedelta(hours=12),
                "partition_key": "p",
                "synced_at": NOW,
                "record": "{}",
            }
        )
    insert_rows(conn, "raw_customers", rows)


def _orders(conn, orders, tz: ZoneInfo, start: int) -> None:
    rows, items = [], []
    for n, o in enumerate(orders, start=start):
        local = datetime.combine(D - timedelta(days=o["days_before"]), datetime.min.time(), tz)
        created = local.astimezone(UTC) + timedelta(minutes=o["minute"])
        c = o["customer"]
        oid = f"{1000 + n}-01"
        rows.append(
            {
                "order_id": oid,
                "creation_date": created,
                "creation_date_raw": created.isoformat(),
                "status": o["status"],
                "sales_channel": o["channel"],
                "value_cents": o["value"],
                "client_email": {"email": f"C{c}@mail.com ", "alias": f"x{n}@ct.vtex.com.br"}.get(o["ident"]),
                "user_profile_id": f"u{c}" if o["ident"] == "user" else f"guest{n}",
                "client_document": f"doc{c}" if o["ident"] in ("document", "user") else None,
                "coupon": o["coupon"],
                "item_count": len(o["items"]),
                "partition_key": "p",
                "synced_at": NOW,
                "record": "{}",
            }
        )
        for k, p in enumerate(o["items"]):
            items.append(
                {"order_id": oid, "item_index": k, "product_id": str(p), "name": f"item {p}",
                 "categories_ids": "/1/10/", "brand_name": "ItemBrand", "partition_key": "p"}
            )  # fmt: skip
    insert_rows(conn, "raw_orders", rows)
    insert_rows(conn, "raw_order_items", items)


def _assert_invariants(conn: duckdb.DuckDBPyConnection, cfg: IntegrationConfig) -> None:
    rows, distinct, expected = conn.execute(
        """SELECT count(*), count(DISTINCT customer_id),
                  (SELECT count(*) FROM raw_customers WHERE timezone(?, created_in)::DATE <= ?)
           FROM customer_profile""",
        [cfg.timezone, D],
    ).fetchone()
    assert rows == distinct == expected
    assert conn.execute(
        "SELECT count(*) FROM customer_profile WHERE email LIKE '%ct.vtex.com.br'"
    ).fetchone() == (0,)
    nested = WINDOWS[:-1]
    for a, b in zip(nested, nested[1:], strict=False):
        bad = conn.execute(
            f"""SELECT count(*) FROM customer_profile WHERE orders_{a} > orders_{b} OR amount_{a} > amount_{b}
                OR len(products_{a}) > len(products_{b}) OR products_{a} <> products_{b}[1:len(products_{a})]"""
        ).fetchone()[0]
        assert bad == 0, (a, b)
    for w in WINDOWS:
        bad = conn.execute(
            f"""SELECT count(*) FROM customer_profile
                WHERE (rfm_{w} IS NULL) <> (orders_{w} = 0)
                   OR NOT coalesce(regexp_full_match(rfm_{w}, '[1-5]{{3}}'), true)
                   OR (orders_{w} = 0) <> (avg_amount_{w} IS NULL)"""
        ).fetchone()[0]
        assert bad == 0, w
    seg_total, missing = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE rfm_segment IS NULL OR rfm_group IS NULL) FROM customer_profile"
    ).fetchone()
    assert missing == 0
    assert (
        sum(
            n
            for (_, n) in conn.execute(
                "SELECT rfm_segment, count(*) FROM customer_profile GROUP BY 1"
            ).fetchall()
        )
        == seg_total
    )
    assert conn.execute(
        "SELECT count(*) FROM customer_profile WHERE (rfm_group = 'PROSPECTS') <> (first_purchase_date IS NULL)"
    ).fetchone() == (0,)


def _expected_purchases(store, orders, cfg: IntegrationConfig) -> dict[str, int]:
    """Purchases per profile customer by the rules of docs/attributes.md, written independently of the SQL."""
    n = store["customers"]
    in_profile = {c for c in range(n) if store["created_days_before"][c] >= 0}
    excluded = set(ProfileSettings().excluded_statuses)
    counts = {f"c{c}": 0 for c in in_profile}
    for o in orders:
        if o["status"] is None or o["status"].lower() in excluded:
            continue
        if cfg.sales_channels and o["channel"] not in cfg.sales_channels:
            continue
        c = o["customer"]
        if c >= n:
            continue  # userProfileId, e-mail and document all point at no CL document
        if o["ident"] in ("user", "document") or (o["ident"] == "email" and c != 3):
            owner = c  # c3's CL e-mail is an alias, so her real e-mail matches nobody
        else:
            continue
        if owner in in_profile:
            counts[f"c{owner}"] += 1
    return counts


def _snapshot(conn) -> list[tuple]:
    return conn.execute("SELECT * EXCLUDE (as_of) FROM customer_profile ORDER BY customer_id").fetchall()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(store=store_st, later=orders_st)
def test_invariants_hold_and_later_orders_do_not_change_the_past(store, later):
    tz = ZoneInfo(store["timezone"])
    cfg = IntegrationConfig(name="prop", timezone=store["timezone"], sales_channels=store["channels"])
    conn = _conn()
    _customers(conn, store, tz)
    past = [o for o in store["orders"] if o["days_before"] >= 0]
    _orders(conn, past, tz, start=0)
    stats = compute_profile(conn, cfg, ProfileSettings(), D)
    _assert_invariants(conn, cfg)
    # orders_360d + orders_360plus = lifetime purchases, recounted here in Python from the generated orders
    lifetime = dict(
        conn.execute("SELECT customer_id, orders_360d + orders_360plus FROM customer_profile").fetchall()
    )
    assert lifetime == _expected_purchases(store, past, cfg)
    assert sum(lifetime.values()) <= stats["resolved_purchases"] <= stats["purchases"]
    before = _snapshot(conn)

    # Orders placed after D (the local day D+1 or later) change nothing as of D.
    after = [{**o, "days_before": -1 - abs(o["days_before"]) % 20} for o in later]
    _orders(conn, after, tz, start=1000)
    compute_profile(conn, cfg, ProfileSettings(), D)
    assert _snapshot(conn) == before
    conn.close()
