"""docs/attributes.md is the reference of every profile and export column, and the UI's descriptions."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from vtex_pipeline.assets.metadata import model_metadata
from vtex_pipeline.icomm.fields import load_mapping
from vtex_pipeline.profile import PROFILE_COLUMNS
from vtex_pipeline.profile.attributes import column_descriptions, expand

REPO = Path(__file__).resolve().parents[2]


def test_every_profile_and_export_column_is_documented():
    described = column_descriptions()
    assert [c for c in PROFILE_COLUMNS if c not in described] == []
    mapping = load_mapping(None)
    assert [f.column for f in mapping.fields if f.column not in described] == []
    assert described["avg_amount_90d"] == (
        "amount / orders rounded half-even to the cent; NULL without a purchase."
    )
    assert expand("n_{a,b}_{30d,60d}") == ["n_a_30d", "n_a_60d", "n_b_30d", "n_b_60d"]


def test_column_descriptions_reach_the_column_schema():
    conn = duckdb.connect()
    conn.execute("CREATE TABLE int_windows AS SELECT 1 AS orders_30d, 2::BIGINT AS cents_30d, 3 AS odd")
    schema = model_metadata(conn, "int_windows")["dagster/column_schema"]
    got = {c.name: c.description for c in schema.columns}
    assert got == {
        "orders_30d": "Purchases in the window; 0 without one.",
        "cents_30d": "Sum of the window's order values in cents.",
        "odd": None,
    }


def test_no_reference_to_documents_outside_the_repository():
    outside = re.compile("profile-" + "attributes|spec " + "section|section " + "6")
    hits = [
        str(path.relative_to(REPO))
        for folder in ("vtex_pipeline", "vtex_pipeline_tests", "docs", "benchmarks")
        for path in (REPO / folder).rglob("*")
        if path.suffix in (".py", ".sql", ".md", ".yaml") and outside.search(path.read_text(encoding="utf-8"))
    ]
    hits += ["README.md"] if outside.search((REPO / "README.md").read_text(encoding="utf-8")) else []
    assert hits == []
