"""The plan: a pure function of (changes, links with snapshots, mapping, rules) -> operations.

Field by field against what each side held at the last sync (a three-way diff): a field changed
on one side flows to the other; changed on both sides, the field's rule decides, or the conflict
waits for a person. Our own writes come back through the change feeds equal to the snapshot, so
they produce nothing (no loops).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from app.domain.models import PARTY_FIELDS, AccountingCustomer, CrmRecord, Party
from app.sync.mapping import Mapping, map_record, reverse_map
from app.sync.match import Index, MatchResult, find_match
from app.sync.validate import Problem, invisible_removed, validate_party

Rule = Literal["crm", "accounting", "recent", "ask"]
Direction = Literal["both", "crm_to_acct", "acct_to_crm", "off"]
CustomersFrom = Literal["companies", "people", "both"]

CONTACT_FIELDS = PARTY_FIELDS
DEFAULT_RULES: dict[str, Rule] = dict.fromkeys(CONTACT_FIELDS, "crm")
# Fields that flow back to the CRM when only the ledger changed them. A ledger's display name is
# the bookkeeper's own business, so it is not pushed back by default.
BACKFLOW_FIELDS = tuple(f for f in PARTY_FIELDS if f != "name")

CrmRef = tuple[str, str]  # (object_type, id)
# Added to a field's rule in the history when the value was written without the direction controls,
# byte-order marks or zero-width spaces the CRM's value holds (see validate_party).
CLEANED = "+cleaned"


def op_key(workspace: str, *parts: str) -> str:
    """A deterministic idempotency key: the same operation after a crash gets the same key."""
    return hashlib.sha256(":".join((workspace, *parts)).encode()).hexdigest()[:32]


@dataclass(slots=True)
class LinkState:
    acct_id: str
    how: str
    snapshot: dict[str, dict[str, Any]]  # {"crm": fields, "acct": fields}


@dataclass(slots=True)
class CreateCustomer:
    key: str
    refs: list[CrmRef]
    party: Party
    display_name: str
    cleaned: tuple[str, ...] = ()  # fields written without the hidden characters the CRM's value holds

    def rules(self) -> str | dict[str, str]:
        """What the history records for each written field."""
        if not self.cleaned:
            return "created"
        return {f: "created" + (CLEANED if f in self.cleaned else "") for f in PARTY_FIELDS}


@dataclass(slots=True)
class LinkCustomer:
    ref: CrmRef
    acct_id: str
    how: str  # created:<key> for a link to a customer this plan creates
    crm_fields: dict[str, Any]
    acct_fields: dict[str, Any]


@dataclass(slots=True)
class UpdateCustomer:
    key: str
    ref: CrmRef
    acct_id: str
    version: str | None
    party: Party  # the whole customer as it should be
    changes: dict[str, tuple[Any, Any]]  # field -> (before, after)
    rule: dict[str, str]
    crm_fields: dict[str, Any]


@dataclass(slots=True)
class UpdateCrm:
    key: str
    ref: CrmRef
    acct_id: str
    properties: dict[str, Any]
    changes: dict[str, tuple[Any, Any]]
    rule: dict[str, str]
    acct_fields: dict[str, Any]


@dataclass(slots=True)
class Quarantined:
    ref: CrmRef
    name: str
    problems: list[Problem]
    candidates: tuple[str, ...] = ()  # an ambiguous match: the ledger customers it could be


@dataclass(slots=True)
class ConflictNote:
    ref: CrmRef
    acct_id: str
    field: str
    crm_value: Any
    acct_value: Any
    base_value: Any
    rule: str
    outcome: str  # crm | accounting | open


@dataclass(slots=True)
class Plan:
    creates: list[CreateCustomer] = field(default_factory=list)
    links: list[LinkCustomer] = field(default_factory=list)
    updates: list[UpdateCustomer] = field(default_factory=list)
    crm_updates: list[UpdateCrm] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)
    released: list[CrmRef] = field(default_factory=list)  # were quarantined, now fine
    conflicts: list[ConflictNote] = field(default_factory=list)
    snapshots: dict[CrmRef, dict[str, Any]] = field(default_factory=dict)  # refreshed with no write
    skipped: int = 0

    @property
    def writes(self) -> int:
        return len(self.creates) + len(self.updates) + len(self.crm_updates)

    def counts(self) -> dict[str, int]:
        return {
            "created": len(self.creates),
            "linked": sum(1 for link in self.links if not link.how.startswith("created")),
            "updated": len(self.updates) + len(self.crm_updates),
            "quarantined": len(self.quarantined),
            "conflicts": len(self.conflicts),
        }


@dataclass(slots=True)
class PlanInput:
    workspace: str
    crm_records: dict[CrmRef, CrmRecord]  # every CRM record touched this run
    ledger: dict[str, AccountingCustomer]  # every ledger customer we know of
    links: dict[CrmRef, LinkState]
    touched_acct: set[str]  # ledger customers changed this run
    mapping: Mapping
    rules: dict[str, Rule] = field(default_factory=lambda: dict(DEFAULT_RULES))
    direction: Direction = "both"
    quarantined: set[CrmRef] = field(default_factory=set)
    pending_creates: dict[str, str] = field(default_factory=dict)  # key -> ledger id already made
    held_fields: dict[CrmRef, set[str]] = field(default_factory=dict)  # open conflicts wait for a person
    # what the ledger itself would refuse (e.g. Xero and non-ASCII email): (field, message) pairs
    ledger_problems: Any = None
    customers_from: CustomersFrom = "both"  # which CRM records become ledger customers
    field_directions: dict[str, Direction] = field(default_factory=dict)  # per field; default: both ways
    # records whose earlier creation a person undid: their create gets a new key (not the old one replayed)
    recreate: dict[CrmRef, str] = field(default_factory=dict)
    # a person's answer to an ambiguous match (Review page): the ledger customer to link, or "new"
    pins: dict[CrmRef, str] = field(default_factory=dict)
    # whether an inactive (archived) ledger customer still holds its name: true in QuickBooks and Zoho
    # Books, not in Xero, which frees an archived contact's name for a new one
    inactive_names_taken: bool = True


def customer_candidates(records: dict[CrmRef, CrmRecord], customers_from: str = "both") -> list[CrmRef]:
    """Which CRM records become ledger customers (the mapping wizard's choice):

    ``companies``: companies only; ``people``: every person; ``both``: companies, and people who
    belong to no company.
    """
    def wanted(rec: CrmRecord) -> bool:
        if customers_from == "companies":
            return rec.object_type == "company"
        if customers_from == "people":
            return rec.object_type == "person"
        return rec.object_type == "company" or not rec.company_id

    refs = [r for r, rec in records.items() if not rec.archived and wanted(rec)]
    return sorted(refs, key=lambda r: (r[0] != "company", r[1]))


def _fields(party: Party) -> dict[str, Any]:
    return party.fields()


def _disambiguated(name: str | None, shown: str | None) -> bool:
    """'Acme Ltd (2)' is how 'Acme Ltd' was named when its name was taken."""
    return bool(name and shown and re.fullmatch(re.escape(name) + r" \(\d+\)", shown))


def disambiguate(name: str, index: Index) -> str:
    if not index.display_taken(name):
        return name
    n = 2
    while index.display_taken(f"{name} ({n})"):
        n += 1
    return f"{name} ({n})"


def plan(inp: PlanInput) -> Plan:
    out = Plan()
    index = Index()
    for cust in inp.ledger.values():
        if cust.active:
            index.add(cust.id, cust.party, cust.raw_name or cust.party.name)
        elif inp.inactive_names_taken:
            index.names[cust.id] = cust.raw_name or cust.party.name  # names of inactive ones stay taken
    to_acct = inp.direction in ("both", "crm_to_acct")
    to_crm = inp.direction in ("both", "acct_to_crm")

    # Linked records touched from the ledger side only are planned too.
    refs = customer_candidates(inp.crm_records, inp.customers_from)
    seen = set(refs)
    for ref, lk in inp.links.items():
        if lk.acct_id in inp.touched_acct and ref not in seen and ref in inp.crm_records:
            refs.append(ref)
            seen.add(ref)

    for ref in refs:
        record = inp.crm_records[ref]
        mapped = map_record(record, inp.mapping)
        party, problems = validate_party(mapped)
        if not problems and inp.ledger_problems is not None and (to_acct or ref in inp.links):
            problems = [Problem(f, m) for f, m in inp.ledger_problems(party)]
        if problems:
            out.quarantined.append(Quarantined(ref, party.name or f"{ref[0]} {ref[1]}", problems))
            continue
        if ref in inp.quarantined:
            out.released.append(ref)
        crm_fields = _fields(party)
        link = inp.links.get(ref)
        if link is None:
            if not to_acct:
                out.skipped += 1
                continue
            _plan_new(inp, out, index, ref, party, crm_fields, tuple(invisible_removed(mapped)))
        else:
            _plan_linked(inp, out, ref, link, party, crm_fields, to_acct, to_crm, tuple(invisible_removed(mapped)))
    return out


def _flows_to_ledger(inp: PlanInput, f: str) -> bool:
    return inp.field_directions.get(f, "both") in ("both", "crm_to_acct")


def _flows_to_crm(inp: PlanInput, f: str) -> bool:
    return inp.field_directions.get(f, "both") in ("both", "acct_to_crm")


def _plan_new(inp: PlanInput, out: Plan, index: Index, ref: CrmRef, party: Party, crm_fields: dict[str, Any],
              cleaned: tuple[str, ...] = ()) -> None:
    pin = inp.pins.get(ref)
    if pin == "new":  # a person said: none of them, a customer of its own
        match = MatchResult()
    elif pin and pin in inp.ledger and inp.ledger[pin].active:  # a person picked this one
        match = MatchResult(pin, "manual")
    else:
        match = find_match(party, index)
    if match.disagrees and match.ambiguous[0].startswith("create:"):
        # another CRM record of this run with the same name but its own tax ID or domain: its own customer
        match = MatchResult()
    if match.disagrees:
        other = index.names.get(match.ambiguous[0], match.ambiguous[0])
        out.quarantined.append(Quarantined(ref, party.name, [Problem(
            "match", f"Its name matches the ledger customer '{other}', but {match.disagrees}. If they are the "
                     "same customer, link them on the Review page; if not, create a customer of its own there.")],
            tuple(match.ambiguous)))
        return
    if match.ambiguous:
        names = ", ".join(f"'{index.names.get(i, i)}'" for i in match.ambiguous[:4])
        label = {"email": "email address", "tax_id": "tax ID", "name": "name"}[match.how or "name"]
        out.quarantined.append(Quarantined(ref, party.name, [Problem(
            "match", f"Its {label} matches {len(match.ambiguous)} customers in the ledger ({names}). "
                     "Pick the right one on the Review page, or merge the duplicates in the ledger.")],
            tuple(match.ambiguous)))
        return
    if match.ident is None:
        key = op_key(inp.workspace, "create_customer", *ref, *([inp.recreate[ref]] if ref in inp.recreate else []))
        if key in inp.pending_creates:  # made by an earlier run that stopped before recording it
            acct_id = inp.pending_creates[key]
            made = inp.ledger.get(acct_id)
            acct_fields = _fields(made.party) if made else crm_fields
            # made from the record as it was then: what changed in the CRM since goes to the ledger now
            since = {f: (acct_fields.get(f), c) for f, c in crm_fields.items()
                     if not same_value(f, c, acct_fields.get(f)) and _flows_to_ledger(inp, f)
                     and not (f == "name" and _disambiguated(c, acct_fields.get(f)))}
            if made is not None and since:
                since_rules = dict.fromkeys(since, "crm-changed")
                _note_cleaned(since_rules, cleaned)
                out.updates.append(UpdateCustomer(
                    op_key(inp.workspace, "update_customer", acct_id, _digest(since)), ref, acct_id, made.version,
                    made.party.with_fields({f: v[1] for f, v in since.items()}), since, since_rules, crm_fields))
                acct_fields = {**acct_fields, **{f: v[1] for f, v in since.items()}}
            out.links.append(LinkCustomer(ref, acct_id, "created", crm_fields, acct_fields))
            index.add(acct_id, party)
            return
        display = disambiguate(party.name, index)
        held_back = {f: None for f in PARTY_FIELDS if f != "name" and not _flows_to_ledger(inp, f)}
        create = CreateCustomer(key, [ref], party.with_fields(held_back) if held_back else party, display,
                                tuple(f for f in cleaned if f not in held_back))
        out.creates.append(create)
        token = f"create:{key}"
        index.add(token, party, display)
        out.links.append(LinkCustomer(ref, token, f"created:{key}", crm_fields, crm_fields))
        return
    if match.ident.startswith("create:"):  # the same customer twice in the CRM: one ledger customer
        key = match.ident.split(":", 1)[1]
        create = next(c for c in out.creates if c.key == key)
        create.refs.append(ref)
        # the ledger will hold the first record's values: that is this link's last-synced ledger side
        out.links.append(LinkCustomer(ref, match.ident, f"created:{key}", crm_fields, _fields(create.party)))
        return
    existing = inp.ledger[match.ident]
    acct_fields = _fields(existing.party)
    # Linking: fill the ledger's blanks from the CRM; where both hold different values the
    # field's rule decides (the ledger's display name is always kept).
    changes: dict[str, tuple[Any, Any]] = {}
    rules: dict[str, str] = {}
    for f in PARTY_FIELDS:
        c, a = crm_fields.get(f), acct_fields.get(f)
        if c is None or c == a or f == "name" or not _flows_to_ledger(inp, f):
            continue
        if a is None:
            changes[f] = (a, c)
            rules[f] = "fill"
            continue
        rule = inp.rules.get(f, "crm")
        outcome = "crm" if rule == "crm" else ("accounting" if rule == "accounting" else "open")
        out.conflicts.append(ConflictNote(ref, existing.id, f, c, a, None, rule, outcome))
        if outcome == "crm":
            changes[f] = (a, c)
            rules[f] = "crm"
    _note_cleaned(rules, cleaned)
    new_acct = {**acct_fields, **{f: v[1] for f, v in changes.items()}}
    out.links.append(LinkCustomer(ref, existing.id, match.how or "name", crm_fields, new_acct))
    if changes:
        out.updates.append(UpdateCustomer(
            op_key(inp.workspace, "update_customer", existing.id, _digest(changes)), ref, existing.id,
            existing.version, existing.party.with_fields({f: v[1] for f, v in changes.items()}), changes, rules,
            crm_fields))


def same_value(f: str, x: Any, y: Any) -> bool:
    """Equal as a bookkeeper reads them: blank is blank, spacing and case of an email do not count, and a
    phone is its digits (with a leading +)."""
    def canon(v: Any) -> str:
        text = " ".join(str(v).split()) if v is not None else ""
        if f == "phone":
            return ("+" if text.startswith("+") else "") + "".join(ch for ch in text if ch.isdigit())
        return text.casefold() if f == "email" else text
    return x == y or canon(x) == canon(y)


def _note_cleaned(rules: dict[str, str], cleaned: tuple[str, ...]) -> None:
    for f in cleaned:
        if f in rules and rules[f] in ("fill", "crm", "crm-changed", "conflict:crm"):
            rules[f] += CLEANED


def _plan_linked(inp: PlanInput, out: Plan, ref: CrmRef, link: LinkState, party: Party, crm_fields: dict[str, Any],
                 to_acct: bool, to_crm: bool, cleaned: tuple[str, ...] = ()) -> None:
    ledger = inp.ledger.get(link.acct_id)
    base_crm = link.snapshot.get("crm", {})
    base_acct = link.snapshot.get("acct", {})
    acct_fields = _fields(ledger.party) if ledger else dict(base_acct)
    to_ledger: dict[str, tuple[Any, Any]] = {}
    to_crm_changes: dict[str, tuple[Any, Any]] = {}
    rules: dict[str, str] = {}
    held = inp.held_fields.get(ref, set())
    for f in PARTY_FIELDS:
        if f in held:
            continue
        c, a = crm_fields.get(f), acct_fields.get(f)
        # A provider's own formatting of what we wrote (HubSpot stores +44 20 7916 0013 as +442079160013)
        # is not a change: counted as one, our write's echo would make a conflict and undo a later edit.
        crm_changed = not same_value(f, c, base_crm.get(f))
        acct_changed = ledger is not None and not same_value(f, a, base_acct.get(f))
        field_to_acct = to_acct and _flows_to_ledger(inp, f)
        field_to_crm = to_crm and _flows_to_crm(inp, f)
        if crm_changed and not acct_changed:
            if field_to_acct and not same_value(f, c, a):
                to_ledger[f] = (a, c)
                rules[f] = "crm-changed"
        elif acct_changed and not crm_changed:
            if field_to_crm and f in BACKFLOW_FIELDS and not same_value(f, a, c):
                to_crm_changes[f] = (c, a)
                rules[f] = "ledger-changed"
        elif crm_changed and acct_changed and not same_value(f, c, a):
            rule = inp.rules.get(f, "crm")
            if rule == "recent":
                crm_time = inp.crm_records[ref].updated_at
                acct_time = ledger.updated_at if ledger else None
                rule = "accounting" if (acct_time and crm_time and acct_time > crm_time) else "crm"
            outcome = "crm" if rule == "crm" else ("accounting" if rule == "accounting" else "open")
            out.conflicts.append(ConflictNote(ref, link.acct_id, f, c, a, base_crm.get(f), inp.rules.get(f, "crm"),
                                              outcome))
            if outcome == "crm" and field_to_acct:
                to_ledger[f] = (a, c)
                rules[f] = "conflict:crm"
            elif outcome == "accounting" and field_to_crm and f in BACKFLOW_FIELDS:
                to_crm_changes[f] = (c, a)
                rules[f] = "conflict:accounting"
    _note_cleaned(rules, cleaned)
    if to_ledger and ledger is not None:
        out.updates.append(UpdateCustomer(
            op_key(inp.workspace, "update_customer", link.acct_id, _digest(to_ledger)), ref, link.acct_id,
            ledger.version, ledger.party.with_fields({f: v[1] for f, v in to_ledger.items()}), to_ledger,
            {f: rules[f] for f in to_ledger}, crm_fields))
    if to_crm_changes:
        props = reverse_map({f: v[1] for f, v in to_crm_changes.items()}, ref[0], inp.mapping)
        if props:
            out.crm_updates.append(UpdateCrm(
                op_key(inp.workspace, "update_crm", *ref, _digest(to_crm_changes)), ref, link.acct_id, props,
                to_crm_changes, {f: rules[f] for f in to_crm_changes}, acct_fields))
    if not to_ledger and not to_crm_changes:
        new_snapshot = {"crm": crm_fields, "acct": acct_fields}
        if new_snapshot != link.snapshot:
            out.snapshots[ref] = new_snapshot


def _digest(changes: dict[str, tuple[Any, Any]]) -> str:
    return hashlib.sha256(repr(sorted((k, v[1]) for k, v in changes.items())).encode()).hexdigest()[:12]
