"""Column descriptions for the UI, read from the attribute reference (`docs/attributes.md`, shipped in
the package as `sql/attributes.md`): one place states each rule, and the Dagster column schema shows it."""

from __future__ import annotations

import re
from functools import cache

from vtex_pipeline.warehouse.sql_files import packaged_sql_dir

# a table row of attributes.md: | `column` | rule | model | icomm field |
_ROW = re.compile(r"^\|\s*`([a-z0-9_.{}/, ]+)`\s*\|\s*([^|]+?)\s*\|")


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
        m = _ROW.match(line)
        if m:
            for name in expand(m.group(1)):
                out.setdefault(name, m.group(2).replace("\\|", "|"))
    return out
