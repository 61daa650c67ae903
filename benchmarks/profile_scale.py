"""Time one customer-profile computation on a synthetic store written straight into the raw tables.

    .venv/bin/python -m benchmarks.profile_scale --customers 1000000 --orders 5000000

The store is generated with SQL (`range()` and `hash()`, so it is deterministic) in a child process,
then a fresh process-level peak is measured around `compute_profile` only: peak RSS is
`getrusage(RUSAGE_SELF).ru_maxrss` of this process, which never ran the generator.

`--staging-only` builds the staging models alone (what the sync job does after loading raw) and
times that; a `--reuse` run after it is the daily run, which keeps the staging that is current.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb

from vtex_pipeline.config import IntegrationConfig
from vtex_pipeline.profile import ProfileSettings, compute_profile
from vtex_pipeline.warehouse.connection import prepare

N_PRODUCTS = 5_000
N_CATEGORIES = 120
N_BRANDS = 60

GENERATE_SQL = """
INSERT INTO raw_categories
SELECT i::VARCHAR, 'Category ' || i, CASE WHEN i > 10 THEN (i % 10 + 1)::VARCHAR END,
       CASE WHEN i > 10 THEN 1 ELSE 0 END, NULL, i <= 10, ($now::TIMESTAMPTZ), '{}'
FROM range(1, ($n_categories::BIGINT) + 1) t(i);

INSERT INTO raw_brands
SELECT (2000000 + i)::VARCHAR, 'Brand ' || i, true, ($now::TIMESTAMPTZ), '{}' FROM range(($n_brands::BIGINT)) t(i);

-- 2% of the products are missing from the catalog (found = false): the item fallbacks apply
INSERT INTO raw_products
SELECT i::VARCHAR, i % 50 <> 7, CASE WHEN i % 50 <> 7 THEN 'Product ' || i END,
       ((i % 10) + 1)::VARCHAR, CASE WHEN i % 50 <> 7 THEN (11 + i % (($n_categories::BIGINT) - 10))::VARCHAR END,
       CASE WHEN i % 50 <> 7 THEN (2000000 + i % ($n_brands::BIGINT))::VARCHAR END,
       'REF' || i, 'product-' || i, true, true, ($now::TIMESTAMPTZ), '{}'
FROM range(1, ($n_products::BIGINT) + 1) t(i);

INSERT INTO raw_customers
SELECT
    'cl-' || md5(i::VARCHAR)[1:8] || '-' || i,
    'user-' || i,
    'person' || i || '@example.com',
    true,
    'First' || (i % 997), 'Last' || (i % 991),
    lpad((10000000000 + i)::VARCHAR, 11, '0'), 'cpf',
    '+55119' || lpad((i % 100000000)::VARCHAR, 8, '0'),
    CASE i % 3 WHEN 0 THEN 'male' WHEN 1 THEN 'female' END,
    CASE WHEN i % 5 < 3 THEN DATE '1960-01-01' + (hash(i, 'birth') % 16000)::INTEGER END,
    i % 2 = 0,
    ($now::TIMESTAMPTZ) - to_seconds((hash(i, 'created') % (900 * 86400))::BIGINT),
    NULL, 'p', ($now::TIMESTAMPTZ), '{}'
FROM range(($customers::BIGINT)) t(i);

-- Half the orders go to a uniformly drawn customer, half to customers * u^2 (u uniform): most
-- customers buy a few times, a tail buys often (the heaviest buyer has a couple of thousand orders).
CREATE TEMP TABLE gen_orders AS
SELECT
    o,
    CASE WHEN hash(o, 'pick') % 2 = 0 THEN hash(o, 'uniform') % ($customers::BIGINT)
         ELSE ((($customers::BIGINT) - 1) * pow((hash(o, 'owner') % 1000003) / 1000003.0, 2))::BIGINT
    END AS owner,
    ($now::TIMESTAMPTZ) - to_seconds((hash(o, 'when') % (790 * 86400))::BIGINT + 60) AS created,
    hash(o, 'mix') % 1000 AS mix,
    1 + (hash(o, 'lines') % 1000) // 250 + CASE WHEN hash(o, 'lines') % 7 = 0 THEN 1 ELSE 0 END AS n_items
FROM range(($orders::BIGINT)) t(o);

INSERT INTO raw_orders
SELECT
    (1300000000000 + o * 7919)::VARCHAR || '-01', (500000 + o)::VARCHAR,
    created, strftime(created, '%Y-%m-%dT%H:%M:%S.%f0+00:00'), created + INTERVAL 2 DAY,
    CASE WHEN mix < 70 THEN 'canceled' WHEN mix < 75 THEN 'payment-pending' ELSE 'invoiced' END,
    CASE WHEN mix % 50 < 41 THEN '1' WHEN mix % 50 < 47 THEN '2' ELSE '3' END,
    1990 + (hash(o, 'value') % 90000)::BIGINT, NULL, NULL, NULL, 0, 'BRL',
    CASE WHEN mix % 20 = 0 THEN 'person' || owner || '@example.com'
         ELSE md5(o::VARCHAR) || '@ct.vtex.com.br' END,
    mix % 20 <> 0,
    CASE WHEN mix % 33 = 0 THEN 'guest-' || o ELSE 'user-' || owner END,
    lpad((10000000000 + owner)::VARCHAR, 11, '0'),
    'First', 'Last',
    CASE WHEN mix % 7 = 0 THEN (' summer' || (mix % 3) || ' ') END,
    NULL, NULL, NULL, 'Marketplace', NULL, n_items::INTEGER, 'p', ($now::TIMESTAMPTZ), '{}'
FROM gen_orders;

INSERT INTO raw_order_items
SELECT
    (1300000000000 + o * 7919)::VARCHAR || '-01', k::INTEGER, NULL,
    (1000 + p)::VARCHAR, p::VARCHAR, NULL, 'Item of product ' || p, 1, 1000, 1000, 1000, false,
    (2000000 + p % ($n_brands::BIGINT))::VARCHAR, 'Brand ' || (p % ($n_brands::BIGINT)),
    '/' || (p % 10 + 1) || '/' || (11 + p % (($n_categories::BIGINT) - 10)) || '/',
    ['Category ' || (11 + p % (($n_categories::BIGINT) - 10)), 'Category ' || (p % 10 + 1)], '1', 'p'
FROM (
    SELECT o, k, 1 + (hash(o, k, 'sku') % 1000003) * (hash(o, k, 'sku') % 1000003) % ($n_products::BIGINT) AS p
    FROM (SELECT o, unnest(range(n_items::BIGINT)) AS k FROM gen_orders)
);
DROP TABLE gen_orders;
"""


def generate(path: Path, customers: int, orders: int, now: datetime) -> dict[str, float]:
    """Write the synthetic raw tables into a fresh DuckDB file."""
    t0 = time.perf_counter()
    conn = duckdb.connect(str(path))
    prepare(conn)
    conn.execute("SET threads = 2")
    params = {
        "now": now,
        "customers": customers,
        "orders": orders,
        "n_products": N_PRODUCTS,
        "n_categories": N_CATEGORIES,
        "n_brands": N_BRANDS,
    }
    import re

    for stmt in duckdb.extract_statements(GENERATE_SQL):
        names = set(re.findall(r"\$([a-z_]+)", stmt.query))
        conn.execute(stmt, {k: params[k] for k in names})
    conn.execute("CHECKPOINT")
    counts = {
        t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        for t in ("raw_customers", "raw_orders", "raw_order_items", "raw_products")
    }
    conn.close()
    return {"seconds": round(time.perf_counter() - t0, 1), **counts}


def build_all_staging(
    conn: duckdb.DuckDBPyConnection, cfg: IntegrationConfig, settings: ProfileSettings
) -> dict[str, object]:
    """The sync's share: every staging model that is not current, timed, with this process's peak."""
    # imported here: profile_old_new runs this module against a release without profile/models.py
    from vtex_pipeline.profile.compute import sql_parameters
    from vtex_pipeline.profile.models import build_staging_layer

    conn.execute(f"SET memory_limit = '{settings.memory_limit}'")
    t0 = time.perf_counter()
    rebuilt = build_staging_layer(conn, sql_parameters(cfg, settings, date.today()))
    return {
        "seconds_staging": round(time.perf_counter() - t0, 2),
        "rebuilt": list(rebuilt),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--orders", type=int, default=5_000_000)
    ap.add_argument("--db", help="DuckDB file (default: a scratch file, deleted afterwards)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--memory-limit", default="3.5GB")
    ap.add_argument("--timezone", default="America/Sao_Paulo")
    ap.add_argument("--generate-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--reuse", action="store_true", help="use --db as already generated")
    ap.add_argument("--staging-only", action="store_true", help="build the staging models of --db and stop")
    args = ap.parse_args(argv)
    now = datetime.now(UTC).replace(microsecond=0)

    scratch = None
    if args.db:
        db = Path(args.db)
    else:
        scratch = tempfile.TemporaryDirectory(prefix="profile_scale_")
        db = Path(scratch.name) / "bench.duckdb"
    if args.generate_only:
        print(json.dumps(generate(db, args.customers, args.orders, now)))
        return 0
    try:
        if not args.reuse:
            db.unlink(missing_ok=True)
            out = subprocess.run(
                [
                    sys.executable, "-m", "benchmarks.profile_scale", "--generate-only", "--db", str(db),
                    "--customers", str(args.customers), "--orders", str(args.orders),
                ],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
            print("generated:", out.stdout.strip())
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        conn = duckdb.connect(str(db))
        prepare(conn)
        conn.execute(f"SET threads = {int(args.threads)}")
        conn.execute("SET enable_progress_bar = false")
        cfg = IntegrationConfig(name="bench", timezone=args.timezone, duckdb_path=str(db))
        settings = ProfileSettings(memory_limit=args.memory_limit)
        if args.staging_only:
            print(json.dumps(build_all_staging(conn, cfg, settings)))
            conn.close()
            return 0
        t0 = time.perf_counter()
        stats = compute_profile(conn, cfg, settings, as_of=date.today())
        elapsed = time.perf_counter() - t0
        conn.close()
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            json.dumps(
                {
                    "customers": stats["customers"],
                    "buyers": stats["buyers"],
                    "purchases": stats["purchases"],
                    "resolution_share": round(stats["resolution_share"], 4),
                    "seconds_total": round(elapsed, 2),
                    "seconds_compute": stats["compute_seconds"],
                    "steps": stats["steps"],
                    "peak_rss_mb": round(peak_mb),
                    "rss_before_mb": round(rss_before / 1024),
                    "threads": args.threads,
                    "memory_limit": args.memory_limit,
                },
                indent=2,
            )
        )
    finally:
        if scratch is not None:
            scratch.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
