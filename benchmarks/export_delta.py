"""Export delta: deciding which of the profiles changed since the last successful icomm send.

`plan_export` hashes every profile's exported columns as stored, compares that with `icomm_sent`, and
formats (and hashes the formatted values of) only the profiles that are new or whose columns changed.
Here a first plan (everyone is new: every profile formatted) is recorded as sent, as the export would
after icomm confirms, then 2% of the profiles are changed and the plan is timed again: that second plan
is the daily cost. The default mapping exports every column (the `days_since_*` ones included, as the
spec's default).

    .venv/bin/python -m benchmarks.export_delta --db big.duckdb
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import duckdb

from vtex_pipeline.icomm.delta import PLAN_TABLE, plan_export
from vtex_pipeline.icomm.fields import load_mapping

CHANGED_SHARE = 50  # 1 in 50 profiles changes between the two plans


def run(db: str) -> dict[str, Any]:
    """Plan, mark everything sent, change 2%, plan again (timed). Leaves icomm tables in `db`."""
    conn = duckdb.connect(db)
    conn.execute("SET threads = 2")
    conn.execute("SET TimeZone = 'UTC'")
    mapping = load_mapping()
    conn.execute("DROP TABLE IF EXISTS icomm_sent")
    conn.execute("DROP TABLE IF EXISTS icomm_dead_letter")
    t0 = time.perf_counter()
    first = plan_export(conn, mapping, profile_key="bench")
    first_s = time.perf_counter() - t0
    conn.execute(f"INSERT INTO icomm_sent SELECT email, customer_id, hash, now(), as_of FROM {PLAN_TABLE}")
    changed = conn.execute(
        f"""UPDATE customer_profile SET orders_360d = orders_360d + 1
            WHERE hash(customer_id) % {CHANGED_SHARE} = 0 AND email IS NOT NULL"""
    ).fetchone()[0]
    t0 = time.perf_counter()
    second = plan_export(conn, mapping, profile_key="bench")
    second_s = time.perf_counter() - t0
    profiles = conn.execute("SELECT count(*) FROM customer_profile").fetchone()[0]
    conn.close()
    return {"profiles": profiles, "fields": len(mapping.exported), "first_plan_seconds": round(first_s, 2),
            "first_counts": first.counts, "changed_rows": changed, "delta_seconds": round(second_s, 2),
            "delta_counts": second.counts}  # fmt: skip


def figures(db: str) -> list[dict[str, Any]]:
    r = run(db)
    c = r["delta_counts"]
    return [
        {"name": "export delta: plan after 2% changed", "value": r["delta_seconds"], "unit": "s",
         "baseline": None, "target": 10, "op": "<=",
         "note": f"{r['profiles']:,} profiles, {r['fields']} fields; changed {c['changed']:,}, "
                 f"unchanged {c['unchanged']:,}, no e-mail {c['skipped_no_email']:,}"},
        {"name": "export delta: first plan (all new)", "value": r["first_plan_seconds"], "unit": "s",
         "baseline": None, "target": 10, "op": "<=", "note": f"new {r['first_counts']['new']:,}"},
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", required=True, help="a DuckDB file with customer_profile")
    args = ap.parse_args(argv)
    print(json.dumps(run(args.db), indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
