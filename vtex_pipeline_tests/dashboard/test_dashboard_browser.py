"""The dashboard as a person sees it: a generated store synced over HTTP, the profile of two dates, the
`dashboard` asset materialized by Dagster, then the page opened offline in headless Chromium.

Checks that every chart was drawn by plotly.js (SVG marks, the heatmap image), that every figure the
page shows (`data-kpi` / `data-value`) equals the dash_* tables in DuckDB — and the headline figures a
recount from the raw orders — and saves a screenshot to test-artifacts/dashboard.png.

Chromium is driven through its command line (`--dump-dom` after the scripts ran, `--screenshot`): no
browser download, no driver package. Missing Chromium skips the test locally (after the DuckDB-side
checks ran) and fails it under CI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import dagster as dg
import duckdb
import pytest

from vtex_pipeline.assets.dashboard import build_dashboard_assets
from vtex_pipeline.dashboard.kpis import dashboard_path
from vtex_pipeline.dashboard.render import DAILY_TABLE_DAYS, METRICS
from vtex_pipeline.profile.compute import compute_profile
from vtex_pipeline.profile.settings import DEFAULT_EXCLUDED_STATUSES, ProfileSettings
from vtex_pipeline.resources import resources_for
from vtex_pipeline.simulators.generator import generate_store
from vtex_pipeline.warehouse.connection import connect
from vtex_pipeline_tests.helpers import all_keys, materialize_raw

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
TIMEZONE = "America/Sao_Paulo"
SPAN_DAYS = 100
CHARTS = {
    "revenue_daily": "bars",
    "purchases_daily": "bars",
    "segment_sizes": "bars",
    "segment_transitions": "heatmap",
    "expected_revenue": "bars",
}


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _require_chromium() -> None:
    if CHROMIUM.exists():
        return
    if _in_ci():
        pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium before the tests")
    pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium); the browser test needs it")


def _chromium(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--hide-scrollbars",
        "--virtual-time-budget=15000",  # let every script (plotly's drawing) finish before dumping
        *args,
        page.resolve().as_uri(),
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)


VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class PageReader(HTMLParser):
    """Collects the figures (`data-kpi`), empty-panel notes and what was drawn inside each chart."""

    def __init__(self) -> None:
        super().__init__()
        self.kpis: dict[str, tuple[str, str]] = {}
        self.empty: list[str] = []
        self.charts: dict[str, dict[str, int]] = {}
        self._stack: list[tuple[str, list[str]]] = []  # open elements: tag, classes
        self._chart: tuple[str, int] | None = None  # chart name, stack depth of its div
        self._kpi: tuple[str, str, int] | None = None  # key, value, stack depth
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs_list: list[tuple[str, str | None]]) -> None:
        attrs = {k: v or "" for k, v in attrs_list}
        classes = attrs.get("class", "").split()
        if "data-empty" in attrs:
            self.empty.append(attrs["data-empty"])
        if self._chart is not None:
            seen = self.charts[self._chart[0]]
            if tag == "svg" and "main-svg" in classes:
                seen["main_svg"] += 1
            in_point = any(t == "g" and "point" in c for t, c in self._stack)
            if tag == "path" and in_point and attrs.get("d", "") not in ("", "M0,0Z"):
                seen["bar_paths"] += 1
            href = attrs.get("href") or attrs.get("xlink:href") or ""
            if tag == "image" and href.startswith("data:image/png"):
                seen["heatmap_images"] += 1
        if tag in VOID:
            return
        self._stack.append((tag, classes))
        if "data-kpi" in attrs:
            self._kpi, self._text = (attrs["data-kpi"], attrs.get("data-value", ""), len(self._stack)), []
        if tag == "div" and "data-chart" in attrs:
            self._chart = (attrs["data-chart"], len(self._stack))
            self.charts[attrs["data-chart"]] = {"main_svg": 0, "bar_paths": 0, "heatmap_images": 0}

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        depth = len(self._stack)
        if self._kpi is not None and depth == self._kpi[2]:
            key, value, _ = self._kpi
            assert key not in self.kpis, f"figure {key} shown twice"
            self.kpis[key] = (value, "".join(self._text).strip())
            self._kpi = None
        if self._chart is not None and depth == self._chart[1]:
            self._chart = None
        if self._stack:
            self._stack.pop()

    def handle_data(self, data: str) -> None:
        if self._kpi is not None:
            self._text.append(data)


def _raw(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, datetime | date):
        return v.isoformat()
    return str(v)


def _rows(conn: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    cur = conn.execute(sql)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def expected_figures(db: str) -> dict[str, str]:
    """Every figure the page should show, read from the dash_* tables (independently of render.py)."""
    with duckdb.connect(db, read_only=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        info = _rows(conn, "SELECT * FROM dash_info")[0]
        n = info["period_days"]
        exp: dict[str, Any] = {
            "info.as_of": info["as_of"],
            "info.computed_at": info["computed_at"],
            "info.profile_as_of": info["profile_as_of"],
            "info.previous_profile_as_of": info["previous_profile_as_of"],
        }
        for r in _rows(conn, "SELECT * FROM dash_summary"):
            for col, _, _ in METRICS:
                if r["sales_channel"] == "*":
                    name = col.removesuffix("_cents")
                    exp[f"{name}_{n}d" if r["period"] == "last" else f"{name}_prev_{n}d"] = r[col]
                if r["period"] == "last":
                    exp[f"channel.{r['sales_channel']}.{col}"] = r[col]
            if r["period"] == "last" and r["sales_channel"] == "*":
                exp["period.start"], exp["period.end"] = r["start_date"], r["end_date"]
        for r in _rows(
            conn, f"SELECT * FROM dash_daily_sales WHERE day > DATE '{info['as_of']}' - {DAILY_TABLE_DAYS}"
        ):
            prefix = f"daily.{r['day'].isoformat()}.{r['sales_channel']}"
            exp[f"{prefix}.day"] = r["day"]
            for col, _, _ in METRICS:
                exp[f"{prefix}.{col}"] = r[col]
        for r in _rows(conn, "SELECT * FROM dash_top_items"):
            exp[f"top.{r['kind']}.window_days"] = r["window_days"]
            for f in ("name", "purchases", "quantity", "revenue_cents"):
                exp[f"top.{r['kind']}.{r['rank']}.{f}"] = r[f]
        for r in _rows(conn, "SELECT * FROM dash_segments"):
            exp[f"segment.{r['rfm_segment']}.name"] = r["rfm_segment"]
            for f in ("customers", "share", "previous_customers"):
                exp[f"segment.{r['rfm_segment']}.{f}"] = r[f]
        transitions = _rows(conn, "SELECT * FROM dash_segment_transitions")
        for r in transitions:
            exp[f"transition.{r['from_segment']}.{r['to_segment']}"] = r["customers"]
        exp["transitions.moved"] = sum(
            r["customers"] for r in transitions if r["from_segment"] != r["to_segment"]
        )
        pinfo = _rows(conn, "SELECT * FROM dash_prediction_info")[0]
        if pinfo["status"] == "fitted":
            exp["prediction.model"], exp["prediction.buyers"] = pinfo["model"], pinfo["buyers"]
            for r in _rows(conn, "SELECT * FROM dash_predictions"):
                for f in ("customers", "expected_revenue_365d", "expected_orders_365d", "avg_p_alive",
                          "churn_low", "churn_medium", "churn_high"):  # fmt: skip
                    exp[f"prediction.{r['rfm_segment']}.{f}"] = r[f]
        for r in _rows(conn, "SELECT * FROM dash_freshness"):
            for f in ("last_success_at", "hours_since_success", "watermark", "watermark_lag_hours", "status"):
                exp[f"freshness.{r['source']}.{f}"] = r[f]
    return {k: _raw(v) for k, v in exp.items()}


def recount_from_raw(db: str, as_of: date, days: int) -> dict[str, int]:
    """Headline figures straight from raw_orders (not through the staging SQL)."""
    with duckdb.connect(db, read_only=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        purchases, revenue, cancellations = conn.execute(
            """SELECT count(*) FILTER (WHERE NOT cancelled),
                      coalesce(sum(value_cents) FILTER (WHERE NOT cancelled), 0),
                      count(*) FILTER (WHERE cancelled)
               FROM (SELECT value_cents, lower(status) IN (SELECT unnest(?::VARCHAR[])) AS cancelled,
                            timezone(?, creation_date)::DATE AS d FROM raw_orders WHERE status IS NOT NULL)
               WHERE d BETWEEN ?::DATE - ? + 1 AND ?::DATE""",
            [DEFAULT_EXCLUDED_STATUSES, TIMEZONE, as_of, days, as_of],
        ).fetchone()
    return {"purchases": purchases, "revenue": revenue, "cancellations": cancellations}


@pytest.fixture
def synced_store(start_store, vtex_env):
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    # buyers who stop and spend at levels of their own: a fit that converges whatever the hour of the run
    store = start_store(
        generate_store(120, 700, seed=7, now=now - timedelta(hours=1), span_days=SPAN_DAYS, drop_out=True)
    )
    cfg = vtex_env(store.url, timezone=TIMEZONE, start_date=(now - timedelta(days=SPAN_DAYS + 2)).date())
    keys = all_keys(cfg)
    materialize_raw(cfg, first=keys[0], last=keys[-1])
    return cfg


def test_dashboard_renders_in_chromium_and_shows_the_figures_in_duckdb(synced_store, tmp_path):
    cfg = synced_store
    resources = resources_for(cfg)
    assets = build_dashboard_assets(cfg)
    instance = dg.DagsterInstance.ephemeral()

    # Before any profile: the asset works, and the panels say there is no profile yet.
    first = dg.materialize(assets, resources=resources, instance=instance)
    page = dashboard_path(cfg)
    assert page.is_file() and page.parent == Path(cfg.duckdb_path).parent
    text = page.read_text(encoding="utf-8")
    assert 'data-empty="segments"' in text and "No profile yet" in text
    meta = first.get_asset_materialization_events()[0].materialization.metadata
    assert meta["segments"].value == "_no profile yet_"

    # The profile of two dates a week apart (history), then the dashboard again.
    today = datetime.now(ZoneInfo(TIMEZONE)).date()
    with connect(cfg.duckdb_path) as conn:
        # a 120-customer store: minimums lowered so the prediction panels have a fit to show
        small = ProfileSettings(prediction_min_buyers=20, prediction_min_repeat_buyers=5)
        for d in (today - timedelta(days=7), today):
            stats = compute_profile(conn, cfg, small, as_of=d)
        assert stats["predictions"]["status"] == "fitted", stats["predictions"]
        # 100 days of history: as of D - 90 there are too few purchases to fit, and the panel says so
        # (the back-test chart itself is covered by test_kpis)
        assert stats["predictions"]["backtest"]["status"] != "fitted"
    result = dg.materialize(assets, resources=resources, instance=instance)
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["dashboard_path"].value == str(page.resolve())
    assert meta["previous_profile_as_of"].value == str(today - timedelta(days=7))
    assert meta["rows/dash_segment_transitions"].value > 0
    assert meta["kpis_last_30d"].value.startswith("| sales channel |")
    assert "|" in meta["segment_transitions"].value

    # The page must open offline: nothing fetched from the network.
    text = page.read_text(encoding="utf-8")
    assert "<script src=" not in text and 'rel="stylesheet"' not in text

    _require_chromium()  # everything above runs (and can fail) without a browser
    dom = _chromium(page, tmp_path / "chromium-profile", "--dump-dom").stdout
    reader = PageReader()
    reader.feed(dom)

    for name, kind in CHARTS.items():
        drawn = reader.charts.get(name)
        assert drawn is not None, f"chart {name} missing from the page"
        assert drawn["main_svg"] >= 1, f"plotly did not draw {name}: {drawn}"
        if kind == "bars":
            assert drawn["bar_paths"] > 0, f"no bars drawn in {name}: {drawn}"
        else:
            assert drawn["heatmap_images"] == 1, f"heatmap not drawn in {name}: {drawn}"
    assert reader.empty == ["backtest"], f"panels left empty: {reader.empty}"

    shown = {k: v for k, (v, _) in reader.kpis.items()}
    expected = expected_figures(cfg.duckdb_path)
    assert shown == expected

    # Formatted text matches the machine value for the headline cards.
    for key, kind in (("revenue_30d", "money"), ("purchases_30d", "int"), ("buyers_30d", "int")):
        value, txt = reader.kpis[key]
        assert txt == (f"{int(value) / 100:,.2f}" if kind == "money" else f"{int(value):,}")

    # And the headline agrees with a recount from the raw orders.
    raw = recount_from_raw(cfg.duckdb_path, today, 30)
    assert int(shown["purchases_30d"]) == raw["purchases"] > 0
    assert int(shown["revenue_30d"]) == raw["revenue"]
    assert int(shown["cancellations_30d"]) == raw["cancellations"]
    assert int(shown["transitions.moved"]) > 0

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    shot.unlink(missing_ok=True)
    _chromium(page, tmp_path / "chromium-profile", "--window-size=1400,4200", f"--screenshot={shot}")
    assert shot.is_file() and shot.stat().st_size > 50_000
    shutil.copy(page, ARTIFACTS / "dashboard.html")
