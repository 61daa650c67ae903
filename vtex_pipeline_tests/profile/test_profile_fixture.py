"""The profile of the hand-made store (small_store.py) equals the expectation written below by hand,
column by column, after a real sync over HTTP and a real Dagster materialization of partition D.

How the RFM codes below were worked out (n = population, score = min(5, 1 + 5*(rank-1) // (n-1))):
  30d  n=3: recency desc Fer(10) 1, Gabi(5) 2, Ana(0) 3; amount asc Fer=Gabi 3000 rank 1, Ana rank 3.
  60d  n=4: Bruno(59) 1, Fer 2, Gabi 3, Ana 4; Bruno=Fer=Gabi 3000 rank 1, Ana rank 4.
  90d  n=5: Carla(89) 1, Bruno 2, Fer 3, Gabi 4, Ana 5; Fer=Gabi 3000 r1, Carla 4000 r3, Bruno 6000 r4, Ana r5.
  180d n=7: Edu(179) 1, Julia(100) 2, Carla 3, Bruno 4, Fer 5, Gabi 6, Ana 7;
            Edu 2500 r1, Fer=Gabi 3000 r2, Julia 4000 r4, Carla 5000 r5, Bruno 6000 r6, Ana r7.
  360d n=7: recency as 180d; Fer=Gabi 3000 r1, Carla 5000 r3, Bruno=Edu=Julia 6000 r4, Ana r7.
  360+ n=1: Edu alone scores R = M = 5.
  lifetime R (n=7) as 180d: Edu 1, Julia 1, Carla 2, Bruno 3, Fer 4, Gabi 5, Ana 5.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import dagster as dg
import pytest

from vtex_pipeline.assets.profile import build_profile_assets
from vtex_pipeline.assets.raw import build_raw_assets
from vtex_pipeline.predictions import PREDICTION_COLUMNS
from vtex_pipeline.resources import resources_for
from vtex_pipeline_tests.helpers import all_keys, materialize_raw, query
from vtex_pipeline_tests.profile import small_store

D = datetime.now(UTC).date() - timedelta(days=3)
WINDOWS = ("30d", "60d", "90d", "180d", "360d", "360plus")
EMPTY = (0, "0.00", None, [], [], [], None)

TR, PI, FP = "Tênis Runner", "Panela Inox", "Faqueiro Prata"


def day(n: int) -> date:
    return D - timedelta(days=n)


def person(email, first, last, document, phone, gender, birth, optin) -> dict[str, Any]:
    return dict(
        email=email,
        first_name=first,
        last_name=last,
        document=document,
        phone=phone,
        gender=gender,
        birth_date=date.fromisoformat(birth) if birth else None,
        is_newsletter_opt_in=optin,
    )


def buyer(first: int, last: int, brands, categories, promos) -> dict[str, Any]:
    return dict(
        first_purchase_date=day(first),
        days_since_first_purchase=first,
        last_purchase_date=day(last),
        days_since_last_purchase=last,
        last_purchase_brands=brands,
        last_purchase_categories=categories,
        last_purchase_promo_codes=promos,
    )


def same_in_windows(values: tuple, rfm: dict[str, str]) -> dict[str, tuple]:
    """The same (orders, amount, avg_amount, products, categories, coupons) in each window of `rfm`, with
    that window's RFM code."""
    return {w: (*values, code) for w, code in rfm.items()}


NO_PURCHASE = dict(
    first_purchase_date=None,
    days_since_first_purchase=None,
    last_purchase_date=None,
    days_since_last_purchase=None,
    last_purchase_brands=[],
    last_purchase_categories=[],
    last_purchase_promo_codes=[],
)

# Per window: (orders, amount, avg_amount, products, categories, coupons, rfm)
EXPECTED: dict[str, dict[str, Any]] = {
    "cl-ana": {
        **person(
            "ana@mail.com", "Ana", "Silva", "11111111111", "+5511911111111", "female", "1990-05-01", True
        ),
        **buyer(30, 0, ["Aurora", "Boreal"], ["Tênis", "Panelas"], ["SUMMER10"]),
        "30d": (2, "150.00", "75.00", [TR, PI], ["Tênis", "Panelas"], ["SUMMER10"], "525"),
        **same_in_windows(
            (3, "170.00", "56.67", [TR, PI, FP], ["Tênis", "Panelas", "Talheres"], ["SUMMER10"]),
            dict.fromkeys(("60d", "90d", "180d", "360d"), "535"),
        ),
        "360plus": EMPTY,
        "rfm_group": "FREQUENT",
        "rfm_segment": "FREQUENT_POTENTIAL_LOYALIST",
    },
    "cl-bruno": {
        **person("bruno@mail.com", "Bruno", "Souza", "22222222222", "+5511922222222", "male", None, False),
        **buyer(60, 59, ["Aurora"], ["Tênis"], []),
        "30d": EMPTY,
        "60d": (1, "30.00", "30.00", [TR], ["Tênis"], [], "111"),
        "90d": (2, "60.00", "30.00", [TR], ["Tênis"], [], "224"),
        "180d": (2, "60.00", "30.00", [TR], ["Tênis"], [], "325"),
        "360d": (2, "60.00", "30.00", [TR], ["Tênis"], [], "323"),
        "360plus": EMPTY,
        "rfm_group": "FREQUENT",
        "rfm_segment": "FREQUENT_NEEDS_ATTENTION",
    },
    "cl-carla": {
        **person("carla@mail.com", "Carla", "Lima", "33333333333", None, None, "1985-12-31", None),
        **buyer(90, 89, ["Boreal"], ["Panelas"], []),
        "30d": EMPTY,
        "60d": EMPTY,
        "90d": (1, "40.00", "40.00", [PI], ["Panelas"], [], "113"),
        "180d": (2, "50.00", "25.00", [PI, FP], ["Panelas", "Talheres"], [], "224"),
        "360d": (2, "50.00", "25.00", [PI, FP], ["Panelas", "Talheres"], [], "222"),
        "360plus": EMPTY,
        "rfm_group": "FREQUENT",
        "rfm_segment": "FREQUENT_AT_RISK",
    },
    "cl-edu": {
        **person("edu@mail.com", "Eduardo", "Costa", "44444444444", "+5511944444444", "male", None, True),
        **buyer(400, 179, ["Aurora"], ["Tênis"], ["WELCOME"]),
        "30d": EMPTY,
        "60d": EMPTY,
        "90d": EMPTY,
        "180d": (1, "25.00", "25.00", [TR], ["Tênis"], ["WELCOME"], "111"),
        "360d": (3, "60.00", "20.00", [TR, PI, FP], ["Tênis", "Panelas", "Talheres"], ["WELCOME"], "133"),
        "360plus": (
            2,
            "25.00",
            "12.50",
            ["Garrafa Térmica 500ml", TR],
            ["Panelas", "Tênis"],
            ["VIP15"],
            "525",
        ),
        "rfm_group": "LOYAL",
        "rfm_segment": "LOYAL_CANT_LOSE_THEM",
    },
    "cl-fer": {
        **person("fernanda@mail.com", "Fernanda", "Dias", "55555555555", None, "female", None, False),
        **buyer(10, 10, ["Boreal"], ["Garrafas"], []),
        **same_in_windows(
            (1, "30.00", "30.00", ["Squeeze Sport 1L"], ["Garrafas"], []),
            {"30d": "111", "60d": "211", "90d": "311", "180d": "411", "360d": "411"},
        ),
        "360plus": EMPTY,
        "rfm_group": "BEGINNERS",
        "rfm_segment": "BEGINNERS_PROMISING",
    },
    "cl-gabi": {
        **person("gabriel@mail.com", "Gabriel", "Rocha", "66666666666", None, "male", None, True),
        **buyer(5, 5, ["Boreal"], ["Panelas"], []),
        **same_in_windows(
            (1, "30.00", "30.00", [PI], ["Panelas"], []),
            {"30d": "311", "60d": "411", "90d": "411", "180d": "511", "360d": "511"},
        ),
        "360plus": EMPTY,
        "rfm_group": "BEGINNERS",
        "rfm_segment": "BEGINNERS_NEW",
    },
    "cl-helena": {
        **person(None, "Helena", "Gomes", "77777777777", None, None, None, None),
        **NO_PURCHASE,
        **{w: EMPTY for w in WINDOWS},
        "rfm_group": "PROSPECTS",
        "rfm_segment": "PROSPECTS",
    },
    "cl-julia": {
        **person("julia@example.com", "Julia", "Martins", "99999999999", None, "female", None, True),
        **buyer(250, 100, ["Boreal"], ["Talheres"], []),
        "30d": EMPTY,
        "60d": EMPTY,
        "90d": EMPTY,
        "180d": (4, "40.00", "10.00", [FP], ["Talheres"], [], "143"),
        "360d": (6, "60.00", "10.00", [FP], ["Talheres"], [], "153"),
        "360plus": EMPTY,
        "rfm_group": "LOYAL",
        "rfm_segment": "LOYAL_CANT_LOSE_THEM",
    },
}
ATTRS = ("orders", "amount", "avg_amount", "products", "categories", "coupons", "rfm")


def expected_row(customer_id: str) -> dict[str, Any]:
    spec = dict(EXPECTED[customer_id])
    row: dict[str, Any] = {"customer_id": customer_id, "as_of": D}
    for w in WINDOWS:
        values = spec.pop(w)
        for attr, v in zip(ATTRS, values, strict=True):
            row[f"{attr}_{w}"] = Decimal(v) if attr in ("amount", "avg_amount") and v is not None else v
    row.update(spec)
    # 7 buyers: far below the 500 needed to fit, so every prediction column is NULL (docs/attributes.md)
    row.update(dict.fromkeys(PREDICTION_COLUMNS))
    return row


def profile_rows(cfg) -> dict[str, dict[str, Any]]:
    cols = [r[0] for r in query(cfg, "SELECT column_name FROM (DESCRIBE customer_profile)")]
    rows = query(cfg, "SELECT * FROM customer_profile ORDER BY customer_id")
    return {r[0]: dict(zip(cols, r, strict=True)) for r in rows}


def materialize_profile(cfg, partition: date, instance=None) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        build_profile_assets(cfg),
        partition_key=partition.isoformat(),
        resources=resources_for(cfg),
        instance=instance,
    )


@pytest.fixture
def synced_store(start_store, vtex_env):
    store = start_store(small_store.build_store(D))
    cfg = vtex_env(
        store.url,
        timezone=small_store.TIMEZONE,
        sales_channels=small_store.SALES_CHANNELS,
        start_date=D - timedelta(days=402),  # the oldest order is D-400: fewer 4-hour windows to sync
    )
    keys = all_keys(cfg)
    materialize_raw(cfg, first=keys[0], last=keys[-1])
    return store, cfg


def test_profile_of_the_small_store_matches_the_hand_written_expectation_and_backfills(synced_store):
    store, cfg = synced_store
    instance = dg.DagsterInstance.ephemeral()

    # Before the cancellation, Carla's order of D-2 is a purchase.
    materialize_profile(cfg, D, instance)
    carla = profile_rows(cfg)["cl-carla"]
    assert (carla["orders_30d"], carla["amount_30d"], carla["last_purchase_date"]) == (
        1,
        Decimal("70.00"),
        day(2),
    )

    # The order is cancelled; the next 4-hourly sync's look-back re-fetches it.
    store.set_status(small_store.CANCELLED_LATER, "canceled")
    materialize_raw(cfg, partition_key=all_keys(cfg)[-1])
    result = materialize_profile(cfg, D, instance)

    got = profile_rows(cfg)
    assert sorted(got) == sorted(EXPECTED)  # Igor (created after D) has no row; Helena (no purchase) has one
    for customer_id in EXPECTED:
        want = expected_row(customer_id)
        assert list(got[customer_id]) == list(_column_order()), "columns and their order"
        for col in _column_order():
            assert got[customer_id][col] == want[col], f"{customer_id}.{col}"

    # Every check ran and passed.
    evals = result.get_asset_check_evaluations()
    assert {e.check_name for e in evals} == {
        "one_row_per_customer",
        "no_alias_emails",
        "windows_never_shrink",
        "lists_never_shrink",
        "lifetime_purchases_add_up",
        "rfm_codes_well_formed",
        "segments_add_up",
        "purchases_resolved_to_customers",
        "predictions_fit",
        "predictions_backtest",
    }
    assert all(e.passed for e in evals), [(e.check_name, e.metadata) for e in evals if not e.passed]

    # Metadata: row count, schema, preview, segment distribution.
    mat = next(
        e.materialization
        for e in result.get_asset_materialization_events()
        if e.materialization.asset_key.path[-1] == "customer_profile"
    )
    assert mat.metadata["dagster/row_count"].value == len(EXPECTED)
    assert [c.name for c in mat.metadata["dagster/column_schema"].value.columns] == list(_column_order())
    assert "| LOYAL_CANT_LOSE_THEM | 2 |" in mat.metadata["segment_distribution"].value
    assert mat.metadata["resolution_share"].value == 1.0
    # Predictions: too small a store, said so (and the fit check passes, skipped).
    assert mat.metadata["predictions/status"].value == "skipped"
    assert mat.metadata["predictions/null_reason"].value == (
        "7 buyers, fewer than the 500 needed to fit (min_buyers)"
    )
    fit_check = next(e for e in evals if e.check_name == "predictions_fit")
    assert fit_check.metadata["skipped"].value.startswith("7 buyers, fewer than the 500")

    # History holds the date; the run log records how each purchase was resolved.
    assert query(cfg, "SELECT as_of, count(*) FROM customer_profile_history GROUP BY 1") == [
        (D, len(EXPECTED))
    ]
    by = query(
        cfg,
        "SELECT resolved_by_user_profile_id, resolved_by_email, resolved_by_document FROM customer_profile_runs",
    )
    # 20 purchases: Bruno's 2 by document, Fernanda's 1 by e-mail, the other 17 by userProfileId.
    assert by == [(17, 1, 2)]

    # A backfill of a range (one run) rebuilds each past date from the purchases known up to it.
    first, last = D - timedelta(days=2), D
    result = dg.materialize(
        build_profile_assets(cfg),
        resources=resources_for(cfg),
        tags={
            "dagster/asset_partition_range_start": first.isoformat(),
            "dagster/asset_partition_range_end": last.isoformat(),
        },
    )
    assert result.success
    # customer_profile is the newest date; history has one snapshot per date of the range.
    assert query(cfg, "SELECT DISTINCT as_of FROM customer_profile") == [(D,)]
    assert query(cfg, "SELECT as_of, count(*) FROM customer_profile_history GROUP BY 1 ORDER BY 1") == [
        (first, 8),
        (first + timedelta(days=1), 8),
        (D, 8),
    ]
    # As of D-2, Ana's purchase of D does not exist yet and her A2 (D-29) is 27 days old.
    ana = query(
        cfg,
        "SELECT orders_360d, first_purchase_date, last_purchase_date FROM customer_profile_history "
        "WHERE customer_id = 'cl-ana' AND as_of = ?",
        [first],
    )
    assert ana == [(2, day(30), day(29))]
    # Gabriel's purchase of D-5 is 3 days old as of D-2.
    assert query(
        cfg,
        "SELECT rfm_30d IS NOT NULL FROM customer_profile_history WHERE customer_id = 'cl-gabi' AND as_of = ?",
        [first],
    ) == [(True,)]


def test_definitions_load_with_the_raw_assets(vtex_env):
    cfg = vtex_env("http://127.0.0.1:9")
    defs = dg.Definitions(
        assets=build_raw_assets(cfg) + build_profile_assets(cfg), resources=resources_for(cfg)
    )
    repo = defs.get_repository_def()
    assert dg.AssetKey([cfg.name, "customer_profile"]) in repo.assets_defs_by_key
    assert len(repo.asset_checks_defs_by_key) >= 7


def _column_order() -> tuple[str, ...]:
    from vtex_pipeline.profile import PROFILE_COLUMNS

    return PROFILE_COLUMNS
