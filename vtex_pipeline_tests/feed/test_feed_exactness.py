"""A day of Orders Feed events applied in micro-batches gives, for every customer it touched, the row a
full profile of the same instant gives when scored with the same daily reference: every column.

Over HTTP to the VTEX simulator, on a DuckDB file that `vtex-pipeline run` filled for D (yesterday):
new orders going through payment and invoice, an invoiced order of last month canceled, a first
purchase by a customer registered after the sync, all with the feed's duplicates, reordering and lost
commits switched on (the simulator's fault knobs), and each batch applied as `process_events`.
"""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import requests
from click.testing import CliRunner

from vtex_pipeline.cli import main
from vtex_pipeline.feed.batch import process_events
from vtex_pipeline.feed.inbox import event_record
from vtex_pipeline.feed.recompute import profile_rows
from vtex_pipeline.profile import ProfileSettings, compute_profile
from vtex_pipeline.profile.reference import load_reference
from vtex_pipeline.simulators.generator import generate_store
from vtex_pipeline.simulators.store import fmt7
from vtex_pipeline.vtex.feed import FeedFilter, OrdersFeed, feed_settings
from vtex_pipeline.vtex.http import VtexClient, VtexSettings
from vtex_pipeline.warehouse.connection import prepare
from vtex_pipeline_tests.conftest import APP_KEY, APP_TOKEN

FEED_KEY, FEED_TOKEN = "vtexappkey-teststore-FEED", "feed-token-not-a-secret"
KEYS = {
    APP_KEY: {"token": APP_TOKEN, "permissions": ["*"]},
    FEED_KEY: {"token": FEED_TOKEN, "permissions": ["oms.feed"]},
}


def _post(url: str, path: str, body: Any) -> dict[str, Any]:
    r = requests.post(url + path, json=body, timeout=30)
    r.raise_for_status()
    return r.json()


def _read_lot(feed: OrdersFeed) -> list[dict[str, Any]]:
    """What the sensor does: read, keep the events, commit their handles."""
    items = feed.read_up_to(200)
    feed.commit(i.handle for i in items)
    return [event_record(i, datetime.now(UTC)) for i in items]


def test_micro_batches_equal_a_full_profile_scored_with_the_same_reference(
    start_store, vtex_env, monkeypatch
):
    today = datetime.now(UTC).date()
    d = today - timedelta(days=1)
    fixture = generate_store(150, 900, seed=19)
    store = start_store(fixture, app_keys=KEYS)
    cfg = vtex_env(store.url)
    monkeypatch.setenv("VTEX_PIPELINE_START_DATE", (today - timedelta(days=60)).isoformat())
    res = CliRunner().invoke(main, ["run", "--as-of", d.isoformat()], catch_exceptions=False)
    assert res.exit_code == 0, res.output

    base = VtexSettings(base_url=store.url, requests_per_second=500, max_attempts=2, backoff_base=0.01)
    feed_client = VtexClient(
        feed_settings(base, {"VTEX_FEED_APP_KEY": FEED_KEY, "VTEX_FEED_APP_TOKEN": FEED_TOKEN})
    )
    client = VtexClient(base.replace(app_key=APP_KEY, app_token=APP_TOKEN))
    feed = OrdersFeed(feed_client)
    assert feed.ensure_config(FeedFilter.workflow(), visibility_timeout=60) == "created"
    store.set_faults("feed_dup=0.5,feed_shuffle=1,feed_lost_commit=0.3,seed=3")

    orders = store.fixture()["orders"]
    month_ago = (datetime.now(UTC) - timedelta(days=30)).isoformat()
    invoiced = [o for o in orders if o["status"] == "invoiced" and o["creationDate"] > month_ago]
    assert len(invoiced) >= 6
    conn = duckdb.connect(cfg.duckdb_path)
    prepare(conn)
    settings = ProfileSettings()
    batches: list[list[dict[str, Any]]] = []
    touched: set[str] = set()

    def apply() -> None:
        events = _read_lot(feed)
        if events:
            batches.append(events)
            report = process_events(conn, client, cfg, settings, events, as_of=today)
            assert report.skipped_reason is None
            touched.update(report.customers)

    # batch 1: three checkouts of known buyers; an invoiced order of last month is canceled
    new_ids = [_post(store.url, "/_sim/orders/new", {"like": o["orderId"], "status": "payment-pending"})["orderId"]
               for o in invoiced[:3]]  # fmt: skip
    canceled = invoiced[3]["orderId"]
    store.set_status(canceled, "canceled")
    apply()
    # batch 2: they are paid and invoiced; a customer who registered after the sync buys for the first time
    for oid in new_ids:
        store.set_status(oid, "payment-approved")
    user_id, email = str(uuid.uuid4()), "first.buyer@example.com"
    now = fmt7(datetime.now(UTC))
    _post(store.url, "/_sim/clients", [{"id": str(uuid.uuid4()), "email": email, "userId": user_id,
                                        "firstName": "First", "lastName": "Buyer", "createdIn": now,
                                        "updatedIn": now, "isNewsletterOptIn": True}])  # fmt: skip
    first = copy.deepcopy(invoiced[4])
    first.update(
        orderId=f"{uuid.uuid4().int % 10**12}-01", creationDate=now, lastChange=now, status="invoiced"
    )
    first["clientProfileData"] = {**first["clientProfileData"], "userProfileId": user_id, "email": email,
                                  "document": None}  # fmt: skip
    store.put_orders([first])
    apply()
    for oid in new_ids:
        store.set_status(oid, "invoiced")
    apply()
    # lost commits come back after the visibility timeout, duplicates and all: applied again
    requests.post(store.url + "/_sim/clock", json={"advance_seconds": 61}, timeout=10).raise_for_status()
    apply()
    assert len(batches) >= 4
    all_events = [e for b in batches for e in b]
    assert len(all_events) > len({e["eventId"] for e in all_events}), "the knobs gave no duplicate"

    ids = sorted(touched)
    feed_rows = profile_rows(conn, ids)
    assert len(feed_rows) == len(ids) >= 4
    assert {r[1] for r in feed_rows} == {today}  # as_of: recomputed for today
    # the same instant, every customer, the same reference: the rows of the touched customers match
    ref = load_reference(conn)
    assert ref.as_of == d
    compute_profile(conn, cfg, settings, today, write=False, reference=ref, keep_intermediates=True)
    full = conn.execute(
        "SELECT * FROM temp.profile_result WHERE list_contains(?, customer_id) ORDER BY customer_id", [ids]
    ).fetchall()
    assert full == feed_rows
    by_email = {r[2]: r for r in feed_rows}
    assert by_email[email][10] == today  # first_purchase_date of the first-time buyer
    assert sum(r[12] == today for r in feed_rows) >= 4  # last_purchase_date: the checkouts of today
    conn.close()
