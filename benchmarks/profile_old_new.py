"""The profile before and after the SQL models became assets, side by side on one generated store.

    .venv/bin/python -m benchmarks.profile_old_new --db STORE.duckdb     # a store from profile_scale

"Old" is the code of `BASELINE` (the last commit before issue 18: the SQL as TEMP tables inside the
one `customer_profile` asset), taken from git with `git archive` into a scratch folder; "new" is the
working tree (staging and intermediate models stored as tables, `profile/models.py`). Each runs
`benchmarks.profile_scale --reuse` in its own process on its own copy of the same store (wall time of
`compute_profile`, peak RSS of the process), alternately, `REPEATS` times each; the best of each side
is compared (the machine is shared: other work only ever adds time), and the two `customer_profile`
tables are compared row for row. Needs a git checkout; elsewhere it says so instead of measuring.

The old profile rebuilt the staging SQL inside every run (and again in the dashboard and a check);
the new one keeps the staging tables the sync built while raw has not changed. So the new side runs
as in production: `--staging-only` first in its own process (the sync job's share, reported as its
own row), then the daily run, which is what is compared with the old profile run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import duckdb

BASELINE = "f5a7801515add357fcc236aeb2e398375d02989d"
REPO = Path(__file__).resolve().parents[1]
NOISE = 1.05  # the same code varies by a few % between runs on a shared 2-core machine
REPEATS = 3  # per side; the best of each is compared
Figure = dict[str, Any]


def _baseline_tree(tmp: Path) -> Path:
    """`vtex_pipeline/` as of BASELINE, extracted under tmp (importable via PYTHONPATH)."""
    root = tmp / "baseline"
    root.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", BASELINE, "vtex_pipeline"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    return root


def _run(db: Path, pythonpath: Path | None, *flags: str) -> dict[str, Any]:
    # run from the store's folder, not the checkout (`python -c` puts the working directory first on
    # sys.path); the baseline tree goes before the installed package, so the old package wins
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(p) for p in (pythonpath, REPO) if p])}
    out = subprocess.run(
        [sys.executable, "-c", _RUNNER, str(db), *flags],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=db.parent,
    ).stdout
    first, rest = out.split("\n", 1)
    return {**json.loads(rest[rest.index("{") :]), **json.loads(first)}


# prints which package ran, then profile_scale's JSON
_RUNNER = """
import sys, json, vtex_pipeline
print(json.dumps({"package": vtex_pipeline.__file__}))
from benchmarks import profile_scale
profile_scale.main(["--reuse", "--db", *sys.argv[1:]])
"""


def _differences(old: Path, new: Path) -> int:
    with duckdb.connect() as conn:
        conn.execute(f"ATTACH '{old}' AS old (READ_ONLY)")
        conn.execute(f"ATTACH '{new}' AS new (READ_ONLY)")
        return conn.execute(
            """SELECT (SELECT count(*) FROM (SELECT * FROM old.customer_profile
                                             EXCEPT ALL SELECT * FROM new.customer_profile))
                    + (SELECT count(*) FROM (SELECT * FROM new.customer_profile
                                             EXCEPT ALL SELECT * FROM old.customer_profile))"""
        ).fetchone()[0]


def _best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest run, with the smallest peak of all: other work on a shared machine only adds."""
    best = dict(min(runs, key=lambda r: r["seconds_total"]))
    best["peak_rss_mb"] = min(r["peak_rss_mb"] for r in runs)
    best["all_seconds"] = [r["seconds_total"] for r in runs]
    return best


def compare(db: Path, repeats: int = REPEATS) -> dict[str, Any]:
    """Old and new, alternating (old, new, old, new, ...), each on a fresh copy of the store."""
    runs: dict[str, list[dict[str, Any]]] = {"old": [], "new": [], "staging": []}
    with tempfile.TemporaryDirectory(prefix="profile_old_new_") as tmpdir:
        tmp = Path(tmpdir)
        tree = _baseline_tree(tmp)
        for _ in range(repeats):
            for which, path in (("old", tree), ("new", None)):
                copy = tmp / f"{which}.duckdb"
                shutil.copy(db, copy)
                if which == "new":
                    runs["staging"].append(_run(copy, None, "--staging-only"))
                runs[which].append(_run(copy, path))
        rows = _differences(tmp / "old.duckdb", tmp / "new.duckdb")
    staging = min(runs["staging"], key=lambda r: r["seconds_staging"])
    staging = {**staging, "peak_rss_mb": min(r["peak_rss_mb"] for r in runs["staging"])}
    return {"old": _best(runs["old"]), "new": _best(runs["new"]), "staging": staging, "rows_differing": rows}


def figures(db: Path) -> list[Figure]:
    """Rows for `benchmarks.run`: seconds and peak memory, new (value) against old (baseline)."""
    try:
        r = compare(db)
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        return [{"name": "profile old vs new: not measured", "value": None, "unit": "", "target": None,
                 "op": None, "note": f"needs a git checkout with {BASELINE[:7]}: {exc!r}"[:300]}]  # fmt: skip
    old, new, staging = r["old"], r["new"], r["staging"]
    note = (
        f"{new['customers']:,} customers, {new['purchases']:,} purchases; old = {BASELINE[:7]} (TEMP tables, "
        f"staging rebuilt in the run); new = the daily run after the sync built staging; best of "
        f"{len(new['all_seconds'])}: old {old['all_seconds']} s, new {new['all_seconds']} s"
    )
    return [
        {"name": "profile old vs new: seconds", "value": new["seconds_total"], "unit": "s",
         "baseline": old["seconds_total"], "target": round(old["seconds_total"] * NOISE, 2), "op": "<=",
         "note": f"{note}; target = old + 5% noise"},
        {"name": "profile old vs new: peak memory", "value": round(new["peak_rss_mb"] / 1024, 2), "unit": "GB",
         "baseline": round(old["peak_rss_mb"] / 1024, 2), "target": round(old["peak_rss_mb"] * NOISE / 1024, 2),
         "op": "<=", "note": "ru_maxrss of each computing process; target = old + 5%"},
        {"name": "profile new: staging, once per sync", "value": staging["seconds_staging"], "unit": "s",
         "baseline": None, "target": None, "op": None,
         "note": f"the sync job's share, own process (peak {staging['peak_rss_mb'] / 1024:.2f} GB); "
                 f"old rebuilt it in every profile run, dashboard and check; new + this = "
                 f"{staging['seconds_staging'] + new['seconds_total']:.1f} s"},
        {"name": "profile old vs new: rows differing", "value": r["rows_differing"], "unit": "rows",
         "baseline": None, "target": 0, "op": "<=", "note": "customer_profile EXCEPT ALL, both ways"},
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", required=True, help="a store generated by benchmarks.profile_scale (copied)")
    args = ap.parse_args(argv)
    print(json.dumps(compare(Path(args.db)), indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
