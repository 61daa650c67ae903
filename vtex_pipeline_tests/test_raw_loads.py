"""The raw loads: values round-trip with their types, loads replace by id, and a 4-hourly load does not
import pandas (DuckDB imports it the first time a Python object is registered, ~0.4 s of CPU that every
run's new process paid; `raw_loads` passes typed list parameters instead)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import UTC, datetime

from vtex_pipeline.warehouse.connection import connect
from vtex_pipeline.warehouse.raw_loads import (
    mark_partitions_synced,
    record_rejections,
    synced_partition_keys,
    upsert_by_id,
    upsert_orders,
)

T1 = datetime(2026, 11, 28, 13, 5, 7, 123000, tzinfo=UTC)


def _order(order_id: str, total: int, *, status: str = "invoiced") -> dict:
    return {
        "order_id": order_id,
        "creation_date": T1,
        "creation_date_raw": "2026-11-28T13:05:07.1230000+00:00",
        "status": status,
        "partition_key": "2026-11-28-12:00",
        "synced_at": T1,
        "record": json.dumps({"orderId": order_id, "value": total}),
    }


def test_loads_keep_types_nulls_and_replace_by_id(tmp_path) -> None:
    with connect(tmp_path / "w.duckdb") as conn:
        items = [{"order_id": "o1", "item_index": 0, "partition_key": "2026-11-28-12:00"}]
        got = upsert_orders(conn, [_order("o1", 100), _order("o2", 50)], items)
        assert got == {"orders_written": 2, "items_written": 1, "orders_replaced": 0, "orders_removed": 0}
        again = upsert_orders(conn, [_order("o1", 120, status="canceled")], items)
        assert again["orders_replaced"] == 1
        rows = conn.execute(
            "SELECT order_id, status, creation_date, record->>'$.value', client_email FROM raw_orders ORDER BY 1"
        ).fetchall()
        assert rows == [("o1", "canceled", T1, "120", None), ("o2", "invoiced", T1, "50", None)]
        assert conn.execute("SELECT count(*) FROM raw_order_items").fetchone()[0] == 1

        products = [
            {"product_id": "p1", "found": True, "name": "Café", "fetched_at": T1},
            {"product_id": "p2", "found": False, "fetched_at": T1},
            {"product_id": "p1", "found": True, "name": "Café 2", "fetched_at": T1},  # last one wins
        ]
        assert upsert_by_id(conn, "raw_products", "product_id", products) == {"written": 2, "replaced": 0}
        assert conn.execute("SELECT product_id, found, name FROM raw_products ORDER BY 1").fetchall() == [
            ("p1", True, "Café 2"),
            ("p2", False, None),
        ]

        assert record_rejections(conn, "orders", [("o9", "bad date", {"x": 1})], partition_key="k") == 1
        assert record_rejections(conn, "orders", [("o9", "still bad", None)], partition_key="k") == 1
        assert conn.execute("SELECT record_id, reason FROM raw_rejected_records").fetchall() == [
            ("o9", "still bad")
        ]
        mark_partitions_synced(conn, "orders", ["2026-11-28-08:00", "2026-11-28-12:00"])
        mark_partitions_synced(conn, "orders", ["2026-11-28-12:00"])
        assert synced_partition_keys(conn, "orders", "2026-11-28-00:00", "2026-11-28-20:00") == {
            "2026-11-28-08:00",
            "2026-11-28-12:00",
        }
        # no temporary id table is left behind
        assert conn.execute("SELECT count(*) FROM duckdb_tables() WHERE temporary").fetchone()[0] == 0


def test_a_load_and_its_metadata_do_not_import_pandas(tmp_path) -> None:
    code = textwrap.dedent(
        f"""
        import sys
        from datetime import UTC, datetime
        from vtex_pipeline.assets.metadata import table_metadata
        from vtex_pipeline.warehouse.connection import connect
        from vtex_pipeline.warehouse.raw_loads import mark_partitions_synced, upsert_by_id
        t = datetime(2026, 11, 28, tzinfo=UTC)
        with connect({str(tmp_path / "p.duckdb")!r}) as conn:
            upsert_by_id(conn, "raw_brands", "brand_id",
                         [{{"brand_id": "b1", "name": "Acme", "fetched_at": t, "record": "{{}}"}}])
            mark_partitions_synced(conn, "orders", ["2026-11-28-12:00"])
            meta = table_metadata(conn, "raw_brands")
        print(meta["dagster/row_count"], "pandas" in sys.modules)
        print(meta["preview"].value)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    first, *preview = out.splitlines()
    assert first == "1 False"
    assert preview[0].startswith("| brand_id   | name   |")
    assert preview[2].startswith("| b1         | Acme   |")
