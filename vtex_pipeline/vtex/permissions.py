"""The License Manager resources each VTEX route needs.

One table shared by the client (to name a missing permission on a 403, and for `verify`) and by the
store simulator (to decide which routes a key may call). The names are those of the seed's
`ICOMMKT_Integration` role, as they appear in the VTEX admin (product / resource).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Permission:
    key: str  # short stable id used in simulator key configs: "oms.list_orders"
    product: str  # VTEX admin product: "OMS"
    resource: str  # VTEX admin resource: "List Orders"

    @property
    def label(self) -> str:
        return f"{self.product} / {self.resource}"


LIST_ORDERS = Permission("oms.list_orders", "OMS", "List Orders")
VIEW_ORDER = Permission("oms.view_order", "OMS", "View Order")
READ_DOCUMENTS = Permission("masterdata.read_documents", "Dynamic Storage", "Read only documents")
CATEGORY = Permission("catalog.category", "Catalog", "Category")
BRANDS = Permission("catalog.brands", "Catalog", "Brands")
PRODUCT = Permission("catalog.product", "Catalog", "Product")
SKU = Permission("catalog.sku", "Catalog", "SKU")
SALES_CHANNEL = Permission("catalog.sales_channel", "Catalog", "Sales Channel")
# The Orders Feed v3 key's own role (one feed per app key, so not the integration role's key). "Feed v3
# and Hook view only" reads; the pipeline also creates the config, hence Admin. Not in ALL_PERMISSIONS:
# the main key does not need it.
FEED = Permission("oms.feed", "OMS", "Feed v3 and Hook Admin")

ALL_PERMISSIONS: tuple[Permission, ...] = (
    LIST_ORDERS,
    VIEW_ORDER,
    READ_DOCUMENTS,
    CATEGORY,
    BRANDS,
    PRODUCT,
    SKU,
    SALES_CHANNEL,
)

# (method, path regex) -> permission. First match wins; order matters (detail after list).
ROUTES: tuple[tuple[str, re.Pattern[str], Permission], ...] = (
    ("GET", re.compile(r"^/api/oms/pvt/orders/?$"), LIST_ORDERS),
    ("GET", re.compile(r"^/api/oms/pvt/orders/[^/]+/?$"), VIEW_ORDER),
    ("GET", re.compile(r"^/api/dataentities/[A-Za-z0-9_]+/(search|scroll)/?$"), READ_DOCUMENTS),
    ("GET", re.compile(r"^/api/catalog_system/pub/category/tree/\d+/?$"), CATEGORY),
    ("GET", re.compile(r"^/api/catalog_system/pvt/brand/(list|pagedlist)/?$"), BRANDS),
    ("GET", re.compile(r"^/api/catalog/pvt/product/\d+/?$"), PRODUCT),
    ("GET", re.compile(r"^/api/catalog_system/pvt/sku/stockkeepingunitbyid/\d+/?$"), SKU),
    ("GET", re.compile(r"^/api/catalog_system/pvt/saleschannel/list/?$"), SALES_CHANNEL),
    *(
        (m, re.compile(rf"^/api/orders/{path}/?$"), FEED)
        for path in ("feed", "feed/config", "hook/config", "expressions/jsonata")
        for m in ("GET", "POST", "DELETE")
    ),
)


def permission_for(method: str, path: str) -> Permission | None:
    """The permission a route needs, or None for routes outside the table."""
    for m, pattern, perm in ROUTES:
        if m == method.upper() and pattern.match(path):
            return perm
    return None
