"""A small business working through its CRM and its ledger, day by day, and what it knows to be true.

Each event is a function of the business, the day's random generator and the virtual date. Events are
registered in ``EVENTS`` with a weight (expected times a day) and whether the app handles them yet:
``--events supported`` (the default) runs those it does, ``--events all`` adds any it does not yet, whose
expectations are written as the issues state them, so their violations say what is still to do. Since the
app follows the lifecycle rules (issue 21, points 1, 2 and 6), archives and merges on both sides, deals lost
or reopened after invoicing and credit notes are all handled: both switches run every event.

What the business knows (``Truth``) is what the checks hold the app to: its companies and their names,
each deal's stage and lines, the payments it made and refunded, and the discrepancies it planted on
purpose, each with the month whose report must list it.
"""

from __future__ import annotations

import datetime as dt
import random
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal

from app.sandbox.demo_data import FIRST, LAST, PRODUCTS, TRADES, WORDS
from bench.year.crm import Crm, NotAvailable, Refused
from bench.year.ledger import Ledger

SKUS = [sku for sku, _name, _price in PRODUCTS]
CENT = Decimal("0.01")


@dataclass
class Company:
    crm_id: str
    name: str  # as it should end up (the typo, once fixed, is gone)
    typed: str  # as it is typed in the CRM now
    held: bool = False  # planted: its country is not one there is, so the app holds it back
    gone: bool = False  # archived or merged away in the CRM
    customer_archived: dt.date | None = None  # its ledger customer made inactive by the bookkeeper that day
    since: dt.date | None = None  # the day it was added in the CRM (synced to the ledger by that evening)
    merged_into: Company | None = None  # merged away in the CRM: its deals now belong to that company there


@dataclass
class Deal:
    crm_id: str
    company: Company
    name: str
    lines: dict[str, tuple[Decimal, Decimal]]  # sku -> quantity, discount percent
    stage: str = "open"  # open | won | lost | deleted
    won_on: dt.date | None = None
    ever_invoiced: bool = False  # won at least once and so invoiced (as far as the business knows)
    voided: bool = False  # planted: the bookkeeper voided its invoice while the deal stays won
    payments: list[tuple[str, Decimal]] = field(default_factory=list)  # (payment id, amount), refunds removed
    credited: Decimal = Decimal(0)  # credit notes the bookkeeper raised against its invoice

    @property
    def total(self) -> Decimal:
        prices = {sku: price for sku, _n, price in PRODUCTS}
        return sum(((q * prices[s]) - (q * prices[s]) * d / 100).quantize(CENT) for s, (q, d) in self.lines.items())


@dataclass(frozen=True)
class Plant:
    """A discrepancy put there on purpose: the report of ``month`` must list one of ``kinds`` (any kind
    when None) on one of ``ids``; ``also`` are what may come with it (the records its hold holds back)."""

    month: str
    kinds: frozenset[str] | None
    ids: frozenset[str]
    what: str
    also: frozenset[tuple[str, str]] = frozenset()
    gone_on: dt.date | None = None  # its cause went that day (after the 1st's 06:00 report when on the 1st)


@dataclass
class Truth:
    companies: list[Company] = field(default_factory=list)
    deals: dict[str, Deal] = field(default_factory=dict)
    plants: list[Plant] = field(default_factory=list)
    counter_sales: list[str] = field(default_factory=list)
    archived_customers: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Event:
    name: str
    per_day: float
    supported: bool
    run: Callable[[Business, random.Random, dt.date], bool]  # False: nothing to do it on today


class Business:
    def __init__(self, crm: Crm, ledger: Ledger, invoice_of: Callable[[str], str | None]) -> None:
        self.crm, self.ledger = crm, ledger
        self.truth = Truth()
        self.invoice_of = invoice_of  # deal id -> its invoice id in the ledger (what the bookkeeper looks up)
        self.done: dict[str, int] = {}
        self.skipped: dict[str, int] = {}
        self.refused: list[str] = []
        self._names: set[str] = set()
        self.people: set[tuple[str, str]] = set()

    def _company_name(self, rng: random.Random) -> str:
        while True:
            name = f"{rng.choice(WORDS)} {rng.choice(WORDS)} {rng.choice(TRADES)} {rng.choice(['Ltd', 'Inc', 'LLC'])}"
            # Not one whose words another business already has with another legal form ('… Ltd' and '… LLC'):
            # the app rightly sends such a pair to Review (issue 25: same name, different e-mail domain), and
            # the simulation has no bookkeeper to answer it, so its won deals would wait for ever.
            words = name.rsplit(" ", 1)[0]
            if name.split()[0] != name.split()[1] and words not in self._names:
                self._names.add(words)
                return name

    def company_fields(self, name: str, rng: random.Random, *, country: str | None = None) -> dict[str, str]:
        domain = "".join(name.split()[:3]).lower() + ".example"  # its own: two businesses never share one
        return {"name": name, "email": f"accounts@{domain}", "phone": f"+1 512 555 {rng.randrange(1000, 9999)}",
                "address_line1": f"{rng.randrange(1, 200)} {rng.choice(WORDS)} Street", "city": "Austin",
                "postal_code": f"787{rng.randrange(10, 99)}", "country": country or self.ledger.country}

    def add_company(self, rng: random.Random, *, typo: bool = False, held: bool = False) -> Company:
        name = self._company_name(rng)
        typed = name
        if typo:  # a letter dropped from the first word
            first = name.split()[0]
            cut = rng.randrange(1, len(first) - 1)
            typed = name.replace(first, first[:cut] + first[cut + 1:], 1)
        fields = self.company_fields(typed, rng, country="Atlantis" if held else None)
        company = Company(self.crm.new_company(fields), name, typed, held=held)
        self.truth.companies.append(company)
        return company

    def add_deal(self, rng: random.Random, company: Company, day: dt.date) -> Deal:
        skus = rng.sample(SKUS, k=rng.randint(1, 3))
        lines = {s: (Decimal(rng.choice(["1", "2", "3", "5"])), Decimal(rng.choice(["0", "0", "10"]))) for s in skus}
        name = f"{company.name.split()[0]} {company.name.split()[1]} – {rng.choice(['Rollout', 'Renewal', 'Pilot'])}"
        crm_id = self.crm.new_deal(company.crm_id, name, self.ledger.currency, day + dt.timedelta(days=14),
                                   [(s, q, d) for s, (q, d) in lines.items()])
        deal = Deal(crm_id, company, name, lines)
        self.truth.deals[crm_id] = deal
        return deal

    def win(self, deal: Deal, day: dt.date) -> None:
        self.crm.set_stage(deal.crm_id, "won", day)
        deal.stage, deal.won_on = "won", day
        deal.ever_invoiced = deal.ever_invoiced or not deal.company.held

    def pick(self, rng: random.Random, test: Callable[[Deal], bool]) -> Deal | None:
        found = [d for d in self.truth.deals.values() if test(d)]
        return rng.choice(found) if found else None

    def live(self) -> list[Company]:
        return [c for c in self.truth.companies if not c.held and not c.gone]

    def balance(self, deal: Deal) -> Decimal:
        return deal.total - deal.credited - sum((a for _p, a in deal.payments), Decimal(0))

    def run_day(self, rng: random.Random, day: dt.date, events: list[Event]) -> list[tuple[int, Event]]:
        """Today's events, each at a minute between 06:35 and 17:55, in order."""
        todo = []
        for ev in events:
            count = int(ev.per_day) + (1 if rng.random() < ev.per_day - int(ev.per_day) else 0)
            todo += [(rng.randrange(6 * 60 + 35, 17 * 60 + 55), ev) for _ in range(count)]
        return sorted(todo, key=lambda t: (t[0], t[1].name))

    def do(self, ev: Event, rng: random.Random, day: dt.date) -> None:
        try:
            ok = ev.run(self, rng, day)
        except NotAvailable:
            ok = False
        except Refused as exc:  # the provider said no to the business itself: kept, not a check of the app
            ok = False
            self.refused.append(f"{day.isoformat()} {ev.name}: {exc}")
        book = self.done if ok else self.skipped
        book[ev.name] = book.get(ev.name, 0) + 1


def month_of(day: dt.date) -> str:
    return day.strftime("%Y-%m")


# -- the events the app handles ----------------------------------------------------------------------
def new_company(b: Business, rng: random.Random, day: dt.date) -> bool:
    b.add_company(rng, typo=rng.random() < 0.25).since = day
    return True


def fix_typo(b: Business, rng: random.Random, day: dt.date) -> bool:
    typos = [c for c in b.live() if c.typed != c.name]
    if not typos:
        return False
    c = rng.choice(typos)
    b.crm.edit("company", c.crm_id, {"name": c.name})
    c.typed = c.name
    return True


def new_person(b: Business, rng: random.Random, day: dt.date) -> bool:
    """A contact with a full name the business has not used yet (two people of one name at one e-mail
    domain are linked as one customer: see bench/README.md)."""
    for _ in range(50):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        if (first, last) not in b.people:
            break
    else:
        return False
    b.people.add((first, last))
    mail = unicodedata.normalize("NFKD", f"{first}.{last}".lower()).encode("ascii", "ignore").decode()
    mail = mail.replace("'", "").replace(" ", "")  # ó -> o: CRMs refuse accented addresses
    b.crm.new_person({"name": f"{first} {last}", "first_name": first, "last_name": last,
                      "email": f"{mail}@{rng.choice(['gmail.com', 'outlook.com', 'proton.me'])}"})
    return True


def new_deal(b: Business, rng: random.Random, day: dt.date) -> bool:
    live = b.live()
    if not live:
        return False
    b.add_deal(rng, rng.choice(live), day)
    return True


def edit_lines(b: Business, rng: random.Random, day: dt.date) -> bool:
    deal = b.pick(rng, lambda d: d.stage == "open" and not d.ever_invoiced)
    if deal is None:
        return False
    sku = rng.choice(sorted(deal.lines))
    qty, disc = deal.lines[sku]
    deal.lines[sku] = (qty + 1, disc)
    b.crm.change_quantity(deal.crm_id, sku, qty + 1)
    return True


def win_deal(b: Business, rng: random.Random, day: dt.date) -> bool:
    deal = b.pick(rng, lambda d: d.stage == "open" and not d.ever_invoiced and not d.company.gone)
    if deal is None:
        return False
    b.win(deal, day)
    return True


def _move(b: Business, rng: random.Random, day: dt.date, was: str, now: str) -> bool:
    """A deal never invoiced moves from one stage to another (lost, or reopened after it was lost)."""
    deal = b.pick(rng, lambda d: d.stage == was and not d.ever_invoiced)
    if deal is None:
        return False
    b.crm.set_stage(deal.crm_id, now, day)
    deal.stage = now
    return True


def lose_deal(b: Business, rng: random.Random, day: dt.date) -> bool:
    return _move(b, rng, day, "open", "lost")


def reopen_lost(b: Business, rng: random.Random, day: dt.date) -> bool:
    return _move(b, rng, day, "lost", "open")


def _payable(b: Business, deal: Deal) -> str | None:
    """The invoice the customer may pay (QuickBooks takes no payment from a customer the bookkeeper archived)."""
    if deal.stage != "won" or deal.voided or deal.company.held or b.balance(deal) <= 0 \
            or deal.company.customer_archived is not None:
        return None
    return b.invoice_of(deal.crm_id)


def pay(b: Business, rng: random.Random, day: dt.date, *, part: bool, late: bool = False) -> bool:
    def due(d: Deal) -> bool:
        if _payable(b, d) is None or d.won_on is None:
            return False
        return (day - d.won_on).days >= 30 if late else (day - d.won_on).days < 30
    deal = b.pick(rng, due)
    if deal is None:
        return False
    invoice = _payable(b, deal)
    assert invoice is not None
    amount = b.balance(deal)
    if part:
        amount = (amount * Decimal(rng.choice(["0.25", "0.4", "0.5"]))).quantize(CENT)
    deal.payments.append((b.ledger.pay(invoice, amount, day), amount))
    return True


def refund(b: Business, rng: random.Random, day: dt.date) -> bool:
    deal = b.pick(rng, lambda d: bool(d.payments) and not d.voided)
    if deal is None:
        return False
    payment = deal.payments.pop(rng.randrange(len(deal.payments)))
    b.ledger.refund(payment[0])
    return True


def _invoiced_customer(b: Business, rng: random.Random) -> tuple[Deal, str] | None:
    """A won deal with its invoice in the ledger, and that invoice's customer (not one archived)."""
    deal = b.pick(rng, lambda d: d.stage == "won" and not d.company.held and b.invoice_of(d.crm_id) is not None)
    if deal is None:
        return None
    state = b.ledger.state(b.invoice_of(deal.crm_id) or "")
    if state is None or state.invoice.customer_id in b.truth.archived_customers:
        return None
    return deal, state.invoice.customer_id


def bookkeeper_edit(b: Business, rng: random.Random, day: dt.date) -> bool:
    found = _invoiced_customer(b, rng)
    if found is None:
        return False
    b.ledger.edit_customer_phone(found[1], f"+1 512 555 {rng.randrange(1000, 9999)}")
    return True


def plant_counter_sale(b: Business, rng: random.Random, day: dt.date) -> bool:
    found = _invoiced_customer(b, rng)
    if found is None:
        return False
    inv = b.ledger.counter_sale(found[1], Decimal(rng.randrange(40, 400)), day)
    b.truth.counter_sales.append(inv)
    b.truth.plants.append(Plant(month_of(day), frozenset({"invoice_without_deal"}), frozenset({inv}),
                                f"invoice {inv} typed into the ledger with no deal"))
    return True


def _unpaid_won_this_month(b: Business, rng: random.Random, day: dt.date) -> Deal | None:
    """A deal won this month whose invoice has nothing paid, voided or credited on it."""
    return b.pick(rng, lambda d: d.stage == "won" and not d.payments and not d.voided and not d.credited
                  and d.won_on is not None and month_of(d.won_on) == month_of(day) and _payable(b, d) is not None)


def _plant_on_invoice(b: Business, deal: Deal, kind: str, what: str) -> bool:
    assert deal.won_on is not None
    b.truth.plants.append(Plant(month_of(deal.won_on), frozenset({kind}), frozenset({deal.crm_id}),
                                f"the invoice of won deal '{deal.name}' {what} in the ledger"))
    return True


def plant_void(b: Business, rng: random.Random, day: dt.date) -> bool:
    deal = _unpaid_won_this_month(b, rng, day)
    if deal is None or not b.ledger.void(b.invoice_of(deal.crm_id) or ""):
        return False
    deal.voided = True
    return _plant_on_invoice(b, deal, "void_while_won", "voided")


def plant_held(b: Business, rng: random.Random, day: dt.date) -> bool:
    company = b.add_company(rng, held=True)
    deal = b.add_deal(rng, company, day)
    b.win(deal, day)
    b.truth.plants.append(Plant(month_of(day), frozenset({"won_without_invoice"}), frozenset({deal.crm_id}),
                                f"won deal '{deal.name}' of a company in no known country",
                                also=frozenset({("held_back", company.crm_id), ("held_back", deal.crm_id)})))
    return True


# -- records archived and merged, deals changed after invoicing, credit notes (issue 21, points 1, 2, 6) ----
def archive_crm_company(b: Business, rng: random.Random, day: dt.date) -> bool:
    linked = [c for c in b.live() if any(d.company is c and d.ever_invoiced for d in b.truth.deals.values())]
    if not linked:
        return False
    c = rng.choice(linked)
    if b.crm.archive_company(c.crm_id):
        for d in b.truth.deals.values():
            if _owner(d.company) is c:  # a merged-away company's deals moved to c in the CRM: they go too
                d.stage = "deleted"  # gone from the CRM with its company; its invoice stays in the ledger
    c.gone = True
    # its deals (gone with it in Salesforce) can no longer show their invoice's state, an invoice of a deleted
    # deal stands, and one won today but not invoiced yet has no one to bill now: the report may say so of them
    extra = frozenset((k, d.crm_id) for d in b.truth.deals.values() if d.company is c
                      for k in ("payment_status_mismatch", "not_won_invoiced", "held_back", "won_without_invoice"))
    b.truth.plants.append(Plant(month_of(day), None, frozenset({c.crm_id}),
                                f"company '{c.name}' archived in the CRM while its customer is linked", also=extra))
    return True


def merge_crm_companies(b: Business, rng: random.Random, day: dt.date) -> bool:
    """Two companies already in the ledger (added on an earlier day) merged in the CRM: one added today and
    merged before any sync saw it never had a customer, so there would be nothing linked to report."""
    live = [c for c in b.live() if c.since is not None and c.since < day]
    if len(live) < 2:
        return False
    keep, lose = rng.sample(live, 2)
    b.crm.merge_companies(keep.crm_id, lose.crm_id)
    lose.gone = True
    lose.merged_into = keep
    moved = [d.crm_id for d in b.truth.deals.values() if d.company is lose]  # their invoices name the old customer
    b.truth.plants.append(Plant(month_of(day), None, frozenset({lose.crm_id, keep.crm_id}),
                                f"company '{lose.name}' merged into '{keep.name}' in the CRM",
                                also=frozenset((k, d) for d in moved for k in ("customer_mismatch", "held_back"))))
    return True


def _owner(company: Company) -> Company:
    """The company that holds a company's deals in the CRM now (itself, or where it was merged)."""
    while company.merged_into is not None:
        company = company.merged_into
    return company


def archive_ledger_customer(b: Business, rng: random.Random, day: dt.date) -> bool:
    found = _invoiced_customer(b, rng)
    if found is None:
        return False
    deal, customer = found
    res = b.ledger.conn.deactivate_customer(customer)
    if not res.ok:
        return False
    b.truth.archived_customers.add(customer)
    b.truth.plants.append(Plant(month_of(day), None, frozenset({customer, deal.company.crm_id}),
                                f"customer of '{deal.company.name}' archived in the ledger"))
    # the company's next won deal must be held with a reason, not invoiced to an inactive customer
    deal.company.customer_archived = day
    return True


def lose_after_invoice(b: Business, rng: random.Random, day: dt.date) -> bool:
    # not one credited by the bookkeeper: its plant says "credited while won", which a lost deal no longer is
    deal = b.pick(rng, lambda d: d.stage == "won" and d.ever_invoiced and not d.voided and not d.credited
                  and not d.company.gone)
    if deal is None or deal.won_on is None:
        return False
    b.crm.set_stage(deal.crm_id, "lost", day)
    deal.stage = "lost"
    b.truth.plants.append(Plant(month_of(day), None, frozenset({deal.crm_id}),
                                f"deal '{deal.name}' lost after it was invoiced"))
    return True


def reopen_after_invoice(b: Business, rng: random.Random, day: dt.date) -> bool:
    deal = b.pick(rng, lambda d: d.stage == "lost" and d.ever_invoiced and not d.company.gone)
    if deal is None:
        return False
    b.win(deal, day)  # won again: the invoice it has must stay the only one
    # the flag of its loss closes by itself (issue 21, point 2): not expected in a report made from now on
    b.truth.plants = [replace(p, gone_on=day) if p.ids == {deal.crm_id} and "lost after" in p.what and
                      p.gone_on is None else p for p in b.truth.plants]
    return True


def credit_note(b: Business, rng: random.Random, day: dt.date) -> bool:
    """The bookkeeper credits part of an unpaid invoice of a deal won this month (a goodwill discount) while
    the deal stays won at its full amount: that month's report must say the invoice was credited."""
    deal = _unpaid_won_this_month(b, rng, day)
    if deal is None:
        return False
    amount = (deal.total * Decimal("0.1")).quantize(CENT)
    if amount <= 0 or not b.ledger.credit(b.invoice_of(deal.crm_id) or "", amount, f"Goodwill: {deal.name}"):
        return False
    deal.credited = amount
    return _plant_on_invoice(b, deal, "credited_while_won", f"credited {amount}")


EVENTS = [
    Event("new_company", 1.0, True, new_company),
    Event("fix_typo", 0.2, True, fix_typo),
    Event("new_person", 0.5, True, new_person),
    Event("new_deal", 1.5, True, new_deal),
    Event("edit_lines", 0.4, True, edit_lines),
    Event("win_deal", 1.0, True, win_deal),
    Event("lose_deal", 0.3, True, lose_deal),
    Event("reopen_lost", 0.1, True, reopen_lost),
    Event("pay_partial", 0.4, True, lambda b, r, d: pay(b, r, d, part=True)),
    Event("pay_full", 0.6, True, lambda b, r, d: pay(b, r, d, part=False)),
    Event("pay_late", 0.2, True, lambda b, r, d: pay(b, r, d, part=False, late=True)),
    Event("refund", 0.08, True, refund),
    Event("bookkeeper_edit", 0.2, True, bookkeeper_edit),
    Event("plant_counter_sale", 0.1, True, plant_counter_sale),
    Event("plant_void", 0.07, True, plant_void),
    Event("plant_held", 0.07, True, plant_held),
    Event("archive_crm_company", 0.05, True, archive_crm_company),
    Event("merge_crm_companies", 0.05, True, merge_crm_companies),
    Event("archive_ledger_customer", 0.05, True, archive_ledger_customer),
    Event("lose_after_invoice", 0.07, True, lose_after_invoice),
    Event("reopen_after_invoice", 0.05, True, reopen_after_invoice),
    Event("credit_note", 0.05, True, credit_note),
]


def events(which: str) -> list[Event]:
    if which == "all":
        return list(EVENTS)
    if which == "supported":
        return [e for e in EVENTS if e.supported]
    raise ValueError(f"--events is 'supported' or 'all', not {which!r}")
