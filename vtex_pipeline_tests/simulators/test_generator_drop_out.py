"""The demo store's buyers behave as the prediction models assume: they stop, and spend differently."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from statistics import mean, pstdev

from vtex_pipeline.simulators.generator import generate_store
from vtex_pipeline.vtex.dates import parse_vtex_datetime

NOW = datetime(2026, 11, 30, tzinfo=UTC)


def _by_buyer(fixture: dict) -> dict[str, list[tuple[datetime, int]]]:
    out: dict[str, list[tuple[datetime, int]]] = defaultdict(list)
    for o in fixture["orders"]:
        out[o["clientProfileData"]["userProfileId"]].append(
            (parse_vtex_datetime(o["creationDate"]), o["value"])
        )
    return out


def test_drop_out_keeps_the_counts_and_leaves_the_default_store_unchanged():
    plain = generate_store(customers=600, orders=1800, seed=9, now=NOW)
    churny = generate_store(customers=600, orders=1800, seed=9, now=NOW, drop_out=True)
    assert len(churny["orders"]) == len(plain["orders"]) == 1800
    assert [c["email"] for c in churny["clients"]] == [c["email"] for c in plain["clients"]]
    assert plain == generate_store(customers=600, orders=1800, seed=9, now=NOW)  # flag off: as before


def test_buyers_stop_and_spend_at_levels_of_their_own():
    def shares(fixture: dict) -> tuple[float, float]:
        buyers = _by_buyer(fixture)
        old = [sorted(v) for v in buyers.values() if (NOW - min(v)[0]).days > 540 and len(v) >= 2]
        # of repeat buyers who started more than 18 months ago, the share silent for the last 6 months
        silent = sum((NOW - v[-1][0]).days > 180 for v in old) / len(old)
        means = [mean(x for _, x in v) for v in buyers.values()]
        return silent, pstdev(means) / mean(means)

    silent_plain, spread_plain = shares(generate_store(customers=1500, orders=4500, seed=3, now=NOW))
    silent, spread = shares(generate_store(customers=1500, orders=4500, seed=3, now=NOW, drop_out=True))
    assert silent > silent_plain + 0.1  # 0.60 vs 0.39 with these seeds: uniform times keep buyers buying
    assert spread > 1.1 * spread_plain  # 0.78 vs 0.68: per-buyer spend levels widen mean order values
