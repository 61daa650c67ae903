"""Render the `dash_*` tables as one self-contained HTML page, and as markdown for Dagster's metadata.

Charts are plotly.js, embedded inline once per page (no CDN, no network: the page opens from a file or
an e-mail attachment). Plotly because it is made for exactly this: the Python package ships the
minified library to inline, the charts are interactive (hover for the exact figure, zoom a date range,
toggle a channel) and it has the chart types the page needs (stacked bars, lines, heatmap) without
hand-written drawing code. The price is ~4.8 MB of JavaScript per page, which a browser opens in well
under a second.

Every figure shown carries `data-kpi="<key>"` and `data-value="<raw value>"` (cents as integers, dates
and timestamps in ISO form), so a test, or anyone scraping the page, compares it with DuckDB exactly,
without parsing formatted numbers. Chart containers carry `data-chart="<name>"`.
"""

from __future__ import annotations

import html
import os
import tempfile
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

CHART_DAYS = 90  # the time-series charts show the last 90 days (the table keeps the whole history)
DAILY_TABLE_DAYS = 14
KINDS = (("product", "Products"), ("category", "Categories"), ("brand", "Brands"), ("coupon", "Coupons"))
METRICS = (
    ("revenue_cents", "Revenue", "money"),
    ("purchases", "Purchases", "int"),
    ("buyers", "Buyers", "int"),
    ("first_time_buyers", "First-time buyers", "int"),
    ("avg_ticket_cents", "Average ticket", "money"),
    ("cancellations", "Cancellations", "int"),
)
COLORS = ("#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#06b6d4", "#84cc16", "#ec4899")


def rows(conn: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[dict[str, Any]]:
    cur = conn.execute(sql, params or [])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def raw_value(v: Any) -> str:
    """The machine-readable form of a figure (what `data-value` holds)."""
    if v is None:
        return ""
    if isinstance(v, datetime | date):
        return v.isoformat()
    return str(v)


def fmt(v: Any, kind: str = "text") -> str:
    """The human-readable form of a figure."""
    if v is None:
        return "—"
    if kind == "money":
        return f"{v / 100:,.2f}"
    if kind == "int":
        return f"{v:,}"
    if kind == "share":
        return f"{v * 100:.1f}%"
    if kind == "amount":
        return f"{v:,.2f}"
    if kind == "hours":
        return f"{v:,.1f} h"
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M UTC")
    return str(v)


def kpi(key: str, value: Any, kind: str = "text", tag: str = "span") -> str:
    return (
        f'<{tag} data-kpi="{html.escape(key)}" data-value="{html.escape(raw_value(value))}">'
        f"{html.escape(fmt(value, kind))}</{tag}>"
    )


def _table(headers: list[str], body: list[list[str]], numeric_from: int = 1) -> str:
    head = "".join(
        f'<th class="{"num" if i >= numeric_from else ""}">{html.escape(h)}</th>'
        for i, h in enumerate(headers)
    )
    trs = "".join(
        "<tr>"
        + "".join(f'<td class="{"num" if i >= numeric_from else ""}">{c}</td>' for i, c in enumerate(r))
        + "</tr>"
        for r in body
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{trs}</tbody></table>"


def _empty(name: str, text: str) -> str:
    return f'<p class="empty" data-empty="{name}">{html.escape(text)}</p>'


def _chart(name: str, fig: go.Figure, height: int = 360) -> str:
    fig.update_layout(
        template="plotly_white", height=height, margin=dict(l=50, r=20, t=40, b=40), font=dict(size=12)
    )
    spec = fig.to_json().replace("</", "<\\/")  # never end the script element early
    div = f"chart-{name}"
    return (
        f'<div class="chart" id="{div}" data-chart="{name}"></div>'
        f"<script>(function(){{var f={spec};"
        f'Plotly.newPlot("{div}",f.data,f.layout,{{displayModeBar:false,responsive:true}});}})();</script>'
    )


# ------------------------------------------------------------------------------------------ sections
def _cards(info: dict[str, Any], summary: list[dict[str, Any]]) -> str:
    n = info["period_days"]
    last = next((r for r in summary if r["period"] == "last" and r["sales_channel"] == "*"), {})
    prev = next((r for r in summary if r["period"] == "previous" and r["sales_channel"] == "*"), {})
    cards = []
    for col, label, kind in METRICS:
        metric = col.removesuffix("_cents")
        cards.append(
            f'<div class="card"><div class="label">{html.escape(label)}</div>'
            f'<div class="value">{kpi(f"{metric}_{n}d", last.get(col), kind)}</div>'
            f'<div class="prev">previous {n} days: {kpi(f"{metric}_prev_{n}d", prev.get(col), kind)}</div></div>'
        )
    span = (
        f"{kpi('period.start', last.get('start_date'))} – {kpi('period.end', last.get('end_date'))}"
        if last
        else ""
    )
    return (
        f'<section id="summary"><h2>Last {n} days, all channels <small>{span}</small></h2>'
        f'<div class="cards">{"".join(cards)}</div></section>'
    )


def _calendar(daily: list[dict[str, Any]], end: date) -> tuple[list[date], list[str], dict]:
    start = end - timedelta(days=CHART_DAYS - 1)
    days = [start + timedelta(days=i) for i in range(CHART_DAYS)]
    recent = [r for r in daily if start <= r["day"] <= end]
    channels = sorted({r["sales_channel_name"] for r in recent})
    cell = {(r["day"], r["sales_channel_name"]): r for r in recent}
    return days, channels, cell


def _sales_charts(info: dict[str, Any], daily: list[dict[str, Any]]) -> str:
    days, channels, cell = _calendar(daily, info["as_of"])
    if not any(r["purchases"] for r in cell.values()):
        return _empty("sales_charts", f"No purchases in the last {CHART_DAYS} days.")
    revenue, purchases = go.Figure(), go.Figure()
    for i, ch in enumerate(channels):
        color = COLORS[i % len(COLORS)]
        rev = [cell[(d, ch)]["revenue_cents"] / 100 if (d, ch) in cell else 0 for d in days]
        cnt = [cell[(d, ch)]["purchases"] if (d, ch) in cell else 0 for d in days]
        revenue.add_trace(go.Bar(x=days, y=rev, name=ch, marker_color=color))
        purchases.add_trace(go.Bar(x=days, y=cnt, name=ch, marker_color=color))
    cur = info.get("currency_code") or ""
    revenue.update_layout(
        barmode="stack", title=f"Revenue per day by sales channel ({cur})", legend=dict(orientation="h")
    )
    purchases.update_layout(
        barmode="stack", title="Purchases per day by sales channel", legend=dict(orientation="h")
    )
    return (
        '<div class="grid2">'
        + _chart("revenue_daily", revenue)
        + _chart("purchases_daily", purchases)
        + "</div>"
    )


def _channels(info: dict[str, Any], summary: list[dict[str, Any]]) -> str:
    last = [r for r in summary if r["period"] == "last"]
    body = []
    for r in last:
        sc = r["sales_channel"]
        body.append(
            [html.escape(r["sales_channel_name"])]
            + [kpi(f"channel.{sc}.{col}", r[col], kind) for col, _, kind in METRICS]
        )
    return f"<h3>Per sales channel, last {info['period_days']} days</h3>" + _table(
        ["Sales channel"] + [m[1] for m in METRICS], body
    )


def _daily_table(info: dict[str, Any], daily: list[dict[str, Any]]) -> str:
    start = info["as_of"] - timedelta(days=DAILY_TABLE_DAYS - 1)
    recent = sorted(
        (r for r in daily if r["day"] >= start), key=lambda r: (r["day"], r["sales_channel"]), reverse=True
    )
    if not recent:
        return _empty("daily", f"No purchases or cancellations in the last {DAILY_TABLE_DAYS} days.")
    body = []
    for r in recent:
        prefix = f"daily.{r['day'].isoformat()}.{r['sales_channel']}"
        body.append(
            [kpi(f"{prefix}.day", r["day"]), html.escape(r["sales_channel_name"])]
            + [kpi(f"{prefix}.{col}", r[col], kind) for col, _, kind in METRICS]
        )
    return f"<h3>Per day and sales channel, last {DAILY_TABLE_DAYS} days</h3>" + _table(
        ["Day", "Sales channel"] + [m[1] for m in METRICS], body, numeric_from=2
    )


def _top_items(info: dict[str, Any], top: list[dict[str, Any]]) -> str:
    blocks = []
    for kind, title in KINDS:
        items = [r for r in top if r["kind"] == kind]
        if not items:
            blocks.append(f"<div><h3>{title}</h3>" + _empty(f"top_{kind}", "None in the period.") + "</div>")
            continue
        body = [
            [
                str(r["rank"]),
                kpi(f"top.{kind}.{r['rank']}.name", r["name"]),
                kpi(f"top.{kind}.{r['rank']}.purchases", r["purchases"], "int"),
                kpi(f"top.{kind}.{r['rank']}.quantity", r["quantity"], "int"),
                kpi(f"top.{kind}.{r['rank']}.revenue_cents", r["revenue_cents"], "money"),
            ]
            for r in items
        ]
        qty = "Uses" if kind == "coupon" else "Units"
        window = items[0]["window_days"]
        span = f"last {kpi(f'top.{kind}.window_days', window, 'int')} days"
        if window != info["period_days"]:
            span += f" (none in the last {info['period_days']})"
        blocks.append(
            f"<div><h3>{title} <small>{span}</small></h3>"
            + _table(["#", "Name", "Purchases", qty, "Revenue"], body, numeric_from=2)
            + "</div>"
        )
    return (
        f'<section id="top"><h2>Top sellers, last {info["period_days"]} days (by revenue)</h2>'
        f'<div class="grid2">{"".join(blocks)}</div></section>'
    )


def _segments(info: dict[str, Any], segments: list[dict[str, Any]]) -> str:
    head = '<section id="segments"><h2>RFM segments</h2>'
    if info["profile_as_of"] is None:
        return (
            head
            + _empty("segments", "No profile yet: the segments appear after the first profile run.")
            + "</section>"
        )
    prev = info["previous_profile_as_of"]
    shown = sorted(segments, key=lambda r: (r["rfm_group"], r["rfm_segment"]))
    groups = sorted({r["rfm_group"] for r in shown})
    fig = go.Figure()
    for i, g in enumerate(groups):
        seg = [r for r in shown if r["rfm_group"] == g]
        fig.add_trace(
            go.Bar(
                x=[r["customers"] for r in seg],
                y=[r["rfm_segment"] for r in seg],
                orientation="h",
                name=g,
                marker_color=COLORS[i % len(COLORS)],
                text=[r["customers"] for r in seg],
                textposition="auto",
            )
        )
    fig.update_layout(
        title=f"Customers per segment, profile of {info['profile_as_of']}", legend=dict(orientation="h")
    )
    fig.update_yaxes(autorange="reversed")
    body = [
        [
            html.escape(r["rfm_group"]),
            kpi(f"segment.{r['rfm_segment']}.name", r["rfm_segment"]),
            kpi(f"segment.{r['rfm_segment']}.customers", r["customers"], "int"),
            kpi(f"segment.{r['rfm_segment']}.share", r["share"], "share"),
            kpi(f"segment.{r['rfm_segment']}.previous_customers", r["previous_customers"], "int"),
        ]
        for r in segments
    ]
    prev_label = f"On {prev}" if prev else "Previous"
    return (
        head
        + f"<p>Profile of {kpi('info.profile_as_of', info['profile_as_of'])}.</p>"
        + '<div class="split">'
        + _chart("segment_sizes", fig, height=max(360, 28 * len(shown) + 120))
        + '<div class="scroll">'
        + _table(["Group", "Segment", "Customers", "Share", prev_label], body, numeric_from=2)
        + "</div></div></section>"
    )


def _predictions(
    info: dict[str, Any], pinfo: dict[str, Any], by_segment: list[dict[str, Any]], weeks: list[dict[str, Any]]
) -> str:
    head = '<section id="predictions"><h2>Predictions <small>next 365 days, by segment</small></h2>'
    if info["profile_as_of"] is None:
        return (
            head + _empty("predictions", "No profile yet: predictions come with the profile.") + "</section>"
        )
    if pinfo.get("status") != "fitted":
        why = pinfo.get("reason") or "predictions not computed for this profile"
        return (
            head
            + _empty("predictions", f"No predictions for the profile of {info['profile_as_of']}: {why}.")
            + "</section>"
        )
    shown = [r for r in by_segment if r["predicted_customers"]]
    fig = go.Figure(
        go.Bar(
            x=[float(r["expected_revenue_365d"] or 0) for r in shown],
            y=[r["rfm_segment"] for r in shown],
            orientation="h",
            marker_color=COLORS[0],
        )
    )
    fig.update_layout(title="Expected revenue of the next 365 days per segment")
    fig.update_yaxes(autorange="reversed")
    body = [
        [
            html.escape(r["rfm_group"]),
            html.escape(r["rfm_segment"]),
            kpi(f"prediction.{r['rfm_segment']}.customers", r["customers"], "int"),
            kpi(f"prediction.{r['rfm_segment']}.expected_revenue_365d", r["expected_revenue_365d"], "amount"),
            kpi(f"prediction.{r['rfm_segment']}.expected_orders_365d", r["expected_orders_365d"]),
            kpi(f"prediction.{r['rfm_segment']}.avg_p_alive", r["avg_p_alive"], "share"),
            kpi(f"prediction.{r['rfm_segment']}.churn_low", r["churn_low"], "int"),
            kpi(f"prediction.{r['rfm_segment']}.churn_medium", r["churn_medium"], "int"),
            kpi(f"prediction.{r['rfm_segment']}.churn_high", r["churn_high"], "int"),
        ]
        for r in by_segment
    ]
    out = (
        head
        + f"<p>Model {kpi('prediction.model', pinfo['model'])} fitted on "
        + f"{kpi('prediction.buyers', pinfo['buyers'], 'int')} buyers, profile of {info['profile_as_of']}.</p>"
        + '<div class="split">'
        + _chart("expected_revenue", fig, height=max(360, 28 * len(shown) + 120))
        + '<div class="scroll">'
        + _table(
            [
                "Group",
                "Segment",
                "Customers",
                "Revenue 365 d",
                "Purchase days 365 d",
                "Mean P(alive)",
                "Churn low",
                "Churn medium",
                "Churn high",
            ],  # fmt: skip
            body,
            numeric_from=2,
        )
        + "</div></div>"
    )
    out += "<h3>Back-test</h3>"
    if pinfo.get("backtest_status") != "fitted" or not weeks:
        why = pinfo.get("backtest_reason") or "no back-test for this profile"
        return out + _empty("backtest", f"No back-test: {why}.") + "</section>"
    bt = go.Figure()
    bt.add_trace(go.Bar(x=[r["period_end"] for r in weeks], y=[r["actual"] for r in weeks], name="actual"))
    bt.add_trace(
        go.Scatter(x=[r["period_end"] for r in weeks], y=[r["predicted"] for r in weeks], name="predicted")
    )
    bt.update_layout(
        title="Repeat purchase days per week: predicted as of the start vs actual",
        legend=dict(orientation="h"),
    )
    rows_ = [
        [
            kpi(f"backtest.{r['week']}.week", r["week"]),
            f"{r['period_start']} – {r['period_end']}",
            kpi(f"backtest.{r['week']}.predicted", r["predicted"]),
            kpi(f"backtest.{r['week']}.actual", r["actual"], "int"),
        ]
        for r in weeks
    ]
    return (
        out
        + f"<p>Fitted on the purchases up to {pinfo['backtest_start']}: predicted "
        + f"{kpi('backtest.predicted', pinfo['backtest_predicted'])} repeat purchase days since, actual "
        + f"{kpi('backtest.actual', pinfo['backtest_actual'], 'int')} (off by "
        + f"{kpi('backtest.share', pinfo['backtest_share'], 'share')}).</p>"
        + '<div class="split">'
        + _chart("backtest", bt)
        + '<div class="scroll">'
        + _table(["Week", "Days", "Predicted", "Actual"], rows_, numeric_from=2)
        + "</div></div></section>"
    )


def _transitions(info: dict[str, Any], transitions: list[dict[str, Any]]) -> str:
    head = '<section id="transitions"><h2>Segment transitions</h2>'
    if info["profile_as_of"] is None:
        return head + _empty("transitions", "No profile yet.") + "</section>"
    if not transitions:
        return (
            head
            + _empty(
                "transitions", "No previous profile yet: transitions appear from the second profile date on."
            )
            + "</section>"
        )
    prev = info["previous_profile_as_of"]
    note = (
        " (the previous day's profile, recomputed because the history had no earlier date)"
        if info["previous_profile_source"] == "recomputed"
        else ""
    )
    frm = sorted({r["from_segment"] for r in transitions})
    to = sorted({r["to_segment"] for r in transitions})
    n = {(r["from_segment"], r["to_segment"]): r["customers"] for r in transitions}
    z = [[n.get((f, t), 0) for t in to] for f in frm]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=to,
            y=frm,
            colorscale="Blues",
            text=[[str(v) if v else "" for v in row] for row in z],
            texttemplate="%{text}",
            hovertemplate="%{y} → %{x}: %{z}<extra></extra>",
            showscale=False,
        )
    )
    fig.update_layout(
        title=f"Customers from segment (rows, {prev}) to segment (columns, {info['profile_as_of']})",
        xaxis=dict(title="to", tickangle=-35),
        yaxis=dict(title="from", autorange="reversed"),
        margin=dict(l=220, b=180),
    )
    moved = sorted(
        transitions,
        key=lambda r: (
            r["from_segment"] == r["to_segment"],
            -r["customers"],
            r["from_segment"],
            r["to_segment"],
        ),
    )
    body = [
        [
            html.escape(r["from_segment"]),
            html.escape(r["to_segment"]),
            kpi(f"transition.{r['from_segment']}.{r['to_segment']}", r["customers"], "int"),
        ]
        for r in moved
    ]
    total_moved = sum(r["customers"] for r in transitions if r["from_segment"] != r["to_segment"])
    return (
        head + f"<p>From the profile of {kpi('info.previous_profile_as_of', prev)}{html.escape(note)} to "
        f"{html.escape(str(info['profile_as_of']))}: {kpi('transitions.moved', total_moved, 'int')} customers "
        "changed segment (new customers come from “(new)”).</p>"
        + '<div class="split">'
        + _chart("segment_transitions", fig, height=max(480, 34 * len(frm) + 260))
        + '<div class="scroll">'
        + _table(["From", "To", "Customers"], body, numeric_from=2)
        + "</div></div></section>"
    )


def _freshness(freshness: list[dict[str, Any]]) -> str:
    head = '<section id="freshness"><h2>Data freshness</h2>'
    if not freshness:
        return head + _empty("freshness", "Nothing synced yet.") + "</section>"
    body = []
    for r in freshness:
        s = r["source"]
        body.append(
            [
                html.escape(s),
                kpi(f"freshness.{s}.last_success_at", r["last_success_at"]),
                kpi(f"freshness.{s}.hours_since_success", r["hours_since_success"], "hours"),
                kpi(f"freshness.{s}.watermark", r["watermark"]),
                kpi(f"freshness.{s}.watermark_lag_hours", r["watermark_lag_hours"], "hours"),
                f'<span class="status {html.escape(r["status"])}">{kpi(f"freshness.{s}.status", r["status"])}</span>',
            ]
        )
    return (
        head
        + _table(
            ["Source", "Last success", "Age", "Data up to (watermark)", "Lag", "Status"], body, numeric_from=9
        )
        + '<p class="note">Raw sources sync every 4 hours (stale after 8 h); the profile and the icomm '
        "export are daily (stale after 36 h).</p></section>"
    )


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f5f6f8;color:#1f2937}
header{background:#111827;color:#fff;padding:18px 28px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;color:#cbd5e1;font-size:13px}main{padding:18px 28px;max-width:1500px}
section{background:#fff;border-radius:10px;padding:14px 18px;margin:0 0 18px;box-shadow:0 1px 3px #0001}
h2{font-size:17px;margin:2px 0 12px}h2 small{font-weight:400;color:#6b7280;font-size:13px;margin-left:8px}
h3{font-size:14px;margin:14px 0 6px;color:#374151}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(180px,1fr));gap:12px}
.card{border:1px solid #e5e7eb;border-radius:8px;padding:10px 14px}.card .label{color:#6b7280;font-size:12px}
.card .value{font-size:24px;font-weight:600;margin:4px 0}.card .prev{color:#6b7280;font-size:12px}
.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:16px;align-items:start}
.split{display:grid;grid-template-columns:minmax(0,1.25fr) minmax(0,1fr);gap:16px;align-items:start}
.grid2>*,.split>*{min-width:0}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{padding:4px 8px;border-bottom:1px solid #eef0f3;text-align:left}
th{color:#6b7280;font-weight:600}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.scroll{max-height:560px;overflow:auto}.empty{color:#6b7280;font-style:italic}.note{color:#6b7280;font-size:12px}
.status.ok{color:#047857;font-weight:600}.status.stale{color:#b91c1c;font-weight:600}
"""


def render_html(conn: duckdb.DuckDBPyConnection) -> str:
    """The page as a string, from the `dash_*` tables only (run `compute_kpis` first)."""
    conn.execute("SET TimeZone = 'UTC'")  # timestamps shown and marked in UTC, whatever the session had
    info = rows(conn, "SELECT * FROM dash_info")[0]
    summary = rows(conn, "SELECT * FROM dash_summary")
    daily = rows(conn, "SELECT * FROM dash_daily_sales ORDER BY day, sales_channel")
    top = rows(conn, "SELECT * FROM dash_top_items ORDER BY kind, rank")
    segments = rows(conn, "SELECT * FROM dash_segments")
    transitions = rows(conn, "SELECT * FROM dash_segment_transitions")
    freshness = rows(conn, "SELECT * FROM dash_freshness ORDER BY source")
    by_segment = rows(conn, "SELECT * FROM dash_predictions")
    weeks = rows(conn, "SELECT * FROM dash_backtest ORDER BY week")
    pinfo = rows(conn, "SELECT * FROM dash_prediction_info")[0]
    title = f"Store dashboard — {info['integration']}"
    sub = (
        f"As of {kpi('info.as_of', info['as_of'])} ({html.escape(info['timezone'])}) · refreshed "
        f"{kpi('info.computed_at', info['computed_at'])} · amounts in {html.escape(info['currency_code'] or '—')}"
    )
    sales = (
        f'<section id="sales"><h2>Sales over time <small>last {CHART_DAYS} days</small></h2>'
        + _sales_charts(info, daily)
        + _channels(info, summary)
        + _daily_table(info, daily)
        + "</section>"
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{CSS}</style>"
        f'<script type="text/javascript">{get_plotlyjs()}</script></head><body>'
        f"<header><h1>{html.escape(title)}</h1><p>{sub}</p></header><main>"
        + _cards(info, summary)
        + sales
        + _top_items(info, top)
        + _segments(info, segments)
        + _transitions(info, transitions)
        + _predictions(info, pinfo, by_segment, weeks)
        + _freshness(freshness)
        + "</main></body></html>"
    )


def render_dashboard(conn: duckdb.DuckDBPyConnection, path: str | Path) -> Path:
    """Write the page to `path` atomically (a browser never sees half a file) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = render_html(conn)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the page is meant to be opened by people
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# ------------------------------------------------------------------------------------------ metadata
def _md(headers: list[str], body: list[list[Any]]) -> str:
    if not body:
        return "_(none)_"
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in body]
    return "\n".join(lines)


def _prediction_markdown(conn: duckdb.DuckDBPyConnection, info: dict[str, Any]) -> dict[str, str]:
    if info["profile_as_of"] is None:
        return {"predictions_by_segment": "_no profile yet_", "predictions_backtest": "_no profile yet_"}
    pinfo = rows(conn, "SELECT * FROM dash_prediction_info")[0]
    if pinfo.get("status") != "fitted":
        why = pinfo.get("reason") or "not computed for this profile"
        by_segment = f"_no predictions: {why}_"
    else:
        by_segment = f"model {pinfo['model']}, next 365 days:\n\n" + _md(
            [
                "group",
                "segment",
                "customers",
                "expected revenue",
                "purchase days",
                "churn low",
                "medium",
                "high",
            ],
            [
                [
                    r["rfm_group"],
                    r["rfm_segment"],
                    r["customers"],
                    fmt(r["expected_revenue_365d"], "amount"),
                    fmt(r["expected_orders_365d"]),
                    r["churn_low"],
                    r["churn_medium"],
                    r["churn_high"],
                ]
                for r in rows(conn, "SELECT * FROM dash_predictions")
            ],
        )
    if pinfo.get("backtest_status") != "fitted":
        backtest = f"_no back-test: {pinfo.get('backtest_reason') or 'not computed for this profile'}_"
    else:
        backtest = (
            f"fitted as of {pinfo['backtest_start']}: predicted {pinfo['backtest_predicted']}, actual "
            f"{pinfo['backtest_actual']} repeat purchase days ({fmt(pinfo['backtest_share'], 'share')} off)\n\n"
            + _md(
                ["week", "days", "predicted", "actual"],
                [
                    [r["week"], f"{r['period_start']} – {r['period_end']}", r["predicted"], r["actual"]]
                    for r in rows(conn, "SELECT * FROM dash_backtest ORDER BY week")
                ],
            )
        )
    return {"predictions_by_segment": by_segment, "predictions_backtest": backtest}


def kpi_markdown(conn: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """The page's figures as markdown tables, for the asset's metadata in the Dagster UI."""
    info = rows(conn, "SELECT * FROM dash_info")[0]
    n = info["period_days"]
    summary = rows(conn, "SELECT * FROM dash_summary WHERE period = 'last'")
    daily = rows(
        conn,
        "SELECT * FROM dash_daily_sales WHERE day > ?::DATE - ? ORDER BY day DESC, sales_channel",
        [info["as_of"], DAILY_TABLE_DAYS],
    )
    out = {
        f"kpis_last_{n}d": _md(
            ["sales channel"] + [m[1] for m in METRICS],
            [[r["sales_channel_name"]] + [fmt(r[c], k) for c, _, k in METRICS] for r in summary],
        ),
        f"daily_sales_last_{DAILY_TABLE_DAYS}d": _md(
            ["day", "sales channel"] + [m[1] for m in METRICS],
            [[r["day"], r["sales_channel_name"]] + [fmt(r[c], k) for c, _, k in METRICS] for r in daily],
        ),
    }
    top = rows(conn, "SELECT * FROM dash_top_items ORDER BY kind, rank")
    for kind, title in KINDS:
        items = [r for r in top if r["kind"] == kind]
        window = items[0]["window_days"] if items else n
        label = f"last {window} days" + (f" (none in the last {n})" if window != n else "")
        out[f"top_{title.lower()}"] = f"{label}:\n\n" + _md(
            ["#", "name", "purchases", "uses" if kind == "coupon" else "units", "revenue"],
            [
                [r["rank"], r["name"], r["purchases"], r["quantity"], fmt(r["revenue_cents"], "money")]
                for r in items
            ],
        )
    if info["profile_as_of"] is None:
        out["segments"] = out["segment_transitions"] = "_no profile yet_"
    else:
        seg = rows(conn, "SELECT * FROM dash_segments")
        out["segments"] = _md(
            ["group", "segment", "customers", "share", "previous"],
            [
                [
                    r["rfm_group"],
                    r["rfm_segment"],
                    r["customers"],
                    fmt(r["share"], "share"),
                    fmt(r["previous_customers"], "int"),
                ]
                for r in seg
            ],
        )
        tr = rows(
            conn,
            "SELECT * FROM dash_segment_transitions WHERE from_segment <> to_segment ORDER BY customers DESC, 1, 2",
        )
        out["segment_transitions"] = (
            f"{info['previous_profile_as_of']} → {info['profile_as_of']}, customers who changed segment:\n\n"
            + _md(
                ["from", "to", "customers"],
                [[r["from_segment"], r["to_segment"], r["customers"]] for r in tr],
            )
            if info["previous_profile_as_of"]
            else "_no previous profile yet_"
        )
    out.update(_prediction_markdown(conn, info))
    fr = rows(conn, "SELECT * FROM dash_freshness ORDER BY source")
    out["freshness"] = _md(
        ["source", "last success", "age", "watermark", "lag", "status"],
        [
            [
                r["source"],
                fmt(r["last_success_at"]),
                fmt(r["hours_since_success"], "hours"),
                fmt(r["watermark"]),
                fmt(r["watermark_lag_hours"], "hours"),
                r["status"],
            ]
            for r in fr
        ],
    )
    return out


def summary_figures(conn: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """The headline figures (all channels, last period) as plain numbers, for metadata and logs."""
    r = rows(conn, "SELECT * FROM dash_summary WHERE period = 'last' AND sales_channel = '*'")
    return {col: r[0][col] for col, _, _ in METRICS} if r else {}
