"""The field-mapping wizard as a plain-Python flow.

Steps: ``objects`` (which CRM records become ledger customers), ``fields`` (provider field,
transform, source-of-truth rule and direction per canonical field), ``preview`` (a page of sample
records from the CRM, mapped with the draft, with what would happen and any validation error) and
``save`` (a new version of the workspace's mapping; older versions are kept and listed).

The sync engine reads what ``save`` writes: settings ``mapping``, ``rules``, ``field_direction``,
``customers_from`` and ``direction``.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from app.connectors.base import FieldInfo
from app.domain.models import PARTY_FIELDS, AccountingCustomer, CrmRecord
from app.ops import workspaces
from app.store.db import Store
from app.store.models import Mirror
from app.store.serial import party_from
from app.sync.mapping import TRANSFORM_LABELS, map_record
from app.sync.match import Index, find_match
from app.sync.planner import DEFAULT_RULES, customer_candidates
from app.sync.validate import validate_party
from app.wizard.flow import Data, Flow, Problems, Step

OBJECTS = ("company", "person")
OBJECT_LABEL = {"company": "Companies", "person": "Contacts"}
CUSTOMERS_FROM = {
    "companies": "Companies only",
    "people": "Contacts only (each person is a customer)",
    "both": "Companies, and contacts that belong to no company",
}
FIELD_LABEL = {
    "name": "Customer name", "first_name": "First name", "last_name": "Last name", "email": "Email",
    "phone": "Phone", "address_line1": "Address line 1", "address_line2": "Address line 2", "city": "City",
    "region": "State / region", "postal_code": "Postcode / ZIP", "country": "Country", "tax_id": "Tax ID",
}
RULE_LABEL = {"crm": "CRM wins", "accounting": "Accounting wins", "recent": "Latest change wins",
              "ask": "Ask me (Review)"}
DIRECTION_LABEL = {"both": "Both ways", "crm_to_acct": "CRM → accounting", "acct_to_crm": "Accounting → CRM",
                   "off": "Don't sync"}
INVOICE_LABEL = {"both": "Create invoices for won deals", "off": "Don't create invoices"}


def named_labels(labels: dict[str, str], crm: str, ledger: str) -> dict[str, str]:
    """RULE_LABEL or DIRECTION_LABEL with the systems' names: "QuickBooks Online wins",
    "HubSpot → QuickBooks Online" (docs/glossary.md: name the provider where the user sees it)."""
    return {k: v.replace("Accounting", ledger).replace("accounting", ledger).replace("CRM", crm)
            for k, v in labels.items()}
MAX_VERSIONS = 50
MATCHED_AT_SYNC = ("Checked when syncing: linked to a customer in the accounting system with the same email, "
                   "tax ID or name, otherwise created")


def fields_of(object_type: str) -> tuple[str, ...]:
    """The canonical fields a row can feed: a person's name may come from first and last name."""
    return ("name", "first_name", "last_name", *PARTY_FIELDS[1:]) if object_type == "person" else PARTY_FIELDS


@dataclass(slots=True)
class Draft:
    """The mapping being edited. ``mapping`` is {object: {canonical: 'provider_field|transform'}}."""

    customers_from: str = "both"
    mapping: dict[str, dict[str, str]] = field(default_factory=dict)
    rules: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_RULES))
    field_direction: dict[str, str] = field(default_factory=dict)
    invoices: str = "both"
    customers: str = "both"  # the customer object's direction; each field's own direction applies within it

    def source(self, object_type: str, canonical: str) -> tuple[str, str]:
        """(provider field, transform) feeding ``canonical``; ('', '') when nothing does."""
        spec = self.mapping.get(object_type, {}).get(canonical, "")
        src, _, transform = spec.partition("|")
        return src, transform

    def set_source(self, object_type: str, canonical: str, provider_field: str, transform: str = "") -> None:
        fields = self.mapping.setdefault(object_type, {})
        if not provider_field:
            fields.pop(canonical, None)
        else:
            fields[canonical] = f"{provider_field}|{transform}" if transform else provider_field

    def direction(self, canonical: str) -> str:
        return self.field_direction.get(canonical, "both")

    def to_settings(self) -> dict[str, Any]:
        directions = {f: d for f, d in self.field_direction.items() if d != "both"}
        return {"mapping": copy.deepcopy(self.mapping), "rules": dict(self.rules), "field_direction": directions,
                "customers_from": self.customers_from,
                "direction": {"customer": self.customers, "invoice": self.invoices}}

    @classmethod
    def from_settings(cls, settings: dict[str, Any], default_mapping: dict[str, dict[str, str]]) -> Draft:
        return cls(
            customers_from=settings.get("customers_from") or "both",
            mapping=copy.deepcopy(settings.get("mapping") or default_mapping),
            rules={**DEFAULT_RULES, **(settings.get("rules") or {})},
            field_direction=dict(settings.get("field_direction") or {}),
            invoices=(settings.get("direction") or {}).get("invoice", "both"),
            customers=(settings.get("direction") or {}).get("customer", "both"),
        )


@dataclass(frozen=True, slots=True)
class Version:
    number: int
    saved_at: str
    summary: str


@dataclass(frozen=True, slots=True)
class Samples:
    """What the wizard reads once from the connected systems (off the UI thread)."""

    records: list[CrmRecord]
    fields: dict[str, list[FieldInfo]]  # object type -> the CRM's fields, custom ones included
    # Ledger customers to match against; None when the ledger was not read (matched when syncing).
    ledger: list[AccountingCustomer] | None = field(default_factory=list)
    ledger_problems: Callable[[Any], list[tuple[str, str]]] | None = None


@dataclass(frozen=True, slots=True)
class PreviewRow:
    object_type: str
    record_id: str
    values: dict[str, str | None]  # canonical field -> mapped value
    problems: list[str]  # validation errors, in words
    outcome: str  # what the next sync would do with it
    name: str = ""  # the record's name as the CRM shows it, for the preview (never its raw id)


def validate_draft(draft: Draft, fields: dict[str, list[FieldInfo]]) -> Problems:
    """Problems that would make the next sync go wrong, keyed 'object.field' (or 'customers_from')."""
    problems: Problems = {}
    if draft.customers_from not in CUSTOMERS_FROM:
        problems["customers_from"] = "Choose which CRM records become customers."
    wanted = {"companies": ("company",), "people": ("person",), "both": OBJECTS}.get(draft.customers_from, OBJECTS)
    for otype in OBJECTS:
        known = {f.name for f in fields.get(otype, [])}
        for canonical, spec in draft.mapping.get(otype, {}).items():
            src, _, transform = spec.partition("|")
            key = f"{otype}.{canonical}"
            if canonical not in fields_of(otype):
                problems[key] = f"{FIELD_LABEL.get(canonical, canonical)} is not a customer field."
            elif known and src not in known:
                problems[key] = (f"The CRM has no field called '{src}' any more. Choose another field for "
                                 f"{FIELD_LABEL[canonical]}.")
            elif transform and transform not in TRANSFORM_LABELS:
                problems[key] = f"Choose how to change {FIELD_LABEL[canonical]}."
        if otype in wanted:
            mapped = draft.mapping.get(otype, {})
            if not mapped.get("name") and not (otype == "person" and (mapped.get("first_name")
                                                                      or mapped.get("last_name"))):
                what = "first and last name (or a full name)" if otype == "person" else "a field"
                problems[f"{otype}.name"] = (f"{OBJECT_LABEL[otype]} need {what} for the customer name, or the "
                                             "accounting system cannot hold them.")
    for f, rule in draft.rules.items():
        if rule not in RULE_LABEL:
            problems[f"rule.{f}"] = f"Choose who wins for {FIELD_LABEL.get(f, f)}."
    for f, direction in draft.field_direction.items():
        if direction not in DIRECTION_LABEL:
            problems[f"direction.{f}"] = f"Choose which way {FIELD_LABEL.get(f, f)} is synced."
    if draft.field_direction.get("name") == "off":
        problems["direction.name"] = "The customer name is how records are matched; it cannot be left out."
    return problems


def preview(draft: Draft, samples: Samples, limit: int = 25) -> list[PreviewRow]:
    """The sample records mapped with the draft: values, validation errors and what a sync would do."""
    records = {(r.object_type, r.id): r for r in samples.records}
    refs = customer_candidates(records, draft.customers_from)[:limit]
    index = Index()
    for cust in samples.ledger or []:
        if cust.active:
            index.add(cust.id, cust.party, cust.raw_name or cust.party.name)
    rows = []
    for ref in refs:
        record = records[ref]
        party, problems = validate_party(map_record(record, draft.mapping))
        messages = [p.message for p in problems]
        if not messages and samples.ledger_problems is not None:
            messages = [m for _f, m in samples.ledger_problems(party)]
        values = {f: party.fields().get(f) for f in PARTY_FIELDS}
        if messages:
            outcome = "Held back"
        elif samples.ledger is None:
            outcome = MATCHED_AT_SYNC
        else:
            match = find_match(party, index)
            if match.disagrees:
                outcome = (f"Held back: same name as '{index.names.get(match.ambiguous[0], match.ambiguous[0])}', "
                           f"but {match.disagrees}")
            elif match.ambiguous:
                outcome = "Held back: could be one of several existing customers"
            elif match.ident is not None:
                how = {"email": "same email", "tax_id": "same tax ID", "name": "same name"}.get(
                    (match.how or "name").split("+")[0], "same name")
                outcome = f"Links to '{index.names.get(match.ident, match.ident)}' ({how})"
            else:
                outcome = "Creates a new customer"
        rows.append(PreviewRow(record.object_type, record.id, values, messages, outcome, party.name or ""))
    return rows


def describe_changes(before: Draft, after: Draft) -> list[str]:
    """What saving would change, one line each, for the last page and the version list."""
    lines = []
    if before.customers_from != after.customers_from:
        lines.append(f"Customers come from: {CUSTOMERS_FROM[after.customers_from]}")
    for otype in OBJECTS:
        for canonical in fields_of(otype):
            old, new = before.source(otype, canonical), after.source(otype, canonical)
            if old != new:
                label = f"{OBJECT_LABEL[otype]}: {FIELD_LABEL[canonical]}"
                if not new[0]:
                    lines.append(f"{label} no longer mapped")
                else:
                    how = f" ({TRANSFORM_LABELS.get(new[1], new[1])})" if new[1] else ""
                    lines.append(f"{label} ← {new[0]}{how}")
    for f in PARTY_FIELDS:
        if before.rules.get(f, "crm") != after.rules.get(f, "crm"):
            lines.append(f"{FIELD_LABEL[f]}, when both sides changed it: {RULE_LABEL[after.rules[f]]}")
        if before.direction(f) != after.direction(f):
            lines.append(f"{FIELD_LABEL[f]} is synced: {DIRECTION_LABEL[after.direction(f)]}")
    if before.customers != after.customers:
        lines.append(f"Customers: {DIRECTION_LABEL[after.customers]}")
    if before.invoices != after.invoices:
        lines.append(INVOICE_LABEL[after.invoices])
    return lines


def versions(settings: dict[str, Any]) -> list[Version]:
    """Saved versions of the mapping, newest first."""
    rows = settings.get("mapping_versions") or []
    return [Version(int(v["version"]), str(v.get("saved_at") or ""), str(v.get("summary") or ""))
            for v in reversed(rows)]


def version_draft(settings: dict[str, Any], number: int) -> Draft:
    for v in settings.get("mapping_versions") or []:
        if int(v["version"]) == number:
            return Draft.from_settings(v["settings"], {})
    raise workspaces.UserError(f"There is no version {number} of this mapping.")


def save_draft(store: Store, workspace: str, draft: Draft, summary: str,
               now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> int:
    """Save ``draft`` as the workspace's mapping: a new version, the older ones kept. Returns its number."""
    ws = workspaces.get_workspace(store, workspace)
    history = list(ws.settings.get("mapping_versions") or [])
    number = (int(history[-1]["version"]) + 1) if history else 1
    values = draft.to_settings()
    history.append({"version": number, "saved_at": now().isoformat(timespec="seconds"), "summary": summary,
                    "settings": values})
    values["direction"] = {**(ws.settings.get("direction") or {}), **values["direction"]}
    workspaces.update_settings(store, ws.name, **values, mapping_versions=history[-MAX_VERSIONS:])
    return number


def stored_ledger(store: Store, workspace: str) -> list[AccountingCustomer] | None:
    """The ledger's customers as the last sync read them (what the sync itself matches against), at no API
    cost; None before the first sync, when there is no copy yet."""
    ws = workspaces.get_workspace(store, workspace)
    with store.session() as s:
        rows = list(s.scalars(select(Mirror).where(Mirror.workspace_id == ws.id, Mirror.side == "accounting",
                                                   Mirror.object_type == "customer")))
        return [AccountingCustomer(m.remote_id, party_from(m.data), m.updated_at, not m.archived, m.version,
                                   m.data.get("raw_name")) for m in rows] or None


def fetch_samples(crm: Any, acct: Any | None = None, limit: int = 40,
                  ledger: list[AccountingCustomer] | None = None) -> Samples:
    """Fields (custom ones included, through the CRM's API) and up to ``limit`` live records of each kind.

    One list request per kind of record, however big the CRM. The ledger is not read: which
    customer a record links to depends on the mapping being edited and is matched the way the
    sync matches (email, tax ID, normalised name) against all customers, which exact lookups
    cannot reproduce; the preview says so instead, unless ``ledger`` (the workspace's stored copy, see
    ``stored_ledger``) is given. ``acct`` only lends its pre-send checks.
    """
    fields = {otype: crm.list_fields(otype) for otype in OBJECTS}
    records: list[CrmRecord] = []
    for otype in OBJECTS:
        records += [r for r in crm.sample_records(otype, limit) if not r.archived][:limit]
    problems = getattr(acct, "party_problems", None) if acct is not None else None
    return Samples(records, fields, ledger, problems)


class MappingFlow:
    """One run of the mapping wizard over a workspace's current mapping."""

    def __init__(self, store: Store, workspace: str, default_mapping: dict[str, dict[str, str]]) -> None:
        self.store = store
        ws = workspaces.get_workspace(store, workspace)
        self.workspace = ws.name
        self.settings = dict(ws.settings)
        self.original = Draft.from_settings(self.settings, default_mapping)
        self.draft = Draft.from_settings(self.settings, default_mapping)
        self.samples: Samples | None = None
        self.flow = Flow(self._steps(), "objects", {"draft": self.draft})

    def _steps(self) -> dict[str, Step]:
        return {s.id: s for s in (
            Step("objects", "Which CRM records become customers",
                 "Companies, contacts, or both. A contact who belongs to a company is billed through the company.",
                 next=lambda _d: "fields", validate=self._check_objects, accept=self._accept_objects),
            Step("fields", "Fields", "Which CRM field fills each customer field, how it is tidied, who wins when "
                 "both sides changed it, and which way it is synced.", next=lambda _d: "preview",
                 validate=self._check_fields, accept=lambda _d, _v: None),
            Step("preview", "Preview", "Real records from the CRM, mapped as set on the previous page, and what the "
                 "next sync would do with each.", next=lambda _d: "save", validate=self._check_fields,
                 accept=lambda _d, _v: None),
            Step("save", "Save", "Saving makes a new version of this workspace's mapping. The next sync uses it.",
                 next=lambda _d: None, validate=self._check_fields, accept=lambda _d, _v: None),
        )}

    def _check_objects(self, _d: Data, v: Data) -> Problems:
        choice = v.get("customers_from", self.draft.customers_from)
        if choice not in CUSTOMERS_FROM:
            return {"customers_from": "Choose which CRM records become customers."}
        if v.get("invoices", self.draft.invoices) not in INVOICE_LABEL:
            return {"invoices": "Choose whether won deals become invoices."}
        if v.get("customers", self.draft.customers) not in DIRECTION_LABEL:
            return {"customers": "Choose which way customers are synced."}
        return {}

    def _accept_objects(self, _d: Data, v: Data) -> None:
        self.draft.customers_from = v.get("customers_from", self.draft.customers_from)
        self.draft.invoices = v.get("invoices", self.draft.invoices)
        self.draft.customers = v.get("customers", self.draft.customers)

    def _check_fields(self, _d: Data, _v: Data) -> Problems:
        return validate_draft(self.draft, self.samples.fields if self.samples else {})

    def field_choices(self, object_type: str) -> list[FieldInfo]:
        """The CRM's fields for a row's drop-down, custom ones marked; sorted by label."""
        if self.samples is None:
            return []
        return sorted(self.samples.fields.get(object_type, []), key=lambda f: (f.label.casefold(), f.name))

    def set_samples(self, samples: Samples) -> None:
        self.samples = samples

    def preview(self) -> list[PreviewRow]:
        return preview(self.draft, self.samples) if self.samples else []

    def changes(self) -> list[str]:
        return describe_changes(self.original, self.draft)

    def versions(self) -> list[Version]:
        return versions(self.settings)

    def start_from_version(self, number: int) -> None:
        """Load an older version into the draft (saving it makes it the newest version)."""
        old = version_draft(self.settings, number)
        for name in ("customers_from", "mapping", "rules", "field_direction", "invoices", "customers"):
            setattr(self.draft, name, getattr(old, name))

    def save(self) -> int:
        problems = self.flow.submit({})
        if problems:
            raise workspaces.UserError(next(iter(problems.values())))
        summary = "; ".join(self.changes()) or "Saved without changes"
        number = save_draft(self.store, self.workspace, self.draft, summary)
        self.settings = dict(workspaces.get_workspace(self.store, self.workspace).settings)
        self.original = copy.deepcopy(self.draft)
        return number


def set_field(draft: Draft, object_type: str, canonical: str, *, source: str | None = None,
              transform: str | None = None, rule: str | None = None, direction: str | None = None) -> None:
    """One edit of the field table."""
    cur_src, cur_tr = draft.source(object_type, canonical)
    if source is not None or transform is not None:
        draft.set_source(object_type, canonical, cur_src if source is None else source,
                         cur_tr if transform is None else transform)
    if rule is not None:
        draft.rules[canonical] = rule
    if direction is not None:
        draft.field_direction[canonical] = direction


def sample_values(samples: Samples | None, object_type: str, provider_field: str, n: int = 3) -> list[str]:
    """A few raw values of a CRM field, so a bookkeeper can tell fields apart."""
    if samples is None or not provider_field:
        return []
    out: list[str] = []
    for rec in samples.records:
        if rec.object_type == object_type and rec.properties.get(provider_field) not in (None, "", []):
            out.append(str(rec.properties[provider_field]))
            if len(out) >= n:
                break
    return out
