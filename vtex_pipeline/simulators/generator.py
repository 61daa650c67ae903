"""Deterministic generator of a realistic VTEX store fixture.

Reproduces the data quirks the pipeline must handle (masked e-mails, guest orders, null
`marketingData`, never-updated CL docs, 7-digit dates, orders beyond the 2-year horizon, products
missing from the catalog, messy coupon spellings) at tens of thousands of orders in seconds.
"""

from __future__ import annotations

import gc
import math
import random
import uuid
from bisect import bisect_left
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from typing import Any

from vtex_pipeline.simulators.store import STATUS_DESCRIPTION, fmt7

ACCOUNT = "simstore"
ACCOUNT_ID = "a8b27fb4-6516-4cc0-82b6-a5f2b011e6e2"
HOST = f"https://{ACCOUNT}.vtexcommercestable.com.br"
SPAN_DAYS = 790  # ~26 months: some orders fall beyond the API's 2-year horizon

_FIRST = [
    "Ana",
    "Maria",
    "João",
    "Pedro",
    "Lucas",
    "Julia",
    "Mariana",
    "Gabriel",
    "Rafael",
    "Beatriz",
    "Carla",
    "Bruno",
    "Fernanda",
    "Diego",
    "Camila",
    "Thiago",
    "Larissa",
    "Felipe",
    "Patricia",
    "Rodrigo",
    "Sofia",
    "Mateus",
    "Isabela",
    "Gustavo",
    "Leticia",
    "Vinicius",
]
_LAST = [
    "Silva",
    "Santos",
    "Oliveira",
    "Souza",
    "Rodrigues",
    "Ferreira",
    "Alves",
    "Pereira",
    "Lima",
    "Gomes",
    "Costa",
    "Ribeiro",
    "Martins",
    "Carvalho",
    "Almeida",
    "Lopes",
    "Soares",
    "Fernandes",
    "Vieira",
    "Barbosa",
    "Rocha",
    "Dias",
    "Nascimento",
    "Andrade",
]
_CITIES = (
    ("São Paulo", "SP"),
    ("Rio de Janeiro", "RJ"),
    ("Belo Horizonte", "MG"),
    ("Curitiba", "PR"),
    ("Porto Alegre", "RS"),
    ("Salvador", "BA"),
    ("Recife", "PE"),
    ("Fortaleza", "CE"),
    ("Brasília", "DF"),
    ("Campinas", "SP"),
    ("Florianópolis", "SC"),
    ("Goiânia", "GO"),
)
_DOMAINS = ("gmail.com", "hotmail.com", "yahoo.com.br", "outlook.com", "uol.com.br", "example.com")
_DEPTS = {
    "Moda": {
        "Calçados": ["Tênis", "Sandálias", "Botas"],
        "Roupas": ["Camisetas", "Calças", "Vestidos"],
        "Acessórios": ["Bolsas", "Relógios"],
    },
    "Casa": {
        "Cozinha": ["Panelas", "Utensílios"],
        "Decoração": ["Quadros", "Vasos", "Almofadas"],
        "Cama e Banho": ["Toalhas", "Lençóis"],
    },
    "Eletrônicos": {
        "Celulares": ["Smartphones", "Capas"],
        "Áudio": ["Fones", "Caixas de Som"],
        "Informática": ["Notebooks", "Periféricos", "Monitores"],
    },
    "Esporte": {
        "Fitness": ["Halteres", "Tapetes"],
        "Ciclismo": ["Bicicletas", "Capacetes"],
        "Corrida": ["Relógios GPS", "Garrafas"],
    },
    "Beleza": {
        "Perfumes": ["Femininos", "Masculinos"],
        "Maquiagem": ["Olhos", "Boca", "Rosto"],
        "Cabelos": ["Shampoos", "Condicionadores"],
    },
    "Pet": {"Cães": ["Rações", "Brinquedos"], "Gatos": ["Areias", "Arranhadores"]},
}
_BRAND_NAMES = (
    "Aurora",
    "Nuvem",
    "Vértice",
    "Orma Carbon",
    "Pedra Azul",
    "Lumen",
    "Kairos",
    "Brisa",
    "Sol Nascente",
    "Atlas",
    "Pampa",
    "Terra Viva",
    "Zênite",
    "Boreal",
    "Praia Mansa",
    "Cobalto",
    "Jatobá",
    "Ipê",
    "Horizonte",
    "Fenix",
    "Coral",
    "Âmbar",
    "Onda",
    "Mirante",
    "Sertão",
    "Gaia",
    "Tupã",
    "Quasar",
    "Nimbus",
    "Vento Sul",
)
_ADJ = [
    "Clássico",
    "Premium",
    "Sport",
    "Urban",
    "Eco",
    "Max",
    "Slim",
    "Pro",
    "Light",
    "Comfort",
    "Vintage",
    "Essencial",
]
_SIZES = ("P", "M", "G", "GG", "36", "38", "40", "42", "110V", "220V", "Azul", "Preto", "Branco")
_COUPONS = (
    " summer10",
    "SUMMER10",
    "summer10",
    "Welcome ",
    "WELCOME",
    "welcome",
    "FRETEGRATIS",
    "fretegratis ",
    "BLACKFRIDAY",
    "blackfriday",
    "VIP15",
    " vip15 ",
)
_UTM = (
    ("google", "cpc", "search-brand"),
    ("facebook", "social", "retargeting"),
    ("instagram", "social", "stories"),
    ("newsletter", "email", "weekly"),
    ("icomm", "email", "winback"),
    ("", "", ""),
)
_PAYMENTS = (
    ("2", "Visa", "creditCard"),
    ("4", "Mastercard", "creditCard"),
    ("6", "Boleto Bancário", "bankInvoice"),
    ("125", "Pix", "instantPayment"),
    ("1", "American Express", "creditCard"),
)
_PROMOS = (
    ("Frete grátis acima de R$ 199", "Free shipping over 199"),
    ("10% em Moda", "Fashion week"),
    ("Leve 3 pague 2", "3x2 selected items"),
    ("Black Friday", "Black Friday deals"),
    ("Cupom SUMMER10", "Summer coupon"),
    ("Boas-vindas", "First purchase"),
)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _slug(s: str) -> str:
    table = str.maketrans("áàâãéêíóôõúçÁÂÃÉÍÓÚÇ ", "aaaaeeiooouc" + "aaaeiouc" + "-")
    return s.translate(table).lower()


def _cpf(rng: random.Random) -> str:
    return f"{rng.randrange(10**10, 10**11):011d}"


def _catalog(rng: random.Random) -> tuple[list[dict], list[dict], dict[int, dict], list[dict]]:
    """Category tree, brands, products (by id) and SKU templates (including ghost products)."""
    tree: list[dict[str, Any]] = []
    leaves: list[tuple[list[tuple[int, str]], str]] = []  # (path [(id,name)...], url)
    cat_id = 10
    sub_id = 100
    for d_idx, (dname, cats) in enumerate(_DEPTS.items(), start=1):
        durl = f"{HOST}/{_slug(dname)}"
        dnode: dict[str, Any] = {
            "id": d_idx,
            "name": dname,
            "hasChildren": True,
            "url": durl,
            "children": [],
            "Title": dname,
            "MetaTagDescription": "",
        }
        for cname, subs in cats.items():
            curl = f"{durl}/{_slug(cname)}"
            cnode: dict[str, Any] = {
                "id": cat_id,
                "name": cname,
                "hasChildren": True,
                "url": curl,
                "children": [],
                "Title": f"{cname} - {dname}",
                "MetaTagDescription": "",
            }
            for sname in subs:
                surl = f"{curl}/{_slug(sname)}"
                cnode["children"].append(
                    {
                        "id": sub_id,
                        "name": sname,
                        "hasChildren": False,
                        "url": surl,
                        "children": [],
                        "Title": sname,
                        "MetaTagDescription": "",
                    }
                )
                leaves.append(([(d_idx, dname), (cat_id, cname), (sub_id, sname)], surl))
                sub_id += 1
            dnode["children"].append(cnode)
            cat_id += 1
        tree.append(dnode)

    brands = [
        {
            "id": 2000000 + i,
            "name": n,
            "isActive": i % 13 != 7,
            "title": n,
            "metaTagDescription": n,
            "imageUrl": None,
        }
        for i, n in enumerate(_BRAND_NAMES[:30])
    ]

    products: dict[int, dict[str, Any]] = {}
    sku_templates: list[dict[str, Any]] = []
    sku_id = 1000
    n_products = 300
    ghost_ids = {n_products + 1 + k for k in range(6)}  # referenced by orders, absent from the catalog
    for pid in range(1, n_products + 7):
        path, _ = leaves[rng.randrange(len(leaves))]
        brand = brands[
            min(int(rng.paretovariate(1.0)) - 1, len(brands) - 1)
            if rng.random() < 0.5
            else rng.randrange(len(brands))
        ]
        leaf_name = path[-1][1]
        pname = (
            f"{leaf_name[:-1] if leaf_name.endswith('s') else leaf_name} {brand['name']} {rng.choice(_ADJ)}"
        )
        link = f"{_slug(pname)}-{pid}"
        ref = f"REF{pid:05d}"
        prod = {
            "Id": pid,
            "Name": pname,
            "DepartmentId": path[0][0],
            "CategoryId": path[-1][0],
            "BrandId": brand["id"],
            "LinkId": link,
            "RefId": ref,
            "IsVisible": True,
            "Description": f"{pname}: produto de teste do simulador.",
            "DescriptionShort": pname,
            "ReleaseDate": f"202{rng.randrange(0, 4)}-0{rng.randrange(1, 10)}-01T00:00:00",
            "KeyWords": ",".join(pname.split()[:3]),
            "Title": pname,
            "IsActive": rng.random() > 0.05,
            "TaxCode": "",
            "MetaTagDescription": pname,
            "SupplierId": None,
            "ShowWithoutStock": True,
            "AdWordsRemarketingCode": "",
            "LomadeeCampaignCode": "",
            "Score": 1,
        }
        if pid not in ghost_ids:
            products[pid] = prod
        cats_ids = "/" + "/".join(str(c) for c, _ in path) + "/"
        categories = [{"id": c, "name": n} for c, n in reversed(path)]
        cluster = ",".join(str(c) for c in sorted(rng.sample(range(135, 150), rng.randrange(1, 3))))
        base = rng.randrange(19, 900) * 100 + 90
        for k in range(rng.choice((1, 1, 2, 2, 3))):
            size = _SIZES[(pid + k) % len(_SIZES)]
            list_price = base + rng.choice((0, 0, 1000, 2000))
            sku_templates.append(
                {
                    "id": str(sku_id),
                    "productId": str(pid),
                    "ean": f"789{sku_id:010d}",
                    "name": f"{pname} {size}",
                    "refId": f"{ref}-{k}",
                    "price": base,
                    "listPrice": list_price,
                    "imageUrl": f"https://{ACCOUNT}.vteximg.com.br/arquivos/ids/{150000 + sku_id}-55-55/{link}.jpg",
                    "detailUrl": f"/{link}/p",
                    "additionalInfo": {
                        "brandName": brand["name"],
                        "brandId": str(brand["id"]),
                        "categoriesIds": cats_ids,
                        "categories": categories,
                        "productClusterId": cluster,
                        "commercialConditionId": "1",
                        "dimension": {
                            "cubicweight": 0.5,
                            "height": 10,
                            "length": 20,
                            "weight": 300,
                            "width": 15,
                        },
                    },
                    "_ghost": pid in ghost_ids,
                }
            )
            sku_id += 1
    return tree, brands, products, sku_templates


def _sales_channels() -> list[dict[str, Any]]:
    cfi = {
        "CurrencyDecimalDigits": 2,
        "CurrencyDecimalSeparator": ",",
        "CurrencyGroupSeparator": ".",
        "CurrencyGroupSize": 3,
        "StartsWithCurrencySymbol": True,
    }
    return [
        {
            "Id": i,
            "Name": n,
            "IsActive": True,
            "ProductClusterId": None,
            "CountryCode": "BRA",
            "CultureInfo": "pt-BR",
            "TimeZone": "E. South America Standard Time",
            "CurrencyCode": "BRL",
            "CurrencySymbol": "R$",
            "CurrencyLocale": 1046,
            "CurrencyFormatInfo": dict(cfi),
            "Origin": None,
            "Position": i,
            "ConditionRule": None,
            "CurrencyDecimalDigits": 2,
        }
        for i, n in ((1, "Loja principal"), (2, "App"), (3, "Marketplace"))
    ]


def generate_store(
    customers: int,
    orders: int,
    seed: int = 42,
    now: datetime | None = None,
    bursts: Sequence[tuple[datetime, int]] = (),
    span_days: int = SPAN_DAYS,
    drop_out: bool = False,
) -> dict[str, Any]:
    """A fixture dict with exactly `customers` CL docs and `orders` (+ burst) orders.

    `now` defaults to today 00:00 UTC, so output is stable within a day; pass it for full determinism.
    `span_days` is how far back orders go (default ~26 months, beyond the 2-year horizon).
    `drop_out`: buyers behave as the prediction models assume (the demo's store): each buys at a rate of
    their own and may stop for good after any purchase, and spends at a level of their own; without it
    order times are uniform over the span, which no churn model can fit.
    """
    # Millions of small containers: the cyclic GC would otherwise rescan them over and over.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _generate(customers, orders, seed, now, bursts, span_days, drop_out)
    finally:
        if was_enabled:
            gc.enable()


def _drop_out_orders(
    rng: random.Random, buyers: list[int], start_ts: float, now_ts: float, target: int
) -> tuple[list[float], list[int], dict[int, float]]:
    """`target` order times and owners by the MBG/NBD story, and a spend level per buyer.

    A buyer's first purchase is uniform over the span; they may drop out right then or after any later
    purchase with their own probability p ~ Beta(0.8, 3); purchases come at their own rate
    lambda ~ Gamma(1, scale) (exponential gaps). The rate scale is raised until the store has at least
    `target` orders, then random repeat purchases are left out to hit it exactly.
    """
    day = 86400.0
    first = {c: rng.uniform(start_ts, now_ts - 60) for c in buyers}
    p_drop = {c: rng.betavariate(0.8, 3.0) for c in buyers}
    rate = {c: rng.gammavariate(1.0, 1.0) for c in buyers}  # scaled below (per day)
    spend = {c: rng.gammavariate(4.0, 0.25) for c in buyers}
    gap_u = {c: [rng.random() for _ in range(60)] for c in buyers}  # fixed draws: one story per buyer
    drop_u = {c: [rng.random() for _ in range(61)] for c in buyers}
    scale = 1 / 120  # purchases per day for a rate of 1
    while True:
        events: list[tuple[float, int, bool]] = []
        for c in buyers:
            t = first[c]
            events.append((t, c, False))
            for k in range(60):
                if drop_u[c][k] < p_drop[c]:
                    break
                t += -math.log(1.0 - gap_u[c][k]) / (rate[c] * scale) * day
                if t >= now_ts - 60:
                    break
                events.append((t, c, True))
        if len(events) >= target or scale > 10:
            break
        scale *= 1.25
    repeats = [i for i, e in enumerate(events) if e[2]]
    extra = len(events) - target
    if extra > 0:
        drop = set(rng.sample(repeats, extra))
        events = [e for i, e in enumerate(events) if i not in drop]
    events.sort()
    return [e[0] for e in events], [e[1] for e in events], spend


def _generate(
    customers: int,
    orders: int,
    seed: int,
    now: datetime | None,
    bursts: Sequence[tuple[datetime, int]],
    span_days: int,
    drop_out: bool = False,
) -> dict[str, Any]:
    if customers < 1 and orders > 0:
        raise ValueError("orders need at least one customer")
    rng = random.Random(seed)
    if now is None:
        now = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    now = now.astimezone(UTC)
    now_ts = now.timestamp()
    tree, brands, products, skus = _catalog(rng)
    real_skus = [s for s in skus if not s["_ghost"]]
    ghost_skus = [s for s in skus if s["_ghost"]]
    sku_cum = list(accumulate(1.0 / (i + 1) ** 0.8 for i in range(len(real_skus))))  # popular SKUs sell more
    promos = [
        {
            "id": _uuid(rng),
            "name": n,
            "featured": i % 2 == 0,
            "description": d,
            "matchedParameters": {},
            "additionalInfo": None,
        }
        for i, (n, d) in enumerate(_PROMOS)
    ]

    # --- order timestamps (regular + bursts), sorted
    start_ts = now_ts - span_days * 86400
    times = [rng.uniform(start_ts, now_ts - 60) for _ in range(orders)]
    for w_start, n in bursts:
        b0 = w_start.astimezone(UTC).timestamp()
        times.extend(rng.uniform(b0, b0 + 4 * 3600 - 0.001) for _ in range(n))
    times.sort()
    total_orders = len(times)

    # --- buyers: most buy once, a heavy tail buys many times
    n_buyers = min(customers, max(1, int(customers * 0.75)), total_orders) if total_orders else 0
    buyer_idx = rng.sample(range(customers), n_buyers) if n_buyers else []
    weights = list(accumulate(min(rng.paretovariate(0.9), 100.0) for _ in range(n_buyers)))
    order_owner = list(buyer_idx)  # each buyer gets one order
    extra = total_orders - n_buyers
    if extra > 0:
        order_owner.extend(
            buyer_idx[i] for i in (bisect_left(weights, rng.random() * weights[-1]) for _ in range(extra))
        )
    rng.shuffle(order_owner)
    spend_level: dict[int, float] = {}
    if drop_out and n_buyers and not bursts:
        # its own random stream: everything drawn after this point (people, items) stays as without it
        times, order_owner, spend_level = _drop_out_orders(
            random.Random(seed + 7919), buyer_idx, start_ts, now_ts, total_orders
        )
    first_order: dict[int, float] = {}
    for t, c in zip(times, order_owner, strict=True):
        if c not in first_order:
            first_order[c] = t

    # --- clients (CL)
    clients: list[dict[str, Any]] = []
    people: list[dict[str, Any]] = []
    for i in range(customers):
        fn, ln = rng.choice(_FIRST), rng.choice(_LAST)
        email = f"{_slug(fn)}.{_slug(ln)}{i}@{rng.choice(_DOMAINS)}"
        fo = first_order.get(i)
        created_ts = (
            (fo - rng.uniform(60, 45 * 86400))
            if fo is not None
            else rng.uniform(start_ts - 90 * 86400, now_ts - 3600)
        )
        created = datetime.fromtimestamp(created_ts, UTC)
        updated = None
        if rng.random() >= 0.4:
            updated = datetime.fromtimestamp(rng.uniform(created_ts, now_ts - 1), UTC)
        city, state = rng.choice(_CITIES)
        doc_id, user_id = _uuid(rng), _uuid(rng)
        phone = f"+55{rng.randrange(11, 99)}9{rng.randrange(10**7, 10**8)}"
        doc = _cpf(rng)
        cl = {
            "id": doc_id,
            "accountId": ACCOUNT_ID,
            "accountName": ACCOUNT,
            "dataEntityId": "CL",
            "email": email,
            "firstName": fn,
            "lastName": ln,
            "document": doc,
            "documentType": "cpf",
            "phone": phone,
            "homePhone": None,
            "cellPhone": phone,
            "businessPhone": None,
            "isCorporate": False,
            "corporateName": None,
            "tradeName": None,
            "corporateDocument": None,
            "stateRegistration": None,
            "isFreeStateRegistration": None,
            "isNewsletterOptIn": rng.random() < 0.55,
            "localeDefault": "pt-BR",
            "gender": rng.choice(("male", "female", None)),
            "birthDate": (
                f"{rng.randrange(1955, 2006)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}T00:00:00Z"
            )
            if rng.random() < 0.6
            else None,
            "userId": user_id,
            "createdIn": fmt7(created, rng.randrange(10), z=True),
            "createdBy": None,
            "updatedIn": fmt7(updated, rng.randrange(10), z=True) if updated else None,
            "updatedBy": None,
            "lastInteractionIn": fmt7(updated or created, rng.randrange(10), z=True),
            "lastInteractionBy": None,
            "followers": [],
            "tags": [],
            "auto_filter": None,
            "rclastcart": None,
            "rclastsession": None,
            "carttag": None,
            "checkouttag": None,
        }
        clients.append(cl)
        address = {
            "addressType": "residential",
            "receiverName": f"{fn} {ln}",
            "addressId": _uuid(rng)[:13],
            "versionId": None,
            "entityId": None,
            "postalCode": f"{rng.randrange(10000, 99999)}-000",
            "city": city,
            "state": state,
            "country": "BRA",
            "street": f"Rua {rng.choice(_LAST)}",
            "number": str(rng.randrange(1, 3000)),
            "neighborhood": "Centro",
            "complement": "",
            "reference": None,
            "geoCoordinates": [],
        }
        people.append({"cl": cl, "address": address})

    # --- orders
    out_orders: list[dict[str, Any]] = []
    store_prefs = {
        "countryCode": "BRA",
        "currencyCode": "BRL",
        "currencyFormatInfo": {
            "CurrencyDecimalDigits": 2,
            "CurrencyDecimalSeparator": ",",
            "CurrencyGroupSeparator": ".",
            "CurrencyGroupSize": 3,
            "StartsWithCurrencySymbol": True,
        },
        "currencyLocale": 1046,
        "currencySymbol": "R$",
        "timeZone": "E. South America Standard Time",
    }
    sellers = [
        {
            "id": "1",
            "name": ACCOUNT,
            "logo": None,
            "fulfillmentEndpoint": f"http://fulfillment.vtexcommerce.com.br/api/fulfillment?an={ACCOUNT}",
        }
    ]
    ghost_every = 150
    n_real = len(real_skus)
    for seq, (t, owner) in enumerate(zip(times, order_owner, strict=True)):
        person = people[owner]
        cl = person["cl"]
        created = datetime.fromtimestamp(t, UTC)
        age_days = (now_ts - t) / 86400
        r = rng.random()
        if age_days > 7:
            status = "canceled" if r < 0.08 else "invoiced"
        else:
            if age_days <= 1:
                pool: tuple[str, ...] = ("payment-pending", "payment-approved", "ready-for-handling")
            elif age_days <= 3:
                pool = ("ready-for-handling", "handling", "invoiced")
            else:
                pool = ("handling", "invoiced", "invoiced")
            status = "canceled" if r < 0.06 else pool[rng.randrange(len(pool))]
        ch = rng.random()
        channel = "1" if ch < 0.82 else ("2" if ch < 0.94 else "3")
        origin, affiliate = ("Fulfillment", "MKP") if channel == "3" else ("Marketplace", "")

        # items
        n_lines = 1 if rng.random() < 0.55 else rng.randrange(2, 5)
        picked = [
            real_skus[bisect_left(sku_cum, rng.random() * sku_cum[-1]) % n_real] for _ in range(n_lines)
        ]
        if seq % ghost_every == 7:
            picked[0] = ghost_skus[seq % len(ghost_skus)]
        if n_lines == 1 and rng.random() < 0.05:  # two SKUs (or two lines) of the same product
            same = [s for s in skus if s["productId"] == picked[0]["productId"]]
            picked.append(same[-1])
        promo = None
        pr = rng.random()
        if pr < 0.25:
            promo = promos[rng.randrange(len(promos))]
        coupon = rng.choice(_COUPONS) if rng.random() < 0.15 else None
        items = []
        items_total = 0
        discount_total = 0
        for _idx, s in enumerate(picked):
            qty = 1 if rng.random() < 0.8 else rng.randrange(2, 5)
            if spend_level:
                qty = max(1, round(qty * spend_level[owner]))
            price = s["price"]
            selling = price
            if promo is not None or coupon is not None:
                selling = price - (price // 10)
            items_total += price * qty
            discount_total += (selling - price) * qty
            item = {
                "uniqueId": f"{rng.getrandbits(128):032X}",
                "id": s["id"],
                "productId": s["productId"],
                "ean": s["ean"],
                "quantity": qty,
                "seller": "1",
                "name": s["name"],
                "refId": s["refId"],
                "price": price,
                "listPrice": s["listPrice"],
                "manualPrice": None,
                "priceTags": [],
                "imageUrl": s["imageUrl"],
                "detailUrl": s["detailUrl"],
                "sellerSku": s["id"],
                "additionalInfo": s["additionalInfo"],
                "measurementUnit": "un",
                "unitMultiplier": 1,
                "sellingPrice": selling,
                "isGift": False,
                "rewardValue": 0,
                "priceDefinition": {
                    "sellingPrices": [{"value": selling, "quantity": qty}],
                    "calculatedSellingPrice": selling,
                    "total": selling * qty,
                },
                "costPrice": price // 2,
            }
            items.append(item)
        shipping = 0 if rng.random() < 0.3 else rng.randrange(9, 40) * 100 + 90
        value = items_total + discount_total + shipping
        totals = [
            {"id": "Items", "name": "Total dos Itens", "value": items_total},
            {"id": "Discounts", "name": "Total dos Descontos", "value": discount_total},
            {"id": "Shipping", "name": "Total do Frete", "value": shipping},
            {"id": "Tax", "name": "Total da Taxa", "value": 0},
        ]

        # e-mail masking and identity
        em = rng.random()
        if em < 0.80:
            email = f"{rng.getrandbits(128):032x}@ct.vtex.com.br"
        elif em < 0.95:
            email = f"{cl['email']}-{rng.getrandbits(52):013x}.ct.vtex.com.br"
        else:
            email = cl["email"]
        guest = rng.random() < 0.03
        user_profile_id = _uuid(rng) if guest else cl["userId"]
        order_id = f"{1300000000000 + seq * 7919 + rng.randrange(7919)}-01"
        auth = created + timedelta(minutes=rng.uniform(1, 90)) if status not in ("payment-pending",) else None
        invoiced = None
        last = auth or created
        if status == "invoiced":
            invoiced = created + timedelta(days=rng.uniform(0.2, min(6.0, max(0.21, age_days))))
            if invoiced.timestamp() > now_ts:
                invoiced = datetime.fromtimestamp(now_ts - 1, UTC)
            last = invoiced
        elif status == "canceled":
            last = created + timedelta(hours=rng.uniform(1, 72))
            if last.timestamp() > now_ts:
                last = datetime.fromtimestamp(now_ts - 1, UTC)
        pay_id, pay_name, pay_group = _PAYMENTS[rng.randrange(len(_PAYMENTS))]
        rnb = []
        if promo is not None:
            rnb.append(promo)
        if coupon is not None:
            rnb.append(promos[4])
        marketing = None
        if rng.random() >= 0.3 or coupon is not None:
            src, med, camp = _UTM[rng.randrange(len(_UTM))]
            marketing = {
                "id": "marketingData",
                "utmSource": src,
                "utmPartner": "",
                "utmMedium": med,
                "utmCampaign": camp,
                "coupon": coupon or "",
                "utmiCampaign": "",
                "utmipage": "",
                "utmiPart": "",
                "marketingTags": [],
            }
        address = person["address"]
        order = {
            "orderId": order_id,
            "sequence": str(500000 + seq),
            "marketplaceOrderId": "",
            "marketplaceServicesEndpoint": f"http://oms.vtexinternal.com.br/api/oms?an={ACCOUNT}",
            "sellerOrderId": f"00-{order_id}",
            "origin": origin,
            "affiliateId": affiliate,
            "salesChannel": channel,
            "merchantName": None,
            "status": status,
            "workflowIsInError": False,
            "statusDescription": STATUS_DESCRIPTION[status],
            "value": value,
            "creationDate": fmt7(created, rng.randrange(10)),
            "lastChange": fmt7(last, rng.randrange(10)),
            "orderGroup": order_id[:-3],
            "followUpEmail": f"{rng.getrandbits(64):016x}@ct.vtex.com.br",
            "lastMessage": None,
            "hostname": ACCOUNT,
            "isCompleted": status not in ("payment-pending",),
            "roundingError": 0,
            "orderFormId": f"{rng.getrandbits(128):032x}",
            "allowCancellation": status not in ("invoiced", "canceled"),
            "allowEdition": False,
            "isCheckedIn": False,
            "authorizedDate": fmt7(auth, rng.randrange(10)) if auth else None,
            "invoicedDate": fmt7(invoiced, rng.randrange(10)) if invoiced else None,
            "cancelReason": "Cliente desistiu" if status == "canceled" else None,
            "checkedInPickupPointId": None,
            "totals": totals,
            "sellers": sellers,
            "clientPreferencesData": {"locale": "pt-BR", "optinNewsLetter": bool(cl["isNewsletterOptIn"])},
            "storePreferencesData": store_prefs,
            "customData": None,
            "invoiceData": None,
            "changesAttachment": None,
            "packageAttachment": {"packages": []},
            "paymentData": {
                "giftCards": [],
                "transactions": [
                    {
                        "isActive": True,
                        "transactionId": f"{rng.getrandbits(128):032X}",
                        "merchantName": ACCOUNT,
                        "payments": [
                            {
                                "id": f"{rng.getrandbits(128):032X}",
                                "paymentSystem": pay_id,
                                "paymentSystemName": pay_name,
                                "value": value,
                                "installments": rng.choice((1, 1, 2, 3, 6))
                                if pay_group == "creditCard"
                                else 1,
                                "referenceValue": value,
                                "group": pay_group,
                                "tid": str(rng.randrange(10**8)),
                                "connectorResponses": {},
                            }
                        ],
                    }
                ],
            },
            "shippingData": {
                "id": "shippingData",
                "address": address,
                "logisticsInfo": [
                    {
                        "itemIndex": i,
                        "selectedSla": "Normal",
                        "lockTTL": "10d",
                        "price": 0,
                        "listPrice": 0,
                        "sellingPrice": 0,
                        "deliveryCompany": "Correios",
                        "shippingEstimate": "5bd",
                        "selectedDeliveryChannel": "delivery",
                    }
                    for i in range(len(items))
                ],
                "trackingHints": None,
                "selectedAddresses": [address],
            },
            "ratesAndBenefitsData": {"id": "ratesAndBenefitsData", "rateAndBenefitsIdentifiers": rnb},
            "marketingData": marketing,
            "giftRegistryData": None,
            "clientProfileData": {
                "id": "clientProfileData",
                "email": email,
                "firstName": cl["firstName"],
                "lastName": cl["lastName"],
                "documentType": "cpf",
                "document": cl["document"],
                "phone": cl["phone"],
                "corporateName": None,
                "tradeName": None,
                "corporateDocument": None,
                "stateInscription": None,
                "corporatePhone": None,
                "isCorporate": False,
                "userProfileId": user_profile_id,
                "userProfileVersion": None,
                "customerClass": None,
                "customerCode": None,
            },
            "items": items,
            "marketplaceItems": [],
        }
        if logistics := order["shippingData"]["logisticsInfo"]:
            logistics[0]["price"] = logistics[0]["listPrice"] = logistics[0]["sellingPrice"] = shipping
        out_orders.append(order)

    return {
        "sales_channels": _sales_channels(),
        "category_tree": tree,
        "brands": brands,
        "products": list(products.values()),
        "clients": clients,
        "orders": out_orders,
    }
