"""The store dashboard: KPI tables computed in DuckDB (`kpis`) and one self-contained HTML page (`render`)."""

from vtex_pipeline.dashboard.kpis import DASH_TABLES, compute_kpis, dashboard_path
from vtex_pipeline.dashboard.render import kpi_markdown, render_dashboard

__all__ = ["DASH_TABLES", "compute_kpis", "dashboard_path", "kpi_markdown", "render_dashboard"]
