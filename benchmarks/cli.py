"""The command line every benchmark module shares: its docstring's first line as the description, its
own options, and the result printed as JSON."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any


def json_main(
    doc: str | None,
    argv: list[str] | None,
    options: dict[str, dict[str, Any]],
    compute: Callable[[argparse.Namespace], Any],
) -> int:
    """Parse `argv` with `options` (flag -> add_argument's keywords), print `compute(args)` as JSON."""
    ap = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    for flag, kw in options.items():
        ap.add_argument(flag, **kw)
    print(json.dumps(compute(ap.parse_args(argv)), indent=2))
    return 0
