"""A workspace's settings as one typed, versioned object.

The store keeps them as JSON in the workspace's row (``Workspace.settings``). Every reader goes through
``WorkspaceSettings.from_json`` (or ``settings_of(row)``), which upgrades an older stored shape, checks
each value and keeps any key it does not know, so a setting made by a newer or older Crossledger is never
lost when this one writes. ``to_json`` gives the current shape back; ``from_json(s.to_json()) == s``.

What is stored, by key (every key optional; a missing one means the default):

- ``mapping``: {object type: {canonical field: "provider_field|transform"}}; missing = the CRM's default
- ``rules``: {field: crm|accounting|recent|ask}, only the fields set (``effective_rules`` adds the defaults)
- ``field_direction``: {field: both|crm_to_acct|acct_to_crm|off}
- ``customers_from``: companies|people|both
- ``direction``: {"customer": both|crm_to_acct|acct_to_crm|off, "invoice": both|off}
- ``schedule``: {"realtime_minutes", "batch_hour" (UTC), "reconcile_day", "paused"}
- ``notifications``: bool; ``report_folder``: a folder path or null (reports/ in the data folder)
- ``safety``: {"mass_change_percent", "mass_change_records"}: the mass-change limit
- ``invoices``: {"payment_terms_days", "default_item", "tax_codes", "edited_deal", "after_invoice" (flag|void|credit)}
- ``pinned_matches``: {"object_type:id": the answer to an ambiguous match}
- ``deal_fields``: {our deal field: the CRM's field name}, learnt by the sync
- ``mapping_versions``: [{"version", "saved_at", "summary", "settings"}], the mapping wizard's history

Versions: 0 (no ``version`` key; everything saved before this module) and 1 (the current shape).
0 -> 1 writes directions in the stored codes (``crm-to-accounting`` -> ``crm_to_acct``, an invoice
``on`` -> ``both``) and an empty report folder as none. Numbers saved as text are read as numbers.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from app.domain.models import PARTY_FIELDS

VERSION = 1

DIRECTIONS = ("both", "crm_to_acct", "acct_to_crm", "off")
DIRECTION_WORDS = {"both": "both", "crm-to-accounting": "crm_to_acct", "accounting-to-crm": "acct_to_crm",
                   "off": "off"}
INVOICE_DIRECTIONS = ("both", "off")
RULES = ("crm", "accounting", "recent", "ask")
DEFAULT_RULE = "crm"  # the CRM owns contact details unless told otherwise
CUSTOMERS_FROM = ("companies", "people", "both")
FIX = "Set it again in the window (Settings, or the field mapping) or with 'crossledger workspace set'."


class SettingsError(ValueError):
    """A stored setting Crossledger cannot use, said in a bookkeeper's words."""


def _problem(what: str, value: Any, accepted: str) -> SettingsError:
    return SettingsError(f"This workspace's {what} is saved as {value!r}, which Crossledger cannot use "
                         f"({accepted}). {FIX}")


def _int(value: Any, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _problem(what, value, f"a whole number from {low} to {high}")
    try:
        number = int(value)
    except ValueError:
        raise _problem(what, value, f"a whole number from {low} to {high}") from None
    if not low <= number <= high:
        raise _problem(what, value, f"a whole number from {low} to {high}")
    return number


def _bool(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise _problem(what, value, "yes or no")
    return value


def _choice(value: Any, what: str, accepted: tuple[str, ...]) -> str:
    if value not in accepted:
        raise _problem(what, value, "one of " + ", ".join(accepted))
    return str(value)


def _dict(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _problem(what, value, "a list of names and values")
    return copy.deepcopy(dict(value))


def _str_or_none(value: Any, what: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _problem(what, value, "a name or nothing")
    return value


def _split(raw: Mapping[str, Any], known: tuple[str, ...]) -> dict[str, Any]:
    """The keys of ``raw`` this version does not know: kept as they are."""
    return {k: copy.deepcopy(v) for k, v in raw.items() if k not in known}


def _known(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls) if f.name != "extra")


@dataclass(frozen=True, slots=True)
class Directions:
    """Which way each kind of record syncs: customers both ways or one way (or off); invoices on or off."""

    customer: str = "both"
    invoice: str = "both"
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, raw: Any) -> Directions:
        d = _dict(raw, "direction")
        return cls(_choice(d.get("customer", "both"), "customers' sync direction", DIRECTIONS),
                   _choice(d.get("invoice", "both"), "invoice setting", INVOICE_DIRECTIONS),
                   _split(d, _known(cls)))

    def to_json(self) -> dict[str, Any]:
        return {"customer": self.customer, "invoice": self.invoice, **copy.deepcopy(dict(self.extra))}

    @property
    def invoices_on(self) -> bool:
        return self.invoice != "off"


@dataclass(frozen=True, slots=True)
class Schedule:
    """The cadences the scheduler follows. ``batch_hour`` is in UTC, as the scheduler keeps it."""

    realtime_minutes: int = 2
    batch_hour: int = 2
    reconcile_day: int = 1
    paused: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, raw: Any) -> Schedule:
        d = _dict(raw, "schedule")
        base = cls()
        minutes = d.get("realtime_minutes", base.realtime_minutes)
        if isinstance(minutes, int) and not isinstance(minutes, bool) and minutes < 1:
            minutes = 1  # never below a minute (as the scheduler always read it)
        return cls(_int(minutes, "minutes between real-time syncs", 1, 24 * 60),
                   _int(d.get("batch_hour", base.batch_hour), "hour of the nightly full sync", 0, 23),
                   _int(d.get("reconcile_day", base.reconcile_day), "day of the monthly reconciliation", 1, 28),
                   _bool(d.get("paused", base.paused), "pause of the scheduled syncs"),
                   _split(d, _known(cls)))

    def to_json(self) -> dict[str, Any]:
        return {"realtime_minutes": self.realtime_minutes, "batch_hour": self.batch_hour,
                "reconcile_day": self.reconcile_day, "paused": self.paused, **copy.deepcopy(dict(self.extra))}


MASS_CHANGE_PERCENT = 20  # defaults: 20% of linked records or 50 records, whichever is smaller
MASS_CHANGE_RECORDS = 50
MASS_CHANGE_FLOOR = 3  # a tiny workspace can always change a couple of records


@dataclass(frozen=True, slots=True)
class Safety:
    """The mass-change limit: how many linked records one run may change before it asks."""

    mass_change_percent: int = MASS_CHANGE_PERCENT
    mass_change_records: int = MASS_CHANGE_RECORDS
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, raw: Any) -> Safety:
        d = _dict(raw, "safety limit")
        return cls(_int(d.get("mass_change_percent", MASS_CHANGE_PERCENT), "safety limit in percent", 0, 100),
                   _int(d.get("mass_change_records", MASS_CHANGE_RECORDS), "safety limit in records", 0, 10**9),
                   _split(d, _known(cls)))

    def to_json(self) -> dict[str, Any]:
        return {"mass_change_percent": self.mass_change_percent, "mass_change_records": self.mass_change_records,
                **copy.deepcopy(dict(self.extra))}

    def mass_change_limit(self, linked: int) -> int:
        """The most of ``linked`` records one run may change without asking."""
        return max(min(linked * self.mass_change_percent // 100, self.mass_change_records), MASS_CHANGE_FLOOR)


@dataclass(frozen=True, slots=True)
class InvoiceOptions:
    """How won deals become invoices."""

    payment_terms_days: int = 30
    default_item: str | None = None  # the ledger item for a deal line that names none
    tax_codes: Mapping[str, str] = field(default_factory=dict)  # product code -> the ledger's tax code
    edited_deal: str = "update_draft"  # a won deal edited later: update its draft invoice, or only flag it
    # a deal lost, reopened or changed after its invoice: flag it, void a draft or unpaid invoice, or credit it
    after_invoice: str = "flag"
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, raw: Any) -> InvoiceOptions:
        d = _dict(raw, "invoice settings")
        edited = d.get("edited_deal", "update_draft")
        if not isinstance(edited, str):
            raise _problem("choice for an edited won deal", edited, "update_draft or flag")
        after = d.get("after_invoice", "flag")
        if after not in ("flag", "void", "credit"):
            raise _problem("choice for a deal lost or changed after its invoice", after, "flag, void or credit")
        return cls(_int(d.get("payment_terms_days", 30), "payment terms in days", 0, 3650),
                   _str_or_none(d.get("default_item"), "default invoice item"),
                   {str(k): str(v) for k, v in _dict(d.get("tax_codes"), "tax codes").items()},
                   edited, after, _split(d, _known(cls)))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"payment_terms_days": self.payment_terms_days}
        if self.default_item is not None:
            out["default_item"] = self.default_item
        if self.after_invoice != "flag":  # written only once chosen: older stored settings stay as they were
            out["after_invoice"] = self.after_invoice
        return {**out, "tax_codes": dict(self.tax_codes), "edited_deal": self.edited_deal,
                **copy.deepcopy(dict(self.extra))}


@dataclass(frozen=True, slots=True)
class MappingVersion:
    """One saved version of the field mapping; ``settings`` holds what it saved, as it was stored."""

    number: int
    saved_at: str
    summary: str
    settings: Mapping[str, Any]
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, raw: Any) -> MappingVersion:
        d = _dict(raw, "saved mapping version")
        number = _int(d.get("version"), "number of a saved mapping version", 1, 10**9)
        return cls(number, str(d.get("saved_at") or ""), str(d.get("summary") or ""),
                   _dict(d.get("settings"), "saved mapping version"),
                   _split(d, ("version", "saved_at", "summary", "settings")))

    def to_json(self) -> dict[str, Any]:
        return {"version": self.number, "saved_at": self.saved_at, "summary": self.summary,
                "settings": copy.deepcopy(dict(self.settings)), **copy.deepcopy(dict(self.extra))}


@dataclass(frozen=True, slots=True)
class WorkspaceSettings:
    """Everything a workspace keeps in its settings; see the module's docstring for the stored keys."""

    version: int = VERSION
    mapping: Mapping[str, Mapping[str, str]] | None = None  # None: the CRM's default mapping
    rules: Mapping[str, str] = field(default_factory=dict)  # only the fields set; see effective_rules
    field_direction: Mapping[str, str] = field(default_factory=dict)
    customers_from: str = "both"
    direction: Directions = field(default_factory=Directions)
    schedule: Schedule = field(default_factory=Schedule)
    notifications: bool = True
    report_folder: str | None = None  # None: reports/ in the data folder
    safety: Safety = field(default_factory=Safety)
    invoices: InvoiceOptions = field(default_factory=InvoiceOptions)
    pinned_matches: Mapping[str, Any] = field(default_factory=dict)
    deal_fields: Mapping[str, str] = field(default_factory=dict)
    mapping_versions: tuple[MappingVersion, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)  # keys this version does not know, kept

    @classmethod
    def from_json(cls, raw: Mapping[str, Any] | None) -> WorkspaceSettings:
        """The stored JSON (any version so far) as settings; SettingsError names a value that cannot be used."""
        d = upgrade(raw)
        rules = _dict(d.get("rules"), "rules")
        for f, rule in rules.items():
            _choice(rule, f"rule for {f}", RULES)
        field_direction = _dict(d.get("field_direction"), "field directions")
        for f, way in field_direction.items():
            _choice(way, f"sync direction of {f}", DIRECTIONS)
        mapping = d.get("mapping")
        versions = d.get("mapping_versions") or []
        if not isinstance(versions, list):
            raise _problem("mapping history", versions, "a list of saved versions")
        return cls(
            version=VERSION,
            mapping=_dict(mapping, "field mapping") or None,
            rules=rules, field_direction=field_direction,
            customers_from=_choice(d.get("customers_from") or "both", "choice of CRM records", CUSTOMERS_FROM),
            direction=Directions.from_json(d.get("direction")),
            schedule=Schedule.from_json(d.get("schedule")),
            notifications=_bool(d.get("notifications", True), "notification setting"),
            report_folder=_str_or_none(d.get("report_folder"), "report folder"),
            safety=Safety.from_json(d.get("safety")),
            invoices=InvoiceOptions.from_json(d.get("invoices")),
            pinned_matches=_dict(d.get("pinned_matches"), "answered matches"),
            deal_fields={str(k): str(v) for k, v in _dict(d.get("deal_fields"), "deal fields").items()},
            mapping_versions=tuple(MappingVersion.from_json(v) for v in versions),
            extra=_split(d, ("version", *_known(cls))),
        )

    def to_json(self) -> dict[str, Any]:
        """The current stored shape: every known key written out, unknown ones as they came."""
        out: dict[str, Any] = {"version": self.version}
        if self.mapping is not None:
            out["mapping"] = {k: dict(v) for k, v in self.mapping.items()}
        out |= {"rules": dict(self.rules), "field_direction": dict(self.field_direction),
                "customers_from": self.customers_from, "direction": self.direction.to_json(),
                "schedule": self.schedule.to_json(), "notifications": self.notifications,
                "report_folder": self.report_folder, "safety": self.safety.to_json(),
                "invoices": self.invoices.to_json(), "pinned_matches": copy.deepcopy(dict(self.pinned_matches)),
                "deal_fields": dict(self.deal_fields),
                "mapping_versions": [v.to_json() for v in self.mapping_versions]}
        return {**out, **copy.deepcopy(dict(self.extra))}

    def json_of(self, *names: str) -> dict[str, Any]:
        """Only the named keys of ``to_json()``: what a save writes when it changes just those."""
        whole = self.to_json()
        return {n: whole[n] for n in names if n in whole} | ({"mapping": None} if "mapping" in names
                                                               and "mapping" not in whole else {})

    @property
    def effective_rules(self) -> dict[str, str]:
        """Every contact field's rule: the ones set, the CRM's for the rest."""
        return {**dict.fromkeys(PARTY_FIELDS, DEFAULT_RULE), **self.rules}

    def mapping_or(self, default: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, str]]:
        """The saved mapping, else ``default`` (the CRM's own), as a copy the caller may change."""
        chosen = self.mapping if self.mapping is not None else default
        return {k: dict(v) for k, v in chosen.items()}


def upgrade(raw: Mapping[str, Any] | None) -> dict[str, Any]:
    """A stored settings dict of any version in the current version's shape (a copy; keys kept)."""
    if raw is None:
        return {"version": VERSION}
    if not isinstance(raw, Mapping):
        raise SettingsError(f"This workspace's settings are saved as {type(raw).__name__}, not as settings "
                            f"Crossledger can read. {FIX}")
    d = copy.deepcopy(dict(raw))
    version = d.get("version", 0)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise _problem("settings version", version, f"a version from 0 to {VERSION}")
    if version > VERSION:
        raise SettingsError(f"This workspace's settings were saved by a newer Crossledger (settings version "
                            f"{version}; this one reads up to {VERSION}). Update Crossledger to use it.")
    if version == 0:
        d = _from_0(d)
    d["version"] = VERSION
    return d


def _from_0(d: dict[str, Any]) -> dict[str, Any]:
    """Version 0, before settings were versioned: the words the command line accepts were also taken as
    stored values, and an empty report folder meant the default one. (Numbers saved as text, which every
    reader turned into numbers, are read as numbers in any version.)"""
    if isinstance(direction := d.get("direction"), Mapping):
        direction = dict(direction)
        if isinstance(c := direction.get("customer"), str):
            direction["customer"] = DIRECTION_WORDS.get(c.lower(), c)
        if isinstance(i := direction.get("invoice"), str):
            direction["invoice"] = {"on": "both"}.get(i.lower(), i.lower())
        d["direction"] = direction
    if isinstance(fd := d.get("field_direction"), Mapping):
        d["field_direction"] = {k: DIRECTION_WORDS.get(v, v) if isinstance(v, str) else v for k, v in fd.items()}
    if d.get("report_folder") == "":
        d["report_folder"] = None
    return d


def stored_with(raw: Mapping[str, Any] | None, **values: Any) -> dict[str, Any]:
    """The stored settings ``raw`` with some fields replaced (``deal_fields={...}``, ``schedule=Schedule(...)``),
    as the store should keep them: upgraded to the current version, only the named keys written in full,
    every other key as it was. The new values are checked (SettingsError); a bad value stored under another
    key is left for whoever reads it, so a save can put it right."""
    known = {f.name for f in fields(WorkspaceSettings)} - {"version", "extra"}
    if unknown := set(values) - known:
        raise TypeError(f"not a workspace setting: {', '.join(sorted(unknown))}")
    written = replace(WorkspaceSettings(), **values).json_of(*values)
    WorkspaceSettings.from_json({"version": VERSION, **written})  # the same checks as a stored value
    return {**upgrade(raw), **written}


def settings_of(row: Any) -> WorkspaceSettings:
    """The typed settings of a workspace, from a store row, an ops ``WorkspaceInfo``, the stored dict itself
    (None: nothing stored) or the typed settings already."""
    if isinstance(row, WorkspaceSettings):
        return row
    raw = row if row is None or isinstance(row, Mapping) else row.settings
    return WorkspaceSettings.from_json(raw)
