"""The customer profile in plain pandas: the script a data engineer would otherwise write.

It is the baseline the SQL is measured against, so it is written the ordinary way (read the raw
tables into DataFrames, merge, sort, drop duplicates, group into lists per window) and follows
`docs/attributes.md` independently of the SQL, which also makes it a second
implementation to check the SQL's output against (`compare`).

    .venv/bin/python -m benchmarks.pandas_baseline --db bench.duckdb --as-of 2026-11-27 --compare 2000

Amounts are kept as integer cents (docs/attributes.md: DECIMAL(18,2) is exact cents); `compare` converts.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from vtex_pipeline.profile.compute import BASE_COLUMNS as PROFILE_COLUMNS  # predictions: not in pandas
from vtex_pipeline.profile.compute import WINDOWS
from vtex_pipeline.profile.settings import ProfileSettings
from vtex_pipeline.warehouse.sql_files import sql_dir

ALIAS = "ct.vtex.com.br"
# days_ago bounds [lo, hi) per window suffix
BOUNDS = {
    "30d": (0, 30),
    "60d": (0, 60),
    "90d": (0, 90),
    "180d": (0, 180),
    "360d": (0, 360),
    "360plus": (360, 10**9),
}


def _clean(s: pd.Series) -> pd.Series:
    """trim, empty -> missing"""
    s = s.str.strip()
    return s.mask(s == "")


def _email(s: pd.Series) -> pd.Series:
    """lower + trim, empty or a ct.vtex.com.br alias -> missing"""
    s = _clean(s.str.lower())
    return s.mask(s.str.endswith(ALIAS).fillna(False).astype(bool))


def _local_date(ts: pd.Series, tz: str) -> pd.Series:
    return ts.dt.tz_convert(tz).dt.tz_localize(None).dt.normalize()


def _quintile(rank: pd.Series, n: int) -> pd.Series:
    if n == 1:
        return pd.Series(5, index=rank.index)
    return np.minimum(5, 1 + (5 * (rank.astype("int64") - 1)) // (n - 1))


def _frequency(orders: pd.Series, t: list[int]) -> pd.Series:
    out = pd.Series(1, index=orders.index)
    for score, threshold in zip((2, 3, 4, 5), t[1:], strict=True):
        out = out.mask(orders >= threshold, score)
    return out


def _half_even(cents: pd.Series, n: pd.Series) -> pd.Series:
    c, k = cents.astype("int64"), n.astype("int64")
    q, r = np.abs(c) // k, np.abs(c) % k
    up = (2 * r > k) | ((2 * r == k) & (q % 2 == 1))
    return np.sign(c) * (q + up.astype("int64"))


def load(conn: duckdb.DuckDBPyConnection) -> dict[str, pd.DataFrame]:
    """Read the raw columns the rules need, untransformed (the transformation is the benchmark)."""
    q = {
        "customers": "SELECT customer_id, user_id, email, first_name, last_name, document, phone, gender, "
        "birth_date, is_newsletter_opt_in, created_in FROM raw_customers",
        "orders": "SELECT order_id, creation_date, status, sales_channel, value_cents, coupon, user_profile_id, "
        "client_email, client_document FROM raw_orders",
        "items": "SELECT order_id, item_index, product_id, name, brand_id, brand_name, categories_ids, "
        "category_names[1] AS first_category_name FROM raw_order_items",
        "products": "SELECT product_id, found, name, category_id, brand_id FROM raw_products",
        "categories": "SELECT category_id, name FROM raw_categories",
        "brands": "SELECT brand_id, name FROM raw_brands",
    }
    return {k: conn.execute(v).df() for k, v in q.items()}


def _lists(rows: pd.DataFrame, value: str, order: list[str]) -> dict[str, pd.Series]:
    """Per window: each customer's distinct values, most recent first (rows pre-sorted by `order`)."""
    rows = rows.dropna(subset=[value]).sort_values(["ckey", *order])
    out = {}
    for w, (lo, hi) in BOUNDS.items():
        win = rows[(rows.days_ago >= lo) & (rows.days_ago < hi)]
        win = win.drop_duplicates(["ckey", value])
        out[w] = win.groupby("ckey", sort=False)[value].agg(list)
    return out


def compute(
    data: dict[str, pd.DataFrame], as_of: date, timezone: str, settings: ProfileSettings
) -> pd.DataFrame:
    """The profile as of `as_of`, one row per customer created on or before it (docs/attributes.md)."""
    d = pd.Timestamp(as_of)
    cust = data["customers"].copy()
    cust["ckey"] = np.arange(len(cust))
    cust["user_key"] = _clean(cust.user_id)
    cust["email_key"] = _email(cust.email)
    cust["document_key"] = _clean(cust.document)
    cust["in_profile"] = _local_date(cust.created_in, timezone) <= d

    # purchases up to D
    o = data["orders"]
    status = o.status.str.lower()
    keep = o.status.notna() & ~status.isin(settings.excluded_statuses)
    o = o[keep].copy()
    o["purchase_date"] = _local_date(o.creation_date, timezone)
    o = o[o.purchase_date <= d]
    o["days_ago"] = (d - o.purchase_date).dt.days
    o["value_cents"] = o.value_cents.fillna(0).astype("int64")
    coupon = o.coupon.str.strip(" \t\r\n").str.upper()
    o["coupon"] = coupon.mask(coupon == "")

    # order -> customer: userProfileId, then non-alias e-mail, then document; earliest created wins
    ranked = cust.sort_values(["created_in", "customer_id"])
    o["ckey"] = np.nan
    for col, key in (
        ("user_profile_id", "user_key"),
        ("client_email", "email_key"),
        ("client_document", "document_key"),
    ):
        lookup = ranked.dropna(subset=[key]).drop_duplicates(key).set_index(key).ckey
        values = _email(o[col]) if col == "client_email" else _clean(o[col])
        o["ckey"] = o.ckey.fillna(values.map(lookup))
    o = o.dropna(subset=["ckey"])
    o["ckey"] = o.ckey.astype("int64")
    o = o[o.ckey.isin(cust.ckey[cust.in_profile])]
    o = o.sort_values(["ckey", "creation_date", "order_id"], ascending=[True, False, False])
    o["seq"] = o.groupby("ckey").cumcount() + 1

    # item names through the catalog, with the fallbacks of docs/attributes.md
    cats = data["categories"].assign(name=lambda c: _clean(c.name)).set_index("category_id").name
    brands = data["brands"].assign(name=lambda b: _clean(b.name)).set_index("brand_id").name
    prod = data["products"][data["products"].found].set_index("product_id")
    it = data["items"].merge(o[["order_id", "ckey", "seq", "days_ago"]], on="order_id")
    path_last = it.categories_ids.str.split("/").map(
        lambda parts: (
            next((p.strip() for p in reversed(parts) if p.strip()), None) if isinstance(parts, list) else None
        )
    )
    it["product"] = it.product_id.map(_clean(prod.name)).fillna(_clean(it.name))
    it["category"] = (
        it.product_id.map(prod.category_id.map(cats))
        .fillna(path_last.map(cats))
        .fillna(_clean(it.first_category_name))
    )
    it["brand"] = (
        it.product_id.map(prod.brand_id.map(brands))
        .fillna(it.brand_id.map(brands))
        .fillna(_clean(it.brand_name))
    )

    # counts, amounts, recency per window
    prof = cust[cust.in_profile].set_index("ckey")
    g = o.groupby("ckey")
    prof["first_days"] = g.days_ago.max()
    prof["last_days"] = g.days_ago.min()
    stats: dict[str, pd.DataFrame] = {}
    for w, (lo, hi) in BOUNDS.items():
        win = o[(o.days_ago >= lo) & (o.days_ago < hi)].groupby("ckey")
        stats[w] = pd.DataFrame(
            {"orders": win.size(), "cents": win.value_cents.sum(), "recency": win.days_ago.min()}
        )
        prof[f"orders_{w}"] = stats[w].orders.reindex(prof.index).fillna(0).astype("int64")
        prof[f"amount_{w}"] = stats[w].cents.reindex(prof.index).fillna(0).astype("int64")
        prof[f"avg_amount_{w}"] = _half_even(stats[w].cents, stats[w].orders).reindex(prof.index)

    # lists
    product_lists = _lists(
        it[["ckey", "seq", "item_index", "days_ago", "product"]], "product", ["seq", "item_index"]
    )
    category_lists = _lists(
        it[["ckey", "seq", "item_index", "days_ago", "category"]], "category", ["seq", "item_index"]
    )
    coupon_lists = _lists(o[["ckey", "seq", "days_ago", "coupon"]], "coupon", ["seq"])
    for w in WINDOWS:
        for name, lists in (
            ("products", product_lists),
            ("categories", category_lists),
            ("coupons", coupon_lists),
        ):
            prof[f"{name}_{w}"] = lists[w].reindex(prof.index)

    # last purchase
    last = it[it.seq == 1].sort_values(["ckey", "item_index"])
    for col, name in (("brand", "last_purchase_brands"), ("category", "last_purchase_categories")):
        prof[name] = last.dropna(subset=[col]).drop_duplicates(["ckey", col]).groupby("ckey")[col].agg(list)
    first = o[o.seq == 1].dropna(subset=["coupon"]).set_index("ckey").coupon
    prof["last_purchase_promo_codes"] = first.map(lambda c: [c])

    # RFM per window and lifetime
    t = settings.f_thresholds
    for w in WINDOWS:
        s = stats[w]
        n = len(s)
        code = None
        if n:
            r = _quintile((-s.recency).rank(method="min"), n)
            m = _quintile(s.cents.rank(method="min"), n)
            f = _frequency(s.orders, t)
            code = r.astype(str) + f.astype(str) + m.astype(str)
        prof[f"rfm_{w}"] = code.reindex(prof.index) if code is not None else None
    life = pd.DataFrame({"recency": g.days_ago.min(), "orders": g.size(), "cents": g.value_cents.sum()})
    seed = pd.read_csv(settings.rfm_segments_csv or sql_dir() / "seeds" / "rfm_segments.csv", dtype=str)
    seed["f_score"] = seed.f_score.fillna("0").str.strip()
    seed["r_score"] = seed.r_score.fillna("0").str.strip()
    by_score = seed.set_index(seed.f_score + seed.r_score)
    key = pd.Series("00", index=prof.index)
    if len(life):
        lr = _quintile((-life.recency).rank(method="min"), len(life))
        lf = _frequency(life.orders, t)
        key.loc[life.index] = lf.astype(str) + lr.astype(str)
    prof["rfm_group"] = key.map(by_score.rfm_group)
    prof["rfm_segment"] = key.map(by_score.rfm_segment)

    prof["as_of"] = as_of
    prof["email"] = prof.email_key
    prof["first_purchase_date"] = (d - pd.to_timedelta(prof.first_days, unit="D")).dt.date
    prof["last_purchase_date"] = (d - pd.to_timedelta(prof.last_days, unit="D")).dt.date
    prof["days_since_first_purchase"] = prof.first_days
    prof["days_since_last_purchase"] = prof.last_days
    return prof.reset_index(drop=True)[list(PROFILE_COLUMNS)]


def _norm(column: str, v: Any, sql: bool) -> Any:
    """One value as comparable plain Python: cents for amounts, lists as lists, missing as None."""
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NaT or v is pd.NA:
        v = None
    if isinstance(v, np.ndarray):
        v = v.tolist()
    if column.startswith(
        ("products_", "categories_", "coupons_", "last_purchase_b", "last_purchase_c", "last_purchase_p")
    ):
        return list(v) if v is not None else []
    if column.startswith(("amount_", "avg_amount_")) and v is not None:
        if not sql:
            return int(v)  # pandas keeps cents
        return int(v * 100) if isinstance(v, Decimal) else round(float(v) * 100)
    if isinstance(v, pd.Timestamp):
        return v.date()
    if isinstance(v, np.integer | np.bool_):
        return v.item()
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def compare(
    conn: duckdb.DuckDBPyConnection, expected: pd.DataFrame, sample: int, table: str = "customer_profile"
) -> dict[str, Any]:
    """Compare `sample` customers (a deterministic spread) of the SQL profile with the pandas one."""
    ids = expected.customer_id.sort_values().iloc[:: max(1, len(expected) // max(sample, 1))].head(sample)
    # include the heaviest buyers: long lists are where ordering bugs show
    ids = pd.concat([ids, expected.nlargest(20, "orders_360plus").customer_id]).drop_duplicates()
    want = expected[expected.customer_id.isin(ids)].set_index("customer_id")
    got = conn.execute(f"SELECT * FROM {table} WHERE customer_id IN (SELECT unnest(?))", [ids.tolist()]).df()
    got = got.set_index("customer_id")
    mismatches: dict[str, int] = {}
    examples: list[str] = []
    bad_rows: set[str] = set()
    for cid in want.index:
        if cid not in got.index:
            mismatches["(missing row)"] = mismatches.get("(missing row)", 0) + 1
            continue
        for col in PROFILE_COLUMNS[1:]:
            a, b = _norm(col, want.at[cid, col], False), _norm(col, got.at[cid, col], True)
            if a != b:
                mismatches[col] = mismatches.get(col, 0) + 1
                bad_rows.add(cid)
                if len(examples) < 5:
                    examples.append(f"{cid} {col}: pandas={a!r} sql={b!r}")
    return {
        "sampled": len(want),
        "rows_equal": len(want) - len(bad_rows),
        "mismatched_columns": mismatches,
        "examples": examples,
        "identical": not mismatches,
    }


def run(db: str | Path, as_of: date, timezone: str, sample: int = 0) -> dict[str, Any]:
    """Load + compute (timed), then optionally compare with the SQL profile already in `db`."""
    settings = ProfileSettings()
    conn = duckdb.connect(str(db), read_only=True)
    conn.execute("SET TimeZone = 'UTC'")
    t0 = time.perf_counter()
    data = load(conn)
    t_load = time.perf_counter() - t0
    prof = compute(data, as_of, timezone, settings)
    elapsed = time.perf_counter() - t0
    del data
    out: dict[str, Any] = {
        "seconds": round(elapsed, 2),
        "seconds_load": round(t_load, 2),
        "customers": len(prof),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    if sample:
        out["check"] = compare(conn, prof, sample)
    conn.close()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", required=True)
    ap.add_argument("--as-of", type=date.fromisoformat, default=date.today())
    ap.add_argument("--timezone", default="America/Sao_Paulo")
    ap.add_argument(
        "--compare", type=int, default=0, help="check this many customers against customer_profile"
    )
    args = ap.parse_args(argv)
    print(json.dumps(run(args.db, args.as_of, args.timezone, args.compare), default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
