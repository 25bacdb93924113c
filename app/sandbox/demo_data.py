"""One realistic, messy data set that every sandbox seeds from, in its own format.

Deterministic (seeded), so the demo and the tests see the same records each time.
The mess is on purpose: the same company typed twice with another case and suffix,
invalid emails and tax IDs, missing countries, people with no company, and a slice
of customers that already exist in the ledger (matched by email, tax ID or name).
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache

from stdnum import get_cc_module

FIRST = ["Olivia", "Liam", "Emma", "Noah", "Amelia", "Oliver", "Sophia", "Elijah", "Isla", "Lucas", "Mia", "Mateo", "Chloe", "Leo", "Grace", "Hugo", "Zoe", "Arjun", "Priya", "Sofia", "Lena", "Jonas", "Clara", "Finn", "Aisha", "Omar", "Yuki", "Kenji", "Maya", "Ethan", "Ava", "Jack", "Ruby", "Henry", "Ella", "Theo", "Nora"]
LAST = ["Smith", "Jones", "Williams", "Brown", "Taylor", "Wilson", "Müller", "Schmidt", "Dubois", "Martin", "Nguyen", "Patel", "Singh", "Kim", "O'Brien", "García", "López", "Rossi", "Bianchi", "van", "Dijk", "de", "Vries", "Novak", "Kowalski", "Andersson", "Larsen", "Murphy", "Kelly", "Chen", "Walker"]
WORDS = ["Harbour", "Summit", "Maple", "Granite", "Willow", "Copper", "Northwind", "Bluebell", "Riverside", "Oakridge", "Pioneer", "Lighthouse", "Evergreen", "Silverline", "Redwood", "Meadow", "Falcon", "Orchard", "Sterling", "Beacon", "Juniper", "Cedar", "Atlas", "Horizon", "Aurora", "Kestrel", "Thistle", "Ember", "Alder", "Quarry", "Saffron", "Marigold", "Larch", "Heron", "Brook", "Fjord", "Tundra", "Cobalt", "Indigo"]
TRADES = ["Bakery", "Joinery", "Plumbing", "Design", "Consulting", "Logistics", "Dental", "Florists", "Print", "Studio", "Coffee", "Roasters", "Analytics", "Landscaping", "Electrical", "Catering", "Architects", "Veterinary", "Brewing", "Ceramics", "Tutoring", "Fitness"]

COUNTRIES = {
    # iso: (suffixes, cities with region and postcode shape, phone prefix, currency, tax scheme)
    "US": (("Inc", "LLC", "Co"), (("Austin", "TX", "787##"), ("Denver", "CO", "802##"), ("Portland", "OR", "972##"),
           ("Boston", "MA", "021##")), "+1 512 555 0###", "USD", "ein"),
    "GB": (("Ltd", "Limited", "LLP"), (("Leeds", "", "LS# #AB"), ("Bristol", "", "BS# #CD"),
           ("Manchester", "", "M# #EF")), "+44 20 7946 0###", "GBP", "vat"),
    "DE": (("GmbH", "AG", "KG"), (("Berlin", "BE", "10###"), ("Hamburg", "HH", "20###"), ("München", "BY", "80###")),
           "+49 30 901820##", "EUR", "vat"),
    "AU": (("Pty Ltd", "Pty", "Ltd"), (("Sydney", "NSW", "2###"), ("Melbourne", "VIC", "3###")), "+61 2 9###8###",
           "AUD", "abn"),
    "NL": (("B.V.", "BV", "N.V."), (("Amsterdam", "NH", "10## AB"), ("Utrecht", "UT", "35## CD")),
           "+31 20 5###0##", "EUR", "btw"),
}

PRODUCTS = (
    ("CONS-HR", "Consulting hour", Decimal("125.00")),
    ("SETUP", "Onboarding and setup", Decimal("950.00")),
    ("LIC-PRO", "Pro licence (annual)", Decimal("1188.00")),
    ("LIC-SEAT", "Additional seat (monthly)", Decimal("19.99")),
    ("TRAIN-D", "Training day", Decimal("780.00")),
    ("SUPP-PR", "Priority support (quarter)", Decimal("333.33")),
    ("HW-KIT", "Hardware starter kit", Decimal("249.50")),
)


@dataclass(slots=True)
class DemoCompany:
    key: str
    name: str
    domain: str | None
    email: str | None
    phone: str | None
    address_line1: str | None
    city: str | None
    region: str | None
    postal_code: str | None
    country: str | None  # ISO code; None when the CRM has it blank
    country_name: str | None  # as typed in the CRM
    tax_id: str | None
    currency: str
    in_ledger: str | None = None  # "email" | "tax_id" | "name": exists in the ledger already, matched that way
    ledger_name: str | None = None
    mess: str | None = None  # what is wrong with it, for the demo's story


@dataclass(slots=True)
class DemoPerson:
    key: str
    first_name: str
    last_name: str
    email: str | None
    phone: str | None
    company_key: str | None
    city: str | None = None
    country: str | None = None
    mess: str | None = None


@dataclass(slots=True)
class DemoLine:
    sku: str
    name: str
    quantity: Decimal
    unit_price: Decimal
    discount_percent: Decimal = Decimal(0)


@dataclass(slots=True)
class DemoDeal:
    key: str
    name: str
    company_key: str
    stage: str  # "open" | "won" | "lost"
    currency: str
    close_date: str  # ISO date
    lines: list[DemoLine] = field(default_factory=list)
    paid: str | None = None  # "partial" | "full": payments in the ledger once invoiced

    @property
    def amount(self) -> Decimal:
        total = Decimal(0)
        for line in self.lines:
            gross = line.quantity * line.unit_price
            total += (gross - gross * line.discount_percent / 100).quantize(Decimal("0.01"))
        return total


@dataclass(slots=True)
class DemoData:
    companies: list[DemoCompany]
    people: list[DemoPerson]
    deals: list[DemoDeal]
    products: tuple[tuple[str, str, Decimal], ...] = PRODUCTS


COUNTRY_NAMES = {"US": "United States", "GB": "United Kingdom", "DE": "Germany", "AU": "Australia", "NL": "Netherlands"}


def _digits(rng: random.Random, pattern: str) -> str:
    return "".join(str(rng.randint(0, 9)) if ch == "#" else ch for ch in pattern)


def _valid_tax_id(rng: random.Random, country: str) -> str:
    scheme = COUNTRIES[country][4]
    mod = get_cc_module(country.lower(), scheme)
    for _ in range(10000):
        if country == "US":
            raw = f"{rng.choice(['12', '27', '45', '84', '91'])}-{rng.randint(1000000, 9999999)}"
        elif country == "GB":
            raw = "GB" + "".join(str(rng.randint(0, 9)) for _ in range(9))
        elif country == "DE":
            raw = "DE" + str(rng.randint(1, 9)) + "".join(str(rng.randint(0, 9)) for _ in range(8))
        elif country == "AU":
            raw = "".join(str(rng.randint(1, 9)) for _ in range(11))
        else:  # NL
            raw = "NL" + "".join(str(rng.randint(0, 9)) for _ in range(9)) + "B01"
        if mod.is_valid(raw):
            return mod.format(raw) if country in {"US", "AU"} else raw
    raise RuntimeError("no valid tax id generated")


SIZES = {"demo": {}, "large": {"companies": 1000, "people": 100, "deals": 600}}
_size: dict[str, int] = {}


def proportional(companies: int) -> dict[str, int]:
    """A data set of ``companies`` companies with people, deals and products in the large set's proportions
    (per 1,000 companies: 100 people, 600 deals of which about half won, 20 products)."""
    companies = max(1, companies)
    return {"companies": companies, "people": max(1, companies // 10), "deals": max(1, companies * 3 // 5),
            "products": max(len(PRODUCTS), companies // 50)}


@contextlib.contextmanager
def sized(kind: str, companies: int | None = None) -> Iterator[None]:
    """Seed sandboxes with a bigger data set (``large``: 1,000 companies, ~300 won deals; or ``companies``
    of them with the rest in proportion) meanwhile."""
    global _size
    before, _size = _size, proportional(companies) if companies else dict(SIZES[kind])
    try:
        yield
    finally:
        _size = before


def demo_data(seed: int = 7, companies: int | None = None, people: int | None = None,
              deals: int | None = None) -> DemoData:
    data = _demo_data(seed, companies or _size.get("companies", 150), people or _size.get("people", 110),
                      deals or _size.get("deals", 60))
    products = _size.get("products", len(PRODUCTS))
    return dataclasses.replace(data, products=PRODUCTS + _more_products(products - len(PRODUCTS))) \
        if products > len(PRODUCTS) else data


def _more_products(count: int) -> tuple[tuple[str, str, Decimal], ...]:
    """Catalogue items beyond the demo's seven, for the larger data sets."""
    rng = random.Random(count)
    return tuple((f"GEN-{n:04d}", f"{rng.choice(WORDS)} {rng.choice(('service', 'kit', 'plan', 'pack'))} {n}",
                  Decimal(rng.randint(500, 250_000)) / 100) for n in range(1, count + 1))


@cache
def _demo_data(seed: int, companies: int, people: int, deals: int) -> DemoData:
    rng = random.Random(seed)
    out_companies: list[DemoCompany] = []
    used: set[str] = set()
    for i in range(companies):
        country = rng.choices(list(COUNTRIES), weights=(5, 4, 2, 2, 1))[0]
        suffixes, cities, phone_pat, currency, _ = COUNTRIES[country]
        tries = 0
        while True:
            base = f"{rng.choice(WORDS)} {rng.choice(TRADES)}"
            tries += 1
            if tries > 40:  # a large data set runs out of word pairs: number the rest
                base = f"{base} {i}"
            if base not in used:
                used.add(base)
                break
        suffix = rng.choice(suffixes)
        name = f"{base} {suffix}"
        domain = base.lower().replace(" ", "") + rng.choice([".com", ".co", ".io", ".net"])
        city, region, post = rng.choice(cities)
        out_companies.append(
            DemoCompany(
                key=f"co{i:03d}",
                name=name,
                domain=domain,
                email=f"{rng.choice(['accounts', 'billing', 'finance', 'hello'])}@{domain}",
                phone=_digits(rng, phone_pat),
                address_line1=f"{rng.randint(1, 240)} {rng.choice(WORDS)} {rng.choice(['Street', 'Road', 'Lane', 'Avenue'])}",
                city=city,
                region=region or None,
                postal_code=_digits(rng, post),
                country=country,
                country_name=rng.choice([COUNTRY_NAMES[country], country]),
                tax_id=_valid_tax_id(rng, country) if rng.random() < 0.8 else None,
                currency=currency,
            )
        )
    # The mess.
    for idx in range(12):  # the same company again, another case and suffix
        src = out_companies[idx * 7]
        variant_suffix = {"Ltd": "Limited", "Limited": "Ltd", "Inc": "Inc.", "LLC": "L.L.C.", "GmbH": "GMBH"}.get(
            src.name.rsplit(" ", 1)[-1], "Co"
        )
        twin = dataclasses.replace(src)
        twin.key = f"dup{idx:02d}"
        twin.name = (src.name.rsplit(" ", 1)[0].upper() if idx % 2 else src.name.rsplit(" ", 1)[0].lower().title()) + (
            " " + variant_suffix
        )
        twin.mess = f"duplicate of {src.name}"
        out_companies.append(twin)
    for idx in range(3, companies, 19):  # invalid emails
        out_companies[idx].email = rng.choice(
            [f"accounts@@{out_companies[idx].domain}", f"billing at {out_companies[idx].domain}", "finance@", "n/a"]
        )
        out_companies[idx].mess = "invalid email"
    for idx in range(5, companies, 23):  # invalid tax ids (bad check digit)
        c = out_companies[idx]
        if c.tax_id:
            last = c.tax_id[-1]
            c.tax_id = c.tax_id[:-1] + (str((int(last) + 1) % 10) if last.isdigit() else "7")
            c.mess = "invalid tax ID"
    for idx in range(11, companies, 31):  # country left blank in the CRM
        c = out_companies[idx]
        c.country = None
        c.country_name = None
        c.mess = c.mess or "no country"
    # A slice already exists in the ledger.
    for n, idx in enumerate(range(1, companies, 6)):
        c = out_companies[idx]
        if c.mess:
            continue
        how = ("email", "tax_id", "name")[n % 3]
        if how == "tax_id" and not c.tax_id:
            how = "name"
        c.in_ledger = how
        c.ledger_name = {
            "email": c.name.rsplit(" ", 1)[0] + " (old)",
            "tax_id": c.name.rsplit(" ", 1)[0],
            "name": c.name.upper(),
        }[how]

    out_people: list[DemoPerson] = []
    for i in range(people):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        company = rng.choice(out_companies[:companies]) if rng.random() < 0.7 else None
        domain = company.domain if company else rng.choice(["gmail.com", "outlook.com", "proton.me", "icloud.com"])
        local = f"{first}.{last}".lower().replace("'", "").replace(" ", "")
        person = DemoPerson(
            key=f"p{i:03d}",
            first_name=first,
            last_name=last,
            email=f"{local}@{domain}",
            phone=_digits(rng, COUNTRIES[company.country or "US"][2]) if company and rng.random() < 0.6 else None,
            company_key=company.key if company else None,
            city=None if company else rng.choice(["Austin", "Leeds", "Berlin", "Sydney"]),
            country=None if company else rng.choice(["US", "GB", "DE", "AU"]),
        )
        if i % 17 == 4:
            person.email = person.email.replace("@", " @ ") if person.email else None
            person.mess = "invalid email"
        out_people.append(person)

    out_deals: list[DemoDeal] = []
    for i in range(deals):
        company = rng.choice([c for c in out_companies[:companies] if not c.mess])
        stage = rng.choices(["won", "open", "lost"], weights=(5, 3, 2))[0]
        lines = []
        for sku, pname, price in rng.sample(PRODUCTS, k=rng.randint(1, 3)):
            qty = Decimal(rng.choice(["1", "2", "3", "5", "10", "0.5", "12"]))
            disc = Decimal(rng.choice(["0", "0", "0", "10", "12.5", "5"]))
            lines.append(DemoLine(sku, pname, qty, price, disc))
        month = 1 + (i % 11)
        out_deals.append(
            DemoDeal(
                key=f"d{i:03d}",
                name=f"{company.name.rsplit(' ', 1)[0]} – {rng.choice(['Annual plan', 'Rollout', 'Renewal', 'Pilot', 'Expansion'])}",
                company_key=company.key,
                stage=stage,
                currency=company.currency,
                close_date=f"2026-{month:02d}-{rng.randint(1, 28):02d}",
                lines=lines,
                paid=rng.choice([None, None, "partial", "full"]) if stage == "won" else None,
            )
        )
    return DemoData(out_companies, out_people, out_deals)
