"""Column descriptions for the UI, read from the attribute reference (`docs/attributes.md`, shipped in
the package as `sql/attributes.md`): one place states each rule, and the Dagster column schema shows it."""

from __future__ import annotations

import re
from functools import cache

from vtex_pipeline.warehouse.sql_files import packaged_sql_dir

_NAME = re.compile(r"`([a-z0-9_.{},]+)`")


def expand(names: str) -> list[str]:
    """`orders_{30d,60d}` -> orders_30d, orders_60d (one doc row per attribute family)."""
    m = re.search(r"\{([^}]+)\}", names)
    if not m:
        return [n.strip() for n in names.split(",")]
    return [
        x
        for part in m.group(1).split(",")
        for x in expand(names[: m.start()] + part.strip() + names[m.end() :])
    ]


@cache
def column_descriptions() -> dict[str, str]:
    """column (or `table.column`) -> its rule, from every table row of attributes.md; {} without it."""
    path = packaged_sql_dir() / "attributes.md"
    if not path.is_file():
        return {}
    out: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        # a table row: | `column`, `column` | rule | model | icomm field |
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if len(cells) < 2:
            continue
        for names in _NAME.findall(cells[0]):
            for name in expand(names):
                out.setdefault(name, cells[1])
    return out
