"""Pure parsers from VTEX JSON to typed row dicts (the raw tables' shape).

Rules: ids are strings; money is integer cents (VTEX already sends cents); datetimes are aware UTC.
A record missing what identifies or dates it raises RecordError(reason) so the caller can count and
skip it; optional fields that are malformed become None instead of failing the whole record.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from vtex_pipeline.vtex.dates import parse_vtex_datetime
from vtex_pipeline.vtex.errors import RecordError

EMAIL_ALIAS_SUFFIX = "ct.vtex.com.br"
_EMAIL_RE = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$"
)
_DATE_PREFIX_RE = re.compile(r"^\s*(\d{4}-\d{2}-\d{2})(?:$|[T ])")


# -- small coercions -----------------------------------------------------------------------------


def _require_dict(obj: Any, what: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise RecordError(f"{what} is not an object ({type(obj).__name__})")
    return obj


def _id(value: Any) -> str | None:
    """VTEX ids arrive as int or str; normalise to str. Bools/containers/empty are not ids."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else None
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return None


def _required_id(obj: dict[str, Any], key: str, what: str) -> str:
    value = _id(obj.get(key))
    if value is None:
        raise RecordError(f"{what} has no {key}")
    return value


def _str(value: Any) -> str | None:
    """A string field as sent; non-strings (numbers) are stringified, containers become None."""
    if value is None or isinstance(value, (dict, list, bool)):
        return None
    if isinstance(value, str):
        return value
    return str(value)


def _nonempty(value: Any) -> str | None:
    s = _str(value)
    if s is None:
        return None
    s = s.strip()
    return s or None


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        v = value.strip().lower()
        if v in ("true", "1", "yes"):
            return True
        if v in ("false", "0", "no"):
            return False
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    return None


def _cents(value: Any) -> int | None:
    """VTEX order money is integer cents; tolerate floats/numeric strings, else None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return None
        return int(round(value))
    if isinstance(value, str):
        try:
            return int(round(float(value.strip())))
        except ValueError:
            return None
    return None


def _int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def _fields(obj: dict[str, Any], coerce: Callable[[Any], Any], **keys: str) -> dict[str, Any]:
    """`{column: coerce(obj[key])}` for each `column=key`: most of a row is runs of these."""
    return {column: coerce(obj.get(key)) for column, key in keys.items()}


def _optional_datetime(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        return parse_vtex_datetime(value)
    except RecordError:
        return None


def _required_datetime(obj: dict[str, Any], key: str, what: str) -> datetime:
    value = obj.get(key)
    if value is None or value == "":
        raise RecordError(f"{what} has no {key}")
    try:
        return parse_vtex_datetime(value)
    except RecordError as exc:
        raise RecordError(f"{what} has an unparsable {key}: {exc.reason}") from None


def normalize_email(value: Any) -> str | None:
    """lower().strip(); None when empty."""
    s = _str(value)
    if s is None:
        return None
    s = s.strip().lower()
    return s or None


def is_alias_email(email: str | None) -> bool:
    """Conversation Tracker aliases (hard `…@ct.vtex.com.br` and soft `….ct.vtex.com.br`)."""
    return bool(email) and email.endswith(EMAIL_ALIAS_SUFFIX)  # type: ignore[union-attr]


def is_valid_email(email: str | None) -> bool:
    """Deliverable-looking address: simple RFC-ish shape and not a VTEX masking alias."""
    return bool(email) and bool(_EMAIL_RE.match(email)) and not is_alias_email(email)  # type: ignore[arg-type]


def _birth_date(value: Any) -> date | None:
    """Accept `1990-05-01` and ISO timestamps; the written calendar date is kept (no tz shift)."""
    if not isinstance(value, str):
        return None
    m = _DATE_PREFIX_RE.match(value)
    if not m:
        return None
    try:
        return date.fromisoformat(m.group(1))
    except ValueError:
        return None


# -- Master Data ---------------------------------------------------------------------------------


def customer_row(doc: Any) -> dict[str, Any]:
    """A CL document -> customer row. Requires `id` and a parsable `createdIn`."""
    doc = _require_dict(doc, "CL document")
    customer_id = _required_id(doc, "id", "CL document")
    what = f"CL document {customer_id}"
    email = normalize_email(doc.get("email"))
    phone = None
    for key in ("phone", "homePhone", "cellPhone", "businessPhone"):
        phone = _nonempty(doc.get(key))
        if phone:
            break
    return {
        "customer_id": customer_id,
        "user_id": _nonempty(doc.get("userId")),
        "email": email,
        "email_is_valid": is_valid_email(email),
        **_fields(
            doc,
            _nonempty,
            first_name="firstName",
            last_name="lastName",
            document="document",
            document_type="documentType",
        ),
        "phone": phone,
        "gender": _nonempty(doc.get("gender")),
        "birth_date": _birth_date(doc.get("birthDate")),
        "is_newsletter_opt_in": _bool(doc.get("isNewsletterOptIn")),
        "created_in": _required_datetime(doc, "createdIn", what),
        "updated_in": _optional_datetime(doc.get("updatedIn")),
    }


# -- OMS -----------------------------------------------------------------------------------------


def _totals(order: dict[str, Any]) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    totals = order.get("totals")
    if isinstance(totals, list):
        for t in totals:
            if isinstance(t, dict) and isinstance(t.get("id"), str):
                out[t["id"]] = _cents(t.get("value"))
    return out


def _item_row(order_id: str, index: int, item: Any) -> dict[str, Any]:
    item = _require_dict(item, f"order {order_id} item {index}")
    sku_id = _id(item.get("id"))
    if sku_id is None:
        raise RecordError(f"order {order_id} item {index} has no id (SKU id)")
    info = item.get("additionalInfo")
    info = info if isinstance(info, dict) else {}
    categories = info.get("categories")
    category_names: list[str] = []
    if isinstance(categories, list):
        for c in categories:
            if isinstance(c, dict):
                name = _nonempty(c.get("name"))
                if name is not None:
                    category_names.append(name)
    return {
        "order_id": order_id,
        "item_index": index,
        "unique_id": _nonempty(item.get("uniqueId")),
        "sku_id": sku_id,
        "product_id": _id(item.get("productId")),
        **_fields(item, _nonempty, ref_id="refId", name="name"),
        "quantity": _int(item.get("quantity")),
        **_fields(
            item,
            _cents,
            price_cents="price",
            list_price_cents="listPrice",
            selling_price_cents="sellingPrice",
        ),
        "is_gift": _bool(item.get("isGift")),
        "brand_id": _id(info.get("brandId")),
        **_fields(info, _nonempty, brand_name="brandName", categories_ids="categoriesIds"),
        "category_names": category_names,
        "seller": _id(item.get("seller")),
    }


def order_rows(order: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A Get-order response -> (order row, item rows). Requires orderId, creationDate and an items list."""
    order = _require_dict(order, "order")
    order_id = _required_id(order, "orderId", "order")
    what = f"order {order_id}"
    creation_date = _required_datetime(order, "creationDate", what)
    items = order.get("items")
    if not isinstance(items, list):
        raise RecordError(f"{what} items is not a list ({type(items).__name__})")
    item_rows = [_item_row(order_id, i, item) for i, item in enumerate(items)]

    totals = _totals(order)
    prefs = order.get("storePreferencesData")
    prefs = prefs if isinstance(prefs, dict) else {}
    client = order.get("clientProfileData")
    client = client if isinstance(client, dict) else {}
    marketing = order.get("marketingData")
    marketing = marketing if isinstance(marketing, dict) else {}
    email = normalize_email(client.get("email"))

    row = {
        "order_id": order_id,
        "sequence": _id(order.get("sequence")),
        "creation_date": creation_date,
        "creation_date_raw": order.get("creationDate"),
        "last_change": _optional_datetime(order.get("lastChange")),
        "status": _nonempty(order.get("status")),
        "sales_channel": _id(order.get("salesChannel")),
        "value_cents": _cents(order.get("value")),
        "items_cents": totals.get("Items"),
        "discounts_cents": totals.get("Discounts"),
        "shipping_cents": totals.get("Shipping"),
        "tax_cents": totals.get("Tax"),
        "currency_code": _nonempty(prefs.get("currencyCode")),
        "client_email": email,
        "client_email_is_alias": is_alias_email(email),
        **_fields(
            client,
            _nonempty,
            user_profile_id="userProfileId",
            client_document="document",
            client_first_name="firstName",
            client_last_name="lastName",
        ),
        **_fields(
            marketing,
            _str,
            coupon="coupon",
            utm_source="utmSource",
            utm_medium="utmMedium",
            utm_campaign="utmCampaign",
        ),
        **_fields(order, _nonempty, origin="origin", affiliate_id="affiliateId"),
        "item_count": len(item_rows),
    }
    return row, item_rows


def order_summary(item: Any) -> dict[str, Any]:
    """A List-orders entry -> the few fields the sync needs (money is not trusted from the list)."""
    item = _require_dict(item, "order list entry")
    order_id = _required_id(item, "orderId", "order list entry")
    return {
        "order_id": order_id,
        "creation_date": _required_datetime(item, "creationDate", f"order list entry {order_id}"),
        "status": _nonempty(item.get("status")),
        "sales_channel": _id(item.get("salesChannel")),
    }


# -- Catalog -------------------------------------------------------------------------------------


def product_row(p: Any) -> dict[str, Any]:
    """GET /api/catalog/pvt/product/{id} (PascalCase) -> product row."""
    p = _require_dict(p, "product")
    return {
        "product_id": _required_id(p, "Id", "product"),
        "name": _str(p.get("Name")),
        **_fields(p, _id, department_id="DepartmentId", category_id="CategoryId", brand_id="BrandId"),
        **_fields(p, _nonempty, ref_id="RefId", link_id="LinkId"),
        **_fields(p, _bool, is_active="IsActive", is_visible="IsVisible"),
    }


def sku_row(s: Any) -> dict[str, Any]:
    """GET /api/catalog_system/pvt/sku/stockkeepingunitbyid/{id} -> SKU row."""
    s = _require_dict(s, "SKU")
    return {
        "sku_id": _required_id(s, "Id", "SKU"),
        **_fields(s, _id, product_id="ProductId", brand_id="BrandId"),
        **_fields(
            s,
            _str,
            name_complete="NameComplete",
            product_name="ProductName",
            sku_name="SkuName",
            brand_name="BrandName",
        ),
        "product_category_ids": _nonempty(s.get("ProductCategoryIds")),
        "is_active": _bool(s.get("IsActive")),
    }


def category_rows(tree: Any) -> list[dict[str, Any]]:
    """Flatten the category tree (departments at depth 0) with `/1/10/` path ids like order items use."""
    if not isinstance(tree, list):
        raise RecordError(f"category tree is not a list ({type(tree).__name__})")
    rows: list[dict[str, Any]] = []

    def visit(node: Any, parent_id: str | None, depth: int, parent_path: str) -> None:
        node = _require_dict(node, "category node")
        category_id = _required_id(node, "id", "category node")
        children = node.get("children")
        children = children if isinstance(children, list) else []
        has_children = _bool(node.get("hasChildren"))
        path = f"{parent_path}{category_id}/"
        rows.append(
            {
                "category_id": category_id,
                "name": _str(node.get("name")),
                "parent_id": parent_id,
                "depth": depth,
                "path_ids": path,
                "has_children": has_children if has_children is not None else bool(children),
            }
        )
        for child in children:
            visit(child, category_id, depth + 1, path)

    for root in tree:
        visit(root, None, 0, "/")
    return rows


def brand_row(b: Any) -> dict[str, Any]:
    """brand/list or pagedlist item -> brand row."""
    b = _require_dict(b, "brand")
    return {
        "brand_id": _required_id(b, "id", "brand"),
        "name": _str(b.get("name")),
        "is_active": _bool(b.get("isActive")),
    }


def sales_channel_row(s: Any) -> dict[str, Any]:
    """saleschannel/list item -> row; the id is a string because orders carry `salesChannel: "1"`."""
    s = _require_dict(s, "sales channel")
    return {
        "sales_channel_id": _required_id(s, "Id", "sales channel"),
        "name": _str(s.get("Name")),
        "is_active": _bool(s.get("IsActive")),
        **_fields(s, _nonempty, currency_code="CurrencyCode", time_zone="TimeZone"),
    }
