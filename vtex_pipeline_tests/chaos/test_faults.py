"""The CI part of `make chaos` for VTEX faults, run through the CLI against the simulator (the icomm lost
response is in test_bad_input_and_secrets.py, sharing its run)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import duckdb

from chaos.run import Sandbox


def _db(box: Sandbox, sql: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(str(box.db), read_only=True) as conn:
        return conn.execute(sql, params or []).fetchall()


def test_vtex_5xx_malformed_404_and_status_disagreement_converge(
    sandbox: Callable[..., Sandbox], small_fixture: dict[str, Any]
) -> None:
    """Retried faults lose nothing; a detail 404 is set aside, then fetched once VTEX serves it again;
    when the list and the detail disagree on status, the detail is stored."""
    box = sandbox(small_fixture, vtex_faults="rate503=0.04,rate504=0.04,malformed=0.04,seed=9")
    orders = {o["orderId"]: o for o in small_fixture["orders"]}
    missing = sorted(orders)[:2]
    box.chaos.not_found = set(missing)
    disagree = sorted(orders)[2:8]
    box.chaos.list_status = {oid: "window-to-cancel" for oid in disagree}

    first = box.run()
    assert first.rc == 0, first.output[-2000:]
    stored = dict(_db(box, "SELECT order_id, status FROM raw_orders"))
    assert set(stored) == set(orders) - set(missing)
    assert {oid: stored[oid] for oid in disagree} == {oid: orders[oid]["status"] for oid in disagree}
    rejected = _db(box, "SELECT record_id, reason FROM raw_rejected_records WHERE source = 'orders'")
    assert {r[0] for r in rejected} == set(missing)
    assert all(reason.startswith("not found") for _, reason in rejected)
    stats = box.vtex_requests()
    assert stats > len(orders)  # retries happened

    box.chaos.not_found = set()
    second = box.run()
    assert second.rc == 0, second.output[-2000:]
    stored = dict(_db(box, "SELECT order_id, status FROM raw_orders"))
    assert stored == {oid: o["status"] for oid, o in orders.items()}
    items = _db(box, "SELECT count(*) FROM raw_order_items")[0][0]
    assert items == sum(len(o["items"]) for o in orders.values())
    assert box.secrets_found() == []
