"""In-memory VTEX store behind the simulator, and its fixture file format.

Records are kept in the exact shape the real API returns them, so a fixture can be written by hand
from real responses and the server serves them back unchanged.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# The OMS `statusDescription` of each status (pt-BR, as the store answers): the generator writes it
# on new orders, the server on status changes.
STATUS_DESCRIPTION = {
    "waiting-for-sellers-confirmation": "Aguardando confirmação do seller",
    "payment-pending": "Pagamento Pendente",
    "payment-approved": "Pagamento Aprovado",
    "ready-for-handling": "Pronto para o manuseio",
    "handling": "Preparando Entrega",
    "invoiced": "Faturado",
    "canceled": "Cancelado",
    "cancellation-requested": "Cancelamento solicitado",
    "window-to-cancel": "Carência para cancelamento",
}

FIXTURE_KEYS = ("sales_channels", "category_tree", "brands", "products", "skus", "clients", "orders")

_ISO = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?\s*(Z|[+-]\d{2}:?\d{2})?$"
)


def parse_ms(value: str) -> int:
    """Epoch milliseconds of an ISO date (any number of fractional digits, truncated to ms)."""
    m = _ISO.match(value.strip())
    if not m:
        raise ValueError(f"not an ISO date: {value!r}")
    y, mo, d, h, mi, s, frac, tz = m.groups()
    dt = datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0), tzinfo=UTC)
    ms = int(dt.timestamp()) * 1000 + (int((frac or "0")[:3].ljust(3, "0")))
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        tz = tz[1:].replace(":", "")
        ms -= sign * (int(tz[:2]) * 60 + int(tz[2:])) * 60_000
    return ms


def fmt7(dt: datetime, extra_digit: int = 0, z: bool = False) -> str:
    """ISO UTC with 7 fractional digits, as VTEX writes them (`...43.8999581+00:00` or `...Z`)."""
    s = dt.astimezone(UTC).isoformat(timespec="microseconds")  # 2024-02-04T20:09:43.899958+00:00
    s = s[:26] + str(extra_digit % 10) + s[26:]
    return s[:27] + "Z" if z else s


@dataclass
class StoreData:
    sales_channels: list[dict[str, Any]] = field(default_factory=list)
    category_tree: list[dict[str, Any]] = field(default_factory=list)
    brands: list[dict[str, Any]] = field(default_factory=list)
    products: dict[int, dict[str, Any]] = field(default_factory=dict)
    skus: dict[int, dict[str, Any]] = field(default_factory=dict)
    clients: list[dict[str, Any]] = field(default_factory=list)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_fixture(self) -> dict[str, Any]:
        return {
            "sales_channels": self.sales_channels,
            "category_tree": self.category_tree,
            "brands": self.brands,
            "products": list(self.products.values()),
            "skus": list(self.skus.values()),
            "clients": self.clients,
            "orders": list(self.orders.values()),
        }

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_fixture(), ensure_ascii=False), encoding="utf-8")


def load_fixture(source: str | Path | dict[str, Any]) -> StoreData:
    """Build a StoreData from a fixture dict or a JSON file path."""
    data: dict[str, Any]
    data = source if isinstance(source, dict) else json.loads(Path(source).read_text(encoding="utf-8"))
    unknown = set(data) - set(FIXTURE_KEYS)
    if unknown:
        raise ValueError(f"unknown fixture keys: {sorted(unknown)}")
    products = data.get("products") or []
    if isinstance(products, dict):
        products = list(products.values())
    orders = data.get("orders") or []
    if isinstance(orders, dict):
        orders = list(orders.values())
    return StoreData(
        sales_channels=list(data.get("sales_channels") or []),
        category_tree=list(data.get("category_tree") or []),
        brands=list(data.get("brands") or []),
        products={int(p["Id"]): p for p in products},
        skus={int(s["Id"]): s for s in (data.get("skus") or [])},
        clients=list(data.get("clients") or []),
        orders={o["orderId"]: o for o in orders},
    )
