"""Where VTEX's own OpenAPI specs are: the project's read-only reference beside the checkout
(`../shared/reference/vtex-openapi`), or the folder named by `VTEX_OPENAPI_DIR`. They are reference
material, not part of the repository: tests that parse their examples skip, saying why, without them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parents[1]


def _find() -> Path:
    candidates = [Path(os.environ["VTEX_OPENAPI_DIR"])] if os.environ.get("VTEX_OPENAPI_DIR") else []
    candidates += [p / "shared" / "reference" / "vtex-openapi" for p in (_ROOT.parent, _ROOT.parent.parent)]
    return next((c for c in candidates if (c / "orders-api.json").is_file()), candidates[0])


OPENAPI_DIR = _find()
needs_openapi_specs = pytest.mark.skipif(
    not (OPENAPI_DIR / "orders-api.json").is_file(),
    reason=f"VTEX OpenAPI specs not found (looked in {OPENAPI_DIR}; set VTEX_OPENAPI_DIR)",
)
