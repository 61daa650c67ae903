"""The seed's "Verificar" step: prove the key works and holds every permission the pipeline needs.

One cheap probe per License Manager resource of the integration role. 200 and 404 both prove the
permission (the route answered past the role check); 403 names the missing resource; a 401 stops
everything because no other answer would mean anything.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vtex_pipeline.vtex import permissions as P
from vtex_pipeline.vtex.errors import (
    ROLE_NAME,
    VtexAuthError,
    VtexError,
    VtexNotFound,
    VtexPermissionError,
)
from vtex_pipeline.vtex.http import VtexClient, VtexSettings
from vtex_pipeline.vtex.permissions import Permission

if TYPE_CHECKING:
    from vtex_pipeline.config import IntegrationConfig

log = logging.getLogger("vtex_pipeline.vtex")

PROBE_MAX_ATTEMPTS = 2
MADE_UP_ORDER_ID = "0000000000000-01"


def grant_hint(permission: Permission) -> str:
    return (
        f"add {permission.product} / {permission.resource} to the integration role ({ROLE_NAME}) "
        "in VTEX Admin > Account settings > User roles"
    )


@dataclass
class PermissionCheck:
    permission: Permission
    ok: bool
    status: int | None
    detail: str
    grant: str


@dataclass
class VerifyReport:
    account: str
    base_url: str
    checks: list[PermissionCheck] = field(default_factory=list)
    sales_channels: list[tuple[str, str]] = field(default_factory=list)
    auth_error: str | None = None

    @property
    def ok(self) -> bool:
        checked = {c.permission.key for c in self.checks if c.ok}
        return self.auth_error is None and all(p.key in checked for p in P.ALL_PERMISSIONS)

    @property
    def missing(self) -> list[Permission]:
        return [c.permission for c in self.checks if not c.ok]


class _AuthStop(Exception):
    pass


def verify_vtex(client: VtexClient, *, max_attempts: int = PROBE_MAX_ATTEMPTS) -> VerifyReport:
    """Probe each permission in permissions.ALL_PERMISSIONS and list the sales channels."""
    report = VerifyReport(account=client.settings.account, base_url=client.base)
    context: dict[str, Any] = {"order_id": None, "product_id": None, "sku_id": None}

    def probe(permission: Permission, fn: Callable[[], Any]) -> Any:
        try:
            result = fn()
        except VtexAuthError as exc:
            report.auth_error = str(exc)
            raise _AuthStop from None
        except VtexPermissionError as exc:
            report.checks.append(PermissionCheck(permission, False, 403, str(exc), grant_hint(permission)))
            return None
        except VtexNotFound:
            report.checks.append(
                PermissionCheck(permission, True, 404, "allowed (probe id not found)", grant_hint(permission))
            )
            return None
        except VtexError as exc:
            report.checks.append(
                PermissionCheck(
                    permission, False, exc.status, f"could not check: {exc}", grant_hint(permission)
                )
            )
            return None
        report.checks.append(PermissionCheck(permission, True, 200, "allowed", grant_hint(permission)))
        return result

    def get(path: str, call: str, **kw: Any) -> Any:
        return client.get_json(path, call=f"verify.{call}", max_attempts=max_attempts, **kw)

    try:
        listing = probe(
            P.LIST_ORDERS,
            lambda: get("/api/oms/pvt/orders", "list_orders", params={"page": 1, "per_page": 1}),
        )
        if isinstance(listing, dict) and isinstance(listing.get("list"), list) and listing["list"]:
            first = listing["list"][0]
            if isinstance(first, dict) and first.get("orderId"):
                context["order_id"] = str(first["orderId"])

        order = probe(
            P.VIEW_ORDER,
            lambda: get(f"/api/oms/pvt/orders/{context['order_id'] or MADE_UP_ORDER_ID}", "get_order"),
        )
        if isinstance(order, dict) and isinstance(order.get("items"), list):
            for item in order["items"]:
                if isinstance(item, dict):
                    if str(item.get("productId") or "").isdigit():
                        context["product_id"] = str(item["productId"])
                    if str(item.get("id") or "").isdigit():
                        context["sku_id"] = str(item["id"])
                    break

        probe(
            P.READ_DOCUMENTS,
            lambda: get(
                "/api/dataentities/CL/search",
                "cl_search",
                params={"_fields": "id"},
                headers={"REST-Range": "resources=0-1"},
            ),
        )
        probe(P.CATEGORY, lambda: get("/api/catalog_system/pub/category/tree/1", "category_tree"))
        probe(
            P.BRANDS,
            lambda: get(
                "/api/catalog_system/pvt/brand/pagedlist", "brands", params={"pageSize": 1, "page": 1}
            ),
        )
        probe(P.PRODUCT, lambda: get(f"/api/catalog/pvt/product/{context['product_id'] or 1}", "product"))
        probe(
            P.SKU,
            lambda: get(f"/api/catalog_system/pvt/sku/stockkeepingunitbyid/{context['sku_id'] or 1}", "sku"),
        )
        channels = probe(
            P.SALES_CHANNEL, lambda: get("/api/catalog_system/pvt/saleschannel/list", "sales_channels")
        )
        if isinstance(channels, list):
            report.sales_channels = [
                (str(c.get("Id")), str(c.get("Name") or ""))
                for c in channels
                if isinstance(c, dict) and c.get("Id") is not None
            ]
    except _AuthStop:
        log.error("VTEX verify stopped: %s", report.auth_error)
    return report


def probe_settings(cfg: IntegrationConfig, *, timeout: float) -> VtexSettings:
    """The client settings of a one-off check (`verify`, preflight): one connection, two attempts, so a
    wrong key fails in seconds instead of after the sync's retries."""
    return VtexSettings(
        account=cfg.account or "simulated",
        environment=cfg.environment,
        app_key=os.environ.get(cfg.app_key_env, ""),
        app_token=os.environ.get(cfg.app_token_env, ""),
        base_url=cfg.base_url,
        requests_per_second=cfg.requests_per_second,
        concurrency=1,
        max_attempts=2,
        timeout=timeout,
        credential_vars=f"{cfg.app_key_env} / {cfg.app_token_env}",
    )
