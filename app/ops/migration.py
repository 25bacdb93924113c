"""The one-time historical migration: a saved plan first, then exactly that plan, resumably.

A dry run (the default) reads everything on both sides, deduplicates each side and matches the
two with the fuzzy matcher (a score and an explanation for every candidate pair), validates what
would be written and saves the plan: link N, create M in the ledger, create M' in the CRM, skip K
invalid, review J, each row with what the record holds now and what it will hold.

Applying runs the saved rows and nothing else. Every write goes through the sync engine's journal
(recorded before it is sent, with a deterministic idempotency key), so a run killed halfway is
resumed by the next apply without making anything twice; a second apply finds nothing to do.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select, update

from app.connectors import registry
from app.connectors.base import CustomerWrite, Limits, RecordWrite, WriteResult
from app.connectors.errors import ConnectorError, RateLimited, StaleVersion
from app.connectors.http import RateLimiter
from app.connectors.tokens import TokenStore
from app.domain.models import PARTY_FIELDS, AccountingCustomer, CrmRecord, Party
from app.domain.text import compact_tax_id, normalise_email, normalise_name
from app.ops.workspaces import UserError, get_workspace, open_connectors
from app.store.db import Store
from app.store.models import FieldChange, Journal, Link, MigrationPlan, MigrationRow, Quarantine, utcnow
from app.sync import fuzzy
from app.sync.deal_checks import normal_currency
from app.sync.engine import CRM_TYPES, Cancelled, Progress, SyncEngine, _jsonable, _party_data, _party_from
from app.sync.invoices import prior_invoice
from app.sync.mapping import Mapping, map_record, reverse_map
from app.sync.match import Index
from app.sync.planner import BACKFLOW_FIELDS, DEFAULT_RULES, customer_candidates, op_key
from app.sync.validate import Problem, validate_party

ACTIONS = ("link", "create_ledger", "create_crm", "invalid", "review")
# Batch endpoints with a throttle of their own, below the provider's general rate (see the provider notes:
# QuickBooks Online allows 40 batch requests a minute per company). A connector may say otherwise
# through a ``batch_limits`` attribute (an embedded sandbox with scaled limits does).
BATCH_CALLS = {"quickbooks": Limits(requests=40, window_seconds=60.0)}
WRITE_ORDER = {"create_ledger": 0, "link": 1, "create_crm": 2, "invalid": 3, "review": 4}
JOURNAL_GROUP = 25  # single-record providers: journal this many writes per database commit


# -- results ------------------------------------------------------------------------------------
@dataclass(slots=True)
class Estimate:
    """How long applying takes at the providers' published limits."""

    crm_calls: int = 0
    acct_calls: int = 0
    seconds: float = 0.0
    days: int = 0  # extra days spent waiting for a daily cap to reset
    note: str = ""

    @property
    def text(self) -> str:
        return describe_duration(self.seconds)

    def to_json(self) -> dict[str, Any]:
        return {"crm_calls": self.crm_calls, "ledger_calls": self.acct_calls, "seconds": round(self.seconds, 1),
                "days": self.days, "text": self.text, "note": self.note}


@dataclass(slots=True)
class RowView:
    id: int
    action: str
    name: str
    crm: str | None
    ledger: str | None
    score: float | None
    explanation: str | None
    before: dict[str, Any]
    after: dict[str, Any]
    excluded: bool
    status: str
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "action": self.action, "name": self.name, "crm": self.crm, "ledger": self.ledger,
                "score": self.score, "explanation": self.explanation, "before": self.before,
                "after": self.after, "excluded": self.excluded, "status": self.status, "error": self.error}


@dataclass(slots=True)
class MigrationResult:
    workspace: str
    mode: str  # dry_run | apply
    status: str  # planned | applied | nothing_to_do | cancelled | waiting | failed | partial
    plan_id: int | None
    counts: dict[str, int] = field(default_factory=dict)  # per action, excluded rows left out
    done: dict[str, int] = field(default_factory=dict)  # per action, rows this apply completed
    excluded: int = 0
    already_linked: int = 0
    writes: int = 0  # records written
    calls: dict[str, int] = field(default_factory=dict)  # write calls per side
    call_seconds: float = 0.0  # time spent inside the providers' write calls (waits for their limits included)
    estimate: Estimate = field(default_factory=Estimate)
    rows: list[RowView] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    crm_label: str = "the CRM"
    ledger_label: str = "the ledger"
    seconds: float = 0.0
    # Won deals, as the first sync after the migration will treat them (read in the dry run; nothing is
    # written for them by the migration): won, already_invoiced, invoiced_before, to_invoice, unsure.
    deals: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"workspace": self.workspace, "mode": self.mode, "status": self.status, "plan_id": self.plan_id,
                "counts": {a: self.counts.get(a, 0) for a in ACTIONS},
                "done": {a: self.done.get(a, 0) for a in ACTIONS}, "excluded": self.excluded,
                "already_linked": self.already_linked, "writes": self.writes, "write_calls": self.calls,
                "estimate": self.estimate.to_json(), "errors": len(self.errors), "error_messages": self.errors,
                "seconds": round(self.seconds, 2), "deals": dict(self.deals),
                "rows": [r.to_json() for r in self.rows]}


def describe_duration(seconds: float) -> str:
    if seconds < 60:
        return "less than a minute"
    if seconds < 3600:
        minutes = math.ceil(seconds / 60)
        return f"about {minutes} minute{'s' if minutes != 1 else ''}"
    if seconds < 2 * 86400:
        hours = math.ceil(seconds / 3600)
        return f"about {hours} hour{'s' if hours != 1 else ''}"
    days = math.ceil(seconds / 86400)
    return f"about {days} days"


def estimate_calls(calls: int, limits: Limits, used_today: int = 0) -> tuple[float, int]:
    """Seconds needed for ``calls`` requests at the sustained rate the limits allow, and the
    number of daily-cap resets waited for on the way."""
    if calls <= 0:
        return 0.0, 0
    seconds = calls * limits.window_seconds / max(1, limits.requests)
    days = 0
    if limits.daily_cap:
        left_today = max(0, limits.daily_cap - used_today)
        if calls > left_today:
            days = math.ceil((calls - left_today) / limits.daily_cap)
    return seconds, days


def batch_limits(connector: Any) -> Limits | None:
    """The separate throttle on a connector's batch calls, if its provider has one."""
    return getattr(connector, "batch_limits", None) or BATCH_CALLS.get(getattr(connector, "provider", ""))


def estimate(rows: Iterable[MigrationRow], crm_limits: Limits, acct_limits: Limits,
             acct_label: str = "the ledger", crm_label: str = "the CRM", *, acct_batch: Limits | None = None,
             crm_batch: Limits | None = None) -> Estimate:
    acct_writes = crm_writes = 0
    for r in rows:
        if r.excluded or r.status != "pending":
            continue
        if r.action == "create_ledger":
            acct_writes += 1
        elif r.action == "create_crm":
            crm_writes += 1
        elif r.action == "link":
            acct_writes += bool(r.payload.get("acct_changes"))
            crm_writes += bool(r.payload.get("crm_props"))
    acct_calls = math.ceil(acct_writes / max(1, acct_limits.batch_max))
    crm_calls = math.ceil(crm_writes / max(1, crm_limits.batch_max))
    a_s, a_days = estimate_calls(acct_calls, acct_limits)
    c_s, c_days = estimate_calls(crm_calls, crm_limits)
    if acct_batch is not None:
        a_s = max(a_s, estimate_calls(acct_calls, acct_batch)[0])
    if crm_batch is not None:
        c_s = max(c_s, estimate_calls(crm_calls, crm_batch)[0])
    days = max(a_days, c_days)
    note = ""
    if a_days:
        note = (f"{acct_label} allows {acct_limits.daily_cap:,} calls a day: the import pauses when it is used up "
                "and continues by itself the next day.")
    elif c_days:
        note = (f"{crm_label} allows {crm_limits.daily_cap:,} calls a day: the import pauses when it is used up "
                "and continues by itself the next day.")
    return Estimate(crm_calls, acct_calls, a_s + c_s + days * 86400, days, note)


# -- planning (pure) ---------------------------------------------------------------------------
@dataclass(slots=True)
class RowSpec:
    action: str
    name: str
    crm_ref: tuple[str, str] | None = None
    acct_id: str | None = None
    score: float | None = None
    explanation: str | None = None
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class PlanInput:
    crm_records: dict[tuple[str, str], CrmRecord]
    ledger: dict[str, AccountingCustomer]
    linked: dict[tuple[str, str], str]  # existing links: CRM ref -> ledger id
    mapping: Mapping
    rules: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_RULES))
    direction: str = "both"
    ledger_problems: Callable[[Party], list[tuple[str, str]]] | None = None


def _key(ref: tuple[str, str]) -> str:
    return f"{ref[0]}:{ref[1]}"


def _ref(key: str) -> tuple[str, str]:
    otype, _, rid = key.partition(":")
    return otype, rid


def _problems_text(problems: list[Problem]) -> str:
    return " ".join(p.message for p in problems)


class _Groups:
    """Union-find over record keys: confident duplicates within one side."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        root = x
        while self.parent.get(root, root) != root:
            root = self.parent[root]
        while self.parent.get(x, x) != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _split_name(name: str) -> tuple[str, str]:
    first, _, last = name.strip().rpartition(" ")
    return (first, last) if first else ("", last)


def crm_properties(party: Party, object_type: str, mapping: Mapping) -> dict[str, Any]:
    """A ledger customer as CRM properties, as the workspace's mapping writes them."""
    values = {f: v for f, v in party.fields().items() if f != "name" and v}
    props = reverse_map(values, object_type, mapping)
    fields = mapping.get(object_type, {})
    if "name" in fields:
        props[fields["name"].partition("|")[0]] = party.name
    else:
        first, last = _split_name(party.name)
        if "first_name" in fields and first:
            props[fields["first_name"].partition("|")[0]] = first
        if "last_name" in fields:
            props[fields["last_name"].partition("|")[0]] = last or party.name
    return props


def _written_fields(fields: dict[str, Any], object_type: str, mapping: Mapping) -> dict[str, Any]:
    """What the CRM will hold of ``fields`` once written (fields it cannot store stay empty)."""
    mapped = mapping.get(object_type, {})
    out = {}
    for f in PARTY_FIELDS:
        if f == "name" or f in mapped:
            out[f] = fields.get(f)
        else:
            out[f] = None
    return out


def build_plan(inp: PlanInput) -> tuple[list[RowSpec], int]:
    """The migration's rows, and how many records were already linked (left to the regular sync)."""
    to_acct = inp.direction in ("both", "crm_to_acct")
    to_crm = inp.direction in ("both", "acct_to_crm")
    rows: list[RowSpec] = []
    already = 0
    linked_acct = set(inp.linked.values())

    # 1. The CRM side: map, validate.
    crm: dict[str, Party] = {}
    crm_record_fields: dict[str, dict[str, Any]] = {}
    for ref in customer_candidates(inp.crm_records):
        if ref in inp.linked:
            already += 1
            continue
        mapped = map_record(inp.crm_records[ref], inp.mapping)
        party, problems = validate_party(mapped)
        if not problems and inp.ledger_problems is not None and to_acct:
            problems = [Problem(f, m) for f, m in inp.ledger_problems(party)]
        if problems:
            rows.append(RowSpec("invalid", party.name or f"{ref[0]} {ref[1]}", ref, None, None,
                                _problems_text(problems), {"crm": mapped.fields()}, {},
                                {"side": "crm", "problems": [{"field": p.field, "message": p.message}
                                                             for p in problems]}))
            continue
        crm[_key(ref)] = party
        crm_record_fields[_key(ref)] = party.fields()

    # 2. The ledger side: active customers not linked yet.
    ledger: dict[str, AccountingCustomer] = {}
    names: set[str] = set()  # display names taken in the ledger (inactive customers' too), casefolded
    for cust in inp.ledger.values():
        names.add((cust.raw_name or cust.party.name).casefold())
        if cust.active and cust.id not in linked_acct:
            ledger[cust.id] = cust

    # 3. Duplicates within each side.
    crm_groups, crm_review = _dedupe(crm)
    acct_groups, acct_review = _dedupe({i: c.party for i, c in ledger.items()})

    # 4. Across the sides.
    held: set[str] = set()  # CRM keys in review
    held_acct: set[str] = set()
    candidates = {c.left: c for c in fuzzy.match(list(crm.items()), [(i, c.party) for i, c in ledger.items()])}
    for dup in crm_review.values():  # the later record of an ambiguous pair, unless the ledger settles it
        mine = candidates.get(dup.right)
        if mine is not None and mine.decision == "link":
            continue
        held.add(dup.right)
        candidates.pop(dup.right, None)
        rows.append(RowSpec("review", crm[dup.right].name, _ref(dup.right), None, dup.score,
                            f"Possibly the same as '{crm[dup.left].name}' in the CRM ({dup.explanation}). "
                            "If they are the same company, merge the two in the CRM.",
                            {"crm": crm_record_fields[dup.right], "other_crm": crm_record_fields[dup.left]}, {},
                            {"side": "crm", "other": dup.left}))
    exact = Index()
    for i, c in ledger.items():
        exact.add(i, c.party)
    taken: dict[str, str] = {}  # ledger id -> the CRM key it links to first
    link_of: dict[str, tuple[str, fuzzy.Candidate, str]] = {}  # CRM key -> (ledger id, candidate, how)
    for k, c in sorted(candidates.items(), key=lambda kv: -kv[1].score):
        if c.decision == "link":
            link_of[k] = (c.right, c, _how(c))
            taken.setdefault(c.right, k)
    for k, c in candidates.items():
        if c.decision != "review" or k in link_of:
            continue
        mate = taken.get(c.right)
        if mate is not None and crm_groups.find(mate) == crm_groups.find(k):
            link_of[k] = (c.right, c, "duplicate")  # the same customer twice in the CRM
            continue
        held.add(k)
        held_acct.add(c.right)
        rows.append(_review_pair(k, c, crm[k], ledger[c.right], crm_record_fields[k]))
    # An email or tax ID shared with a ledger customer the names disagree about: never create beside it.
    for k, party in crm.items():
        if k in held or k in link_of or k in candidates:
            continue
        hits = {h for key in ("email", "tax_id") if (value := _exact_value(party, key))
                for h in exact.by[key].get(value, [])}
        if hits:
            acct_id = sorted(hits)[0]
            score, reasons = fuzzy.score_pair(fuzzy._prepare(k, party), fuzzy._prepare(acct_id,
                                                                                        ledger[acct_id].party))
            cand = fuzzy.Candidate(k, acct_id, round(score, 1), reasons, "review")
            held.add(k)
            held_acct.add(acct_id)
            rows.append(_review_pair(k, cand, party, ledger[acct_id], crm_record_fields[k]))

    # 5. Links, with blanks filled both ways and differences settled by the field rules.
    group_target: dict[str, str] = {}
    for k, (acct_id, cand, how) in sorted(link_of.items()):
        group_target.setdefault(crm_groups.find(k), acct_id)
        rows.append(_link_row(inp, k, crm[k], ledger[acct_id], cand, how, to_acct, to_crm))

    # 6. Ledger creates: one per group of CRM duplicates; a group with a linked member joins it.
    creates: dict[str, RowSpec] = {}
    for k in sorted(crm, key=lambda x: (_ref(x)[0] != "company", x)):
        if k in held or k in link_of:
            continue
        if not to_acct:
            continue
        root = crm_groups.find(k)
        if root in group_target:
            acct_id = group_target[root]
            cand = fuzzy.Candidate(k, acct_id, 100.0, ("the same customer as another CRM record linked to it",),
                                   "link")
            rows.append(_link_row(inp, k, crm[k], ledger[acct_id], cand, "duplicate", to_acct, to_crm))
            continue
        if root in creates:
            spec = creates[root]
            spec.payload["refs"].append(list(_ref(k)))
            spec.payload["crm_fields"][k] = crm_record_fields[k]
            dupes = len(spec.payload["refs"]) - 1
            spec.explanation = f"(also stands for {dupes} duplicate{'s' if dupes != 1 else ''} in the CRM)"
            continue
        party = crm[k]
        display = _disambiguate(party.name, names)
        names.add(display.casefold())
        spec = RowSpec("create_ledger", party.name, _ref(k), None, None, None,
                       {"crm": crm_record_fields[k], "ledger": None},
                       {"ledger": {**party.fields(), "display_name": display}},
                       {"party": _party_data(party), "display_name": display, "refs": [list(_ref(k))],
                        "crm_fields": {k: crm_record_fields[k]}})
        creates[root] = spec
        rows.append(spec)

    # 7. CRM creates for ledger customers nobody matched (one per group of ledger duplicates).
    if to_crm:
        group_done: dict[str, str] = {}
        for acct_id, cust in ledger.items():
            if acct_id in taken or acct_id in held_acct:
                continue
            if acct_id in acct_review:
                other = acct_review[acct_id]
                rows.append(RowSpec("review", cust.raw_name or cust.party.name, None, acct_id, other.score,
                                    f"Possibly the same as '{ledger[other.left].party.name}' in the ledger "
                                    f"({other.explanation}).", {"ledger": cust.party.fields()}, {},
                                    {"side": "accounting", "other": other.left}))
                continue
            root = acct_groups.find(acct_id)
            mate = next((m for m in _members(acct_groups, root, ledger) if m in taken), None)
            if mate is not None or root in group_done:
                other_id = mate or group_done[root]
                rows.append(RowSpec("review", cust.raw_name or cust.party.name, None, acct_id, None,
                                    f"Looks like a duplicate of '{ledger[other_id].party.name}' in the ledger. "
                                    "Merge the two in the ledger.", {"ledger": cust.party.fields()}, {},
                                    {"side": "accounting", "other": other_id}))
                continue
            party, problems = validate_party(cust.party)
            if problems:
                rows.append(RowSpec("invalid", cust.raw_name or cust.party.name, None, acct_id, None,
                                    _problems_text(problems).replace("in the CRM", "in the ledger"),
                                    {"ledger": cust.party.fields()}, {},
                                    {"side": "accounting", "problems": [{"field": p.field, "message": p.message}
                                                                        for p in problems]}))
                continue
            group_done[root] = acct_id
            otype = "person" if party.kind == "person" and "person" in inp.mapping else "company"
            props = crm_properties(party, otype, inp.mapping)
            crm_after = _written_fields(party.fields(), otype, inp.mapping)
            rows.append(RowSpec("create_crm", party.name, None, acct_id, None, None,
                                {"ledger": cust.party.fields(), "crm": None}, {"crm": crm_after},
                                {"object_type": otype, "properties": props, "crm_fields": crm_after,
                                 "acct_fields": cust.party.fields()}))
    rows.sort(key=lambda r: (WRITE_ORDER[r.action], r.name.casefold()))
    return rows, already


def _exact_value(party: Party, key: str) -> str:
    if key == "email":
        return normalise_email(party.email) or ""
    return compact_tax_id(party.tax_id) or ""


def _members(groups: _Groups, root: str, ledger: dict[str, AccountingCustomer]) -> Iterable[str]:
    return (m for m in groups.parent if groups.find(m) == root and m in ledger)


def _how(c: fuzzy.Candidate) -> str:
    if "same tax ID" in c.reasons:
        return "tax_id"
    if "same email" in c.reasons:
        return "email"
    return "name"


def _dedupe(parties: dict[str, Party]) -> tuple[_Groups, dict[str, fuzzy.Candidate]]:
    """Confident duplicates grouped; for ambiguous pairs, the later record -> its candidate."""
    groups = _Groups()
    review: dict[str, fuzzy.Candidate] = {}
    for c in fuzzy.dedupe(list(parties.items())):
        left, right = sorted((c.left, c.right))
        if c.decision == "link":
            groups.union(left, right)
        elif right not in review:
            review[right] = fuzzy.Candidate(left, right, c.score, c.reasons, c.decision)
    for k in list(review):  # a pair also confidently grouped is no longer a question
        if groups.find(k) == groups.find(review[k].left):
            del review[k]
    return groups, review


def _disambiguate(name: str, taken: set[str]) -> str:
    """The ledger's display names are unique: a second customer of the same name gets '(2)'."""
    if name.casefold() not in taken:
        return name
    n = 2
    while f"{name} ({n})".casefold() in taken:
        n += 1
    return f"{name} ({n})"


def _review_pair(k: str, c: fuzzy.Candidate, party: Party, cust: AccountingCustomer,
                 crm_fields: dict[str, Any]) -> RowSpec:
    return RowSpec("review", party.name, _ref(k), cust.id, c.score,
                   f"Possibly '{cust.raw_name or cust.party.name}' in the ledger ({c.explanation}). "
                   "Compare the two: the migration writes nothing for either of them.",
                   {"crm": crm_fields, "ledger": cust.party.fields()}, {}, {"side": "crm"})


def _link_row(inp: PlanInput, k: str, party: Party, cust: AccountingCustomer, cand: fuzzy.Candidate, how: str,
              to_acct: bool, to_crm: bool) -> RowSpec:
    ref = _ref(k)
    crm_fields = party.fields()
    acct_fields = cust.party.fields()
    acct_changes: dict[str, list[Any]] = {}
    crm_changes: dict[str, list[Any]] = {}
    differences: dict[str, list[Any]] = {}
    writable = set(inp.mapping.get(ref[0], {}))
    for f in PARTY_FIELDS:
        c, a = crm_fields.get(f), acct_fields.get(f)
        if f == "name" or c == a:
            continue
        back = to_crm and f in BACKFLOW_FIELDS and f in writable
        if a is None:
            if to_acct:
                acct_changes[f] = [a, c]
        elif c is None:
            if back:
                crm_changes[f] = [c, a]
        else:
            rule = inp.rules.get(f, "crm")
            if rule == "crm" and to_acct:
                acct_changes[f] = [a, c]
            elif rule == "accounting" and back:
                crm_changes[f] = [c, a]
            else:
                differences[f] = [c, a]
    crm_after = {**crm_fields, **{f: v[1] for f, v in crm_changes.items()}}
    acct_after = {**acct_fields, **{f: v[1] for f, v in acct_changes.items()}}
    props = reverse_map({f: v[1] for f, v in crm_changes.items()}, ref[0], inp.mapping) if crm_changes else {}
    explanation = cand.explanation
    if differences:
        explanation += "; left different on each side: " + ", ".join(differences)
    return RowSpec("link", party.name, ref, cust.id, cand.score, explanation,
                   {"crm": crm_fields, "ledger": acct_fields}, {"crm": crm_after, "ledger": acct_after},
                   {"how": how, "version": cust.version, "acct_party": _party_data(cust.party.with_fields(
                       {f: v[1] for f, v in acct_changes.items()}), cust.raw_name),
                    "acct_changes": acct_changes, "crm_props": props, "crm_changes": crm_changes,
                    "snapshot": {"crm": crm_after, "acct": acct_after},
                    "ledger_name": cust.raw_name or cust.party.name})


# -- the runs ----------------------------------------------------------------------------------
def _label(provider: str) -> str:
    try:
        return registry.info(provider).label
    except KeyError:
        return provider


class _MigrationEngine(SyncEngine):
    """The sync engine's lease, run record, journal and cancel, with a migration's own run."""

    def __init__(self, *args: Any, mode: str, exclude: Iterable[int] = (), wait_for_quota: bool = True,
                 sleep: Callable[[float], None] = time.sleep, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.mode = mode
        self.exclude = set(exclude)
        self.wait_for_quota = wait_for_quota
        self.sleep = sleep
        self.result: MigrationResult | None = None
        self.plan_id: int | None = None

    def _run(self) -> Any:
        label_crm, label_acct = _label(self.crm.provider), _label(self.acct.provider)
        self.result = MigrationResult(self.ws_name, self.mode, "planned", None, crm_label=label_crm,
                                      ledger_label=label_acct)
        if self.mode == "dry_run":
            self._make_plan()
        elif self.mode == "exclude":
            self._exclude(self.plan_id)
            self._finish_view(self.plan_id, "planned")
        else:
            self._apply_plan()
        return None

    # -- dry run ---------------------------------------------------------------------------------
    def _make_plan(self) -> None:
        res = self.result
        mapping = self.settings.get("mapping") or self.crm.default_mapping()
        rules = {**DEFAULT_RULES, **(self.settings.get("rules") or {})}
        direction = (self.settings.get("direction") or {}).get("customer", "both")
        records: dict[tuple[str, str], CrmRecord] = {}
        cursors: dict[str, str | None] = {}
        for n, otype in enumerate(CRM_TYPES):
            self.progress(f"Reading every {otype} record from {res.crm_label}", n, 3)
            changes = self.crm.read_records(otype, None)
            self.counts["read"] += len(changes.records)
            self._mirror_crm(changes.records, otype, changes.deleted_ids)
            cursors[f"crm:{otype}"] = changes.cursor
            for rec in changes.records:
                records[(otype, rec.id)] = rec
            self._check_cancel()
        self.progress(f"Reading every customer from {res.ledger_label}", 2, 3)
        acct_changes = self.acct.read_customers(None)
        self.counts["read"] += len(acct_changes.records)
        self._mirror_acct(acct_changes.records, acct_changes.deleted_ids)
        cursors["accounting:customer"] = acct_changes.cursor
        self._check_cancel()
        with self.store.session() as s:
            linked = {(lk.crm_type, lk.crm_id): lk.acct_id for lk in s.scalars(
                select(Link).where(Link.workspace_id == self.ws_id, Link.object_type == "customer"))}
        self.progress("Matching and checking records", 3, 3)
        specs, already = build_plan(PlanInput(records, {c.id: c for c in acct_changes.records}, linked, mapping,
                                              rules, direction, getattr(self.acct, "party_problems", None)))
        deals = self._deals_outlook(specs, linked)
        with self.store.session() as s:
            for old in s.scalars(select(MigrationPlan).where(MigrationPlan.workspace_id == self.ws_id,
                                                             MigrationPlan.status == "planned")):
                old.status = "superseded"
            plan = MigrationPlan(workspace_id=self.ws_id, status="planned", cursors=cursors, run_id=self.run_id,
                                 counts={"already_linked": already, "deals": deals})
            s.add(plan)
            s.flush()
            rows = [MigrationRow(plan_id=plan.id, action=r.action, name=(r.name or "")[:300],
                                 crm_type=r.crm_ref[0] if r.crm_ref else None,
                                 crm_id=r.crm_ref[1] if r.crm_ref else None, acct_id=r.acct_id, score=r.score,
                                 explanation=r.explanation, before=_jsonable(r.before), after=_jsonable(r.after),
                                 payload=_jsonable(r.payload), excluded=0, status="pending") for r in specs]
            s.add_all(rows)
            plan_id = plan.id
        self._finish_view(plan_id, "planned")

    def _deals_outlook(self, specs: list[Any], linked: dict[tuple[str, str], str]) -> dict[str, int]:
        """What the first sync after this migration will do with the CRM's won deals, so the plan can say
        it: those whose customer is linked here and that the ledger already invoiced (by hand, before
        Crossledger) will be linked to that invoice, never invoiced twice; the rest invoiced."""
        res = self.result
        self.progress(f"Reading won deals from {res.crm_label} and invoices from {res.ledger_label}", 3, 3)
        deals = [d for d in self.crm.read_deals(None).records if d.won and not d.archived]
        invoices = self.acct.read_invoices(None).records
        self.counts["read"] += len(deals) + len(invoices)
        self._check_cancel()
        customer = dict(linked)
        customer.update({tuple(r.crm_ref): r.acct_id for r in specs if r.action == "link" and r.crm_ref})
        with self.store.session() as s:
            invoiced = {(lk.crm_id, lk.acct_id) for lk in s.scalars(
                select(Link).where(Link.workspace_id == self.ws_id, Link.object_type == "invoice"))}
        taken = {acct for _, acct in invoiced}
        by_customer: dict[str, list[tuple[str, dict]]] = defaultdict(list)
        for inv in invoices:
            if inv.id and inv.id not in taken and inv.status != "void":
                by_customer[inv.customer_id].append((inv.id, {
                    "reference": inv.reference, "currency": inv.currency, "number": inv.number,
                    "total": str(inv.total) if inv.total is not None else None,
                    "issue_date": inv.issue_date.isoformat() if inv.issue_date else None}))
        out = dict.fromkeys(("won", "already_invoiced", "invoiced_before", "to_invoice", "unsure"), 0)
        done = {crm_id for crm_id, _ in invoiced}
        for deal in sorted(deals, key=lambda d: d.id):
            out["won"] += 1
            if deal.id in done:
                out["already_invoiced"] += 1
                continue
            refs = [("company", deal.company_id)] if deal.company_id else []
            refs += [("person", c) for c in deal.contact_ids]
            acct_id = next((customer[r] for r in refs if r in customer), None)
            if acct_id is None:  # a new customer, or none yet: nothing in the ledger can be its invoice
                out["to_invoice"] += 1
                continue
            found, doubt = prior_invoice(deal, normal_currency(deal.currency), deal.line_items,
                                         by_customer.get(acct_id, []), self.acct.provider)
            if found is not None:
                by_customer[acct_id] = [c for c in by_customer[acct_id] if c[0] != found]
                out["invoiced_before"] += 1
            else:
                out["unsure" if doubt else "to_invoice"] += 1
        return out

    def _exclude(self, plan_id: int) -> None:
        if not self.exclude:
            return
        with self.store.session() as s:
            for r in s.scalars(select(MigrationRow).where(MigrationRow.plan_id == plan_id,
                                                          MigrationRow.id.in_(self.exclude))):
                if r.status == "pending":
                    r.excluded = 1

    def _finish_view(self, plan_id: int, status: str) -> None:
        res = self.result
        with self.store.session() as s:
            plan = s.get(MigrationPlan, plan_id)
            rows = list(s.scalars(select(MigrationRow).where(MigrationRow.plan_id == plan_id)
                                  .order_by(MigrationRow.id)))
            res.counts = dict.fromkeys(ACTIONS, 0)
            for r in rows:
                if not r.excluded:
                    res.counts[r.action] += 1
            res.excluded = sum(r.excluded for r in rows)
            res.already_linked = int((plan.counts or {}).get("already_linked", 0))
            res.deals = dict((plan.counts or {}).get("deals") or {})
            res.estimate = estimate(rows, self.crm.limits, self.acct.limits, res.ledger_label, res.crm_label,
                                    acct_batch=batch_limits(self.acct), crm_batch=batch_limits(self.crm))
            plan.counts = {**res.counts, "already_linked": res.already_linked, "excluded": res.excluded,
                           "deals": res.deals}
            plan.estimate = res.estimate.to_json()
            res.rows = [RowView(r.id, r.action, r.name, r.crm_id and f"{r.crm_type} {r.crm_id}", r.acct_id,
                                r.score, r.explanation, r.before, r.after, bool(r.excluded), r.status, r.error)
                        for r in rows]
        res.plan_id = plan_id
        res.status = status
        self.counts.update({f"plan_{k}": v for k, v in res.counts.items()})

    # -- apply -----------------------------------------------------------------------------------
    def _apply_plan(self) -> None:
        res = self.result
        plan_id = self.plan_id
        with self.store.session() as s:
            plan = s.get(MigrationPlan, plan_id)
            cursors = dict(plan.cursors or {})
            plan.status = "applying"
        self._exclude(plan_id)
        self._finish_view(plan_id, "applying")
        before = res.estimate
        self.progress(f"Applying the plan: {res.estimate.text} at the providers' limits", 0, 1)
        self.keys_done = self._done_keys(plan_id)
        self._settle(plan_id, cursors)
        with self.store.session() as s:
            rows = list(s.scalars(select(MigrationRow).where(MigrationRow.plan_id == plan_id,
                                                             MigrationRow.status == "pending",
                                                             MigrationRow.excluded == 0)
                                  .order_by(MigrationRow.id)))
            linked = {(lk.crm_type, lk.crm_id) for lk in s.scalars(
                select(Link).where(Link.workspace_id == self.ws_id, Link.object_type == "customer"))}
            linked_acct = {lk.acct_id for lk in s.scalars(
                select(Link).where(Link.workspace_id == self.ws_id, Link.object_type == "customer"))}
        self.mapping = self.settings.get("mapping") or self.crm.default_mapping()
        self.total = len(rows) or 1
        self._pacers = {}
        for side, connector in (("accounting", self.acct), ("crm", self.crm)):
            if (b := batch_limits(connector)) is not None:
                self._pacers[side] = RateLimiter(b.requests, b.window_seconds + 1.0, sleep=self.sleep)
        self.done_rows = 0
        self.started = time.monotonic()
        self.calls_before = (self._requests(self.crm), self._requests(self.acct))
        res.calls = {"crm": 0, "ledger": 0}
        by_action: dict[str, list[MigrationRow]] = defaultdict(list)
        for r in rows:
            # a sync since the plan was made may have linked it: never make it twice
            if r.action in ("create_ledger", "link") and (r.crm_type, r.crm_id) in linked:
                self._mark(r.id, "done", error="already linked by a sync since the plan was made")
                continue
            if r.action == "create_crm" and r.acct_id in linked_acct:
                self._mark(r.id, "done", error="already linked by a sync since the plan was made")
                continue
            by_action[r.action].append(r)
        self._create_ledger(by_action["create_ledger"])
        self._links(by_action["link"])
        self._create_crm(by_action["create_crm"])
        self._hold(by_action["invalid"] + by_action["review"])
        with self.store.session() as s:
            left = s.scalar(select(MigrationRow.id).where(MigrationRow.plan_id == plan_id,
                                                          MigrationRow.status == "pending",
                                                          MigrationRow.excluded == 0).limit(1))
            res.done = dict.fromkeys(ACTIONS, 0)
            for action, status in s.execute(select(MigrationRow.action, MigrationRow.status).where(
                    MigrationRow.plan_id == plan_id, MigrationRow.excluded == 0)):
                if status == "done":
                    res.done[action] += 1
            plan = s.get(MigrationPlan, plan_id)
            if left is None:
                plan.status, plan.applied_at = "applied", utcnow()
        if left is None:
            self._save_cursors({tuple(k.split(":", 1)): v for k, v in cursors.items()})
        self._finish_view(plan_id, "applied" if left is None and not self.errors
                          else ("partial" if left is None else "applying"))
        res.estimate = before
        res.calls = {"crm": self._requests(self.crm) - self.calls_before[0],
                     "ledger": self._requests(self.acct) - self.calls_before[1]}
        res.writes = self.counts["writes"]
        self.counts.update({f"done_{k}": v for k, v in res.done.items()})
        self.progress("Done", self.total, self.total)

    def _journal(self, entries: list[tuple[str, str, str, tuple[str, str], str | None, dict]]) -> None:
        """The engine's journal, written in one statement per batch (thousands of rows in a migration)."""
        if not entries:
            return
        now = utcnow()
        with self.store.session() as s:
            s.execute(insert(Journal), [
                {"workspace_id": self.ws_id, "run_id": self.run_id, "key": key, "op": op, "side": side,
                 "crm_type": ref[0], "crm_id": ref[1], "target_id": target, "payload": _jsonable(payload),
                 "status": "pending", "created_at": now, "updated_at": now}
                for key, op, side, ref, target, payload in entries])

    @staticmethod
    def _requests(connector: Any) -> int:
        api = getattr(connector, "api", None)
        return int(getattr(api, "request_count", 0))

    def _key(self, row_id: int, part: str) -> str:
        return op_key(self.ws_name, "migration", str(self.plan_id), str(row_id), part)

    def _done_keys(self, plan_id: int) -> set[str]:
        with self.store.session() as s:
            keys = [self._key_for(plan_id, r) for r in s.scalars(select(MigrationRow.id).where(
                MigrationRow.plan_id == plan_id))]
            flat = [k for ks in keys for k in ks]
            done: set[str] = set()
            for start in range(0, len(flat), 500):
                done.update(s.scalars(select(Journal.key).where(Journal.workspace_id == self.ws_id,
                                                                Journal.key.in_(flat[start:start + 500]),
                                                                Journal.status == "done")))
        return done

    def _key_for(self, plan_id: int, row_id: int) -> list[str]:
        return [op_key(self.ws_name, "migration", str(plan_id), str(row_id), p) for p in ("create", "acct", "crm")]

    def _progress(self, stage: str, step: int = 1) -> None:
        self.done_rows += step
        elapsed = time.monotonic() - self.started
        rate = self.done_rows / elapsed if elapsed > 0 else 0
        left = (self.total - self.done_rows) / rate if rate else 0
        self.progress(f"{stage} ({describe_duration(left)} left)" if self.done_rows < self.total else stage,
                      min(self.done_rows, self.total), self.total)

    def _mark(self, row_id: int, status: str, *, target: str | None = None, error: str | None = None) -> None:
        with self.store.session() as s:
            row = s.get(MigrationRow, row_id)
            row.status = status
            if target:
                row.target_id = target
            if error:
                row.error = error

    # Sending with the journal: recorded before it is sent, finished when answered.
    def _send(self, side: str, call: Callable[[list[Any]], list[WriteResult]], writes: list[Any]) -> list[WriteResult]:
        """One batch; the records a rate limit turned away are sent again once it allows, waiting for
        a daily cap to reset when there is one (everything before is already recorded)."""
        results: list[WriteResult | None] = [None] * len(writes)
        todo = list(range(len(writes)))
        short_waits = 0
        pacer = self._pacers.get(side)
        while todo:
            if self.cancel.is_set():  # the lease is renewed once a journal group, not on every call
                raise Cancelled()
            started = time.monotonic()
            if pacer is not None:  # its writes go through a throttled batch endpoint
                pacer.acquire()
            try:
                answers = call([writes[i] for i in todo])
                self.result.call_seconds += time.monotonic() - started
            except RateLimited as exc:
                if not exc.daily or not self.wait_for_quota:
                    raise
                self._wait_quota(side, exc.retry_after)
                continue
            again: list[int] = []
            wait, daily = 0.0, False
            for i, res in zip(todo, answers, strict=True):
                err = res.error
                if isinstance(err, RateLimited) and err.daily and not self.wait_for_quota:
                    raise err  # stop here: the rest stays in the plan for the next apply
                if isinstance(err, RateLimited) and ((err.daily and self.wait_for_quota) or
                                                     (not err.daily and short_waits < 5)):
                    again.append(i)
                    wait = max(wait, err.retry_after or 1.0)
                    daily = daily or err.daily
                else:
                    results[i] = res
            todo = again
            if again and daily:
                self._wait_quota(side, wait)
            elif again:
                short_waits += 1
                self.sleep(wait)
        return [r for r in results if r is not None]

    def _wait_quota(self, side: str, retry_after: float | None) -> None:
        label = self.result.ledger_label if side == "accounting" else self.result.crm_label
        wait = retry_after if retry_after and retry_after > 0 else 3600.0
        until = time.monotonic() + wait
        when = (dt.datetime.now().astimezone() + dt.timedelta(seconds=wait)).strftime("%H:%M")
        while True:
            left = until - time.monotonic()
            if left <= 0:
                return
            self.progress(f"{label}'s daily limit is used up: everything so far is saved, and the import "
                          f"continues by itself at {when}", self.done_rows, self.total)
            self._check_cancel()
            if self.sleep is not time.sleep:  # an injected clock (tests, sandboxes): its sleep is the wait
                self.sleep(left)
                return
            self.sleep(min(left, 30.0))  # wake up now and then to honour Cancel

    def _create_ledger(self, rows: list[MigrationRow]) -> None:
        batch = max(1, self.acct.limits.batch_max)
        group = max(batch, JOURNAL_GROUP if batch == 1 else batch)
        for start in range(0, len(rows), group):
            self._check_cancel()
            chunk = rows[start:start + group]
            todo = [r for r in chunk if self._key(r.id, "create") not in self.keys_done]
            self._journal([(self._key(r.id, "create"), "create_customer", "accounting", tuple(r.payload["refs"][0]),
                            None, {"display_name": r.payload["display_name"],
                                   "email": r.payload["party"].get("email"), "refs": r.payload["refs"],
                                   "migration_row": r.id}) for r in todo])
            results: list[tuple[MigrationRow, WriteResult]] = []
            for sub in range(0, len(todo), batch):
                part = todo[sub:sub + batch]
                writes = [CustomerWrite(self._key(r.id, "create"), _party_from(r.payload["party"]),
                                        display_name=r.payload["display_name"]) for r in part]
                results += list(zip(part, self._send("accounting", self.acct.create_customers, writes), strict=True))
            created: dict[int, str] = {}
            for r, res in results:
                acct_id = res.id if res.ok else None
                if not res.ok:
                    create = _CreateLike(self._key(r.id, "create"), _party_from(r.payload["party"]),
                                         r.payload["display_name"], [tuple(x) for x in r.payload["refs"]])
                    acct_id = self._handle_create_error(create, res.error)
                    if acct_id is None:
                        self._mark(r.id, "failed", error=res.error.message if res.error else "refused")
                        continue
                else:
                    self.counts["writes"] += 1
                created[r.id] = acct_id
            for r in chunk:
                if r.id not in created and self._key(r.id, "create") in self.keys_done:
                    created[r.id] = r.target_id or self._journal_target(self._key(r.id, "create"))
            self._commit_creates(chunk, created)
            self._progress(f"Creating customers in {self.result.ledger_label}", len(chunk))

    def _journal_target(self, key: str) -> str | None:
        with self.store.session() as s:
            return s.scalar(select(Journal.target_id).where(Journal.workspace_id == self.ws_id, Journal.key == key,
                                                            Journal.status == "done").limit(1))

    def _commit_creates(self, chunk: list[MigrationRow], created: dict[int, str | None]) -> None:
        with self.store.session() as s, s.no_autoflush:
            keys = {self._key(r.id, "create"): created.get(r.id) for r in chunk if created.get(r.id)}
            # ids and keys only: loading whole journal rows would decode every payload for nothing
            journal_ids: dict[str, int] = dict(s.execute(
                select(Journal.key, Journal.id).where(Journal.workspace_id == self.ws_id,
                                                      Journal.key.in_(list(keys)), Journal.status == "pending")).all())
            if journal_ids:
                now = utcnow()
                s.execute(update(Journal), [{"id": i, "status": "done", "target_id": keys[k], "updated_at": now}
                                            for k, i in journal_ids.items()])
            links = []
            changes: list[dict[str, Any]] = []
            for r in chunk:
                acct_id = created.get(r.id)
                if not acct_id:
                    continue
                party = _party_from(r.payload["party"]).fields()
                # the audit trail, as the sync records a create: every field it set
                changes += [{"run_id": self.run_id, "journal_id": journal_ids.get(self._key(r.id, "create")),
                             "side": "accounting", "record_id": acct_id, "field": f, "before": None,
                             "after": str(v), "rule": "migration"} for f, v in party.items() if v]
                for n, ref in enumerate(r.payload["refs"]):
                    crm_fields = r.payload["crm_fields"].get(_key(tuple(ref)), party)
                    links.append((tuple(ref), acct_id, "created" if n == 0 else "duplicate",
                                  {"crm": crm_fields, "acct": party}))
                self.keys_done.add(self._key(r.id, "create"))
            if changes:
                s.execute(insert(FieldChange), changes)
            self._add_links(s, links)
            self._rows_done(s, {r.id: created[r.id] for r in chunk if created.get(r.id)})

    def _rows_done(self, s: Any, targets: dict[int, str | None], **extra: Any) -> None:
        if targets:
            s.execute(update(MigrationRow), [{"id": i, "status": "done", **({"target_id": t} if t else {}),
                                              **extra.get(str(i), {})} for i, t in targets.items()])

    def _add_links(self, s: Any, links: list[tuple[tuple[str, str], str, str, dict]]) -> None:
        """Links for many records in one go (an existing link for a record is updated, never doubled)."""
        if not links:
            return
        ids = [ref[1] for ref, *_ in links]
        existing: dict[tuple[str, str], Link] = {}
        for start in range(0, len(ids), 500):
            for lk in s.scalars(select(Link).where(Link.workspace_id == self.ws_id, Link.object_type == "customer",
                                                   Link.crm_id.in_(ids[start:start + 500]))):
                existing[(lk.crm_type, lk.crm_id)] = lk
        now = utcnow()
        new: dict[tuple[str, str], dict[str, Any]] = {}
        for ref, acct_id, how, snapshot in links:
            row = existing.get(ref)
            if row is None:
                new[ref] = {"workspace_id": self.ws_id, "object_type": "customer", "crm_type": ref[0],
                            "crm_id": ref[1], "acct_id": acct_id, "how": how, "run_id": self.run_id,
                            "snapshot": _jsonable(snapshot), "created_at": now, "updated_at": now}
                continue
            row.acct_id, row.how, row.snapshot, row.updated_at = acct_id, how, _jsonable(snapshot), now
        if new:
            s.execute(insert(Link), list(new.values()))

    def _links(self, rows: list[MigrationRow]) -> None:
        # 1. the ledger's side of each link, in the ledger's batches
        acct_rows = [r for r in rows if r.payload.get("acct_changes")
                     and self._key(r.id, "acct") not in self.keys_done]
        batch = max(1, self.acct.limits.batch_max)
        group = max(batch, JOURNAL_GROUP if batch == 1 else batch)
        failed: set[int] = set()
        for start in range(0, len(acct_rows), group):
            self._check_cancel()
            chunk = acct_rows[start:start + group]
            self._journal([(self._key(r.id, "acct"), "update_customer", "accounting", (r.crm_type, r.crm_id),
                            r.acct_id, {"changes": r.payload["acct_changes"], "migration_row": r.id})
                           for r in chunk])
            for sub in range(0, len(chunk), batch):
                part = chunk[sub:sub + batch]
                writes = [CustomerWrite(self._key(r.id, "acct"), _party_from(r.payload["acct_party"]), id=r.acct_id,
                                        version=r.payload.get("version")) for r in part]
                answers = self._send("accounting", self.acct.update_customers, writes)
                for r, res in zip(part, answers, strict=True):
                    if not res.ok and isinstance(res.error, StaleVersion):
                        res = self._retry_update(r)
                    if res.ok:
                        self._finish(self._key(r.id, "acct"), r.acct_id)
                        self.keys_done.add(self._key(r.id, "acct"))
                        self.counts["writes"] += 1
                        self._record_changes(self._key(r.id, "acct"), "accounting", r.acct_id,
                                             r.payload["acct_changes"], "migration")
                    else:
                        failed.add(r.id)
                        self._fail_row(r, self._key(r.id, "acct"), res.error)
            self._progress(f"Filling in customers in {self.result.ledger_label}", 0)
        # 2. the CRM's side, in the CRM's batches
        crm_rows = [r for r in rows if r.payload.get("crm_props") and r.id not in failed
                    and self._key(r.id, "crm") not in self.keys_done]
        cbatch = max(1, self.crm.limits.batch_max)
        cgroup = max(cbatch, JOURNAL_GROUP if cbatch == 1 else cbatch)
        for start in range(0, len(crm_rows), cgroup):
            self._check_cancel()
            chunk = crm_rows[start:start + cgroup]
            self._journal([(self._key(r.id, "crm"), "update_crm", "crm", (r.crm_type, r.crm_id), r.crm_id,
                            {"changes": r.payload["crm_changes"], "migration_row": r.id}) for r in chunk])
            for sub in range(0, len(chunk), cbatch):
                part = chunk[sub:sub + cbatch]
                writes = [RecordWrite(self._key(r.id, "crm"), r.crm_type, r.crm_id, r.payload["crm_props"])
                          for r in part]
                answers = self._send("crm", self.crm.update_records, writes)
                for r, res in zip(part, answers, strict=True):
                    if res.ok:
                        self._finish(self._key(r.id, "crm"), r.crm_id)
                        self.keys_done.add(self._key(r.id, "crm"))
                        self.counts["writes"] += 1
                        self._record_changes(self._key(r.id, "crm"), "crm", r.crm_id, r.payload["crm_changes"],
                                             "migration")
                    else:
                        failed.add(r.id)
                        self._fail_row(r, self._key(r.id, "crm"), res.error)
        # 3. the links themselves
        for start in range(0, len(rows), 500):
            chunk = [r for r in rows[start:start + 500] if r.id not in failed]
            with self.store.session() as s, s.no_autoflush:
                self._add_links(s, [((r.crm_type, r.crm_id), r.acct_id, r.payload.get("how") or "name",
                                     r.payload["snapshot"]) for r in chunk])
                self._rows_done(s, dict.fromkeys((r.id for r in chunk), None))
            self._progress("Linking records", len(rows[start:start + 500]))

    def _retry_update(self, r: MigrationRow) -> WriteResult:
        fresh = self.acct.get_customers([r.acct_id])
        changes = {f: v[1] for f, v in r.payload["acct_changes"].items()}
        if not fresh:
            return self.acct.update_customers([CustomerWrite(self._key(r.id, "acct"), _party_from(
                r.payload["acct_party"]), id=r.acct_id)])[0]
        return self.acct.update_customers([CustomerWrite(self._key(r.id, "acct"),
                                                         fresh[0].party.with_fields(changes), id=r.acct_id,
                                                         version=fresh[0].version)])[0]

    def _fail_row(self, r: MigrationRow, key: str, error: ConnectorError | None) -> None:
        message = error.message if error else "unknown error"
        with self.store.session() as s:
            for j in s.scalars(select(Journal).where(Journal.workspace_id == self.ws_id, Journal.key == key,
                                                     Journal.status == "pending")):
                j.status, j.error = "failed", message
            row = s.get(MigrationRow, r.id)
            row.status, row.error = "failed", message
        self.errors.append(f"{r.name}: {message}")

    def _create_crm(self, rows: list[MigrationRow]) -> None:
        batch = max(1, self.crm.limits.batch_max)
        group = max(batch, JOURNAL_GROUP if batch == 1 else batch)
        for start in range(0, len(rows), group):
            self._check_cancel()
            chunk = rows[start:start + group]
            todo = [r for r in chunk if self._key(r.id, "create") not in self.keys_done]
            self._journal([(self._key(r.id, "create"), "create_crm", "crm", (r.payload["object_type"], ""), None,
                            {"display_name": r.name, "properties": r.payload["properties"], "migration_row": r.id})
                           for r in todo])
            created: dict[int, tuple[str, dict]] = {}
            for sub in range(0, len(todo), batch):
                part = todo[sub:sub + batch]
                writes = [RecordWrite(self._key(r.id, "create"), r.payload["object_type"], None,
                                      r.payload["properties"]) for r in part]
                answers = self._send("crm", self.crm.update_records, writes)
                for r, res in zip(part, answers, strict=True):
                    if res.ok and res.id:
                        self.counts["writes"] += 1
                        crm_fields = r.payload["crm_fields"]
                        if isinstance(res.record, CrmRecord):
                            crm_fields = validate_party(map_record(res.record, self.mapping))[0].fields()
                        created[r.id] = (res.id, crm_fields)
                    else:
                        self._fail_row(r, self._key(r.id, "create"), res.error)
            for r in chunk:
                if r.id not in created and self._key(r.id, "create") in self.keys_done:
                    target = r.target_id or self._journal_target(self._key(r.id, "create"))
                    if target:
                        created[r.id] = (target, r.payload["crm_fields"])
            with self.store.session() as s:
                keys = {self._key(r.id, "create"): created[r.id][0] for r in chunk if r.id in created}
                for j in s.scalars(select(Journal).where(Journal.workspace_id == self.ws_id,
                                                         Journal.key.in_(list(keys)), Journal.status == "pending")):
                    j.status, j.target_id, j.updated_at = "done", keys[j.key], utcnow()
                made = [r for r in chunk if r.id in created]
                changes = [{"run_id": self.run_id, "journal_id": None, "side": "crm", "record_id": created[r.id][0],
                            "field": f, "before": None, "after": str(v), "rule": "migration"}
                           for r in made for f, v in created[r.id][1].items() if v]
                if changes:
                    s.execute(insert(FieldChange), changes)
                self._add_links(s, [((r.payload["object_type"], created[r.id][0]), r.acct_id, "created_in_crm",
                                     {"crm": created[r.id][1], "acct": r.payload["acct_fields"]}) for r in made])
                self._rows_done(s, {r.id: created[r.id][0] for r in made},
                                **{str(r.id): {"crm_type": r.payload["object_type"], "crm_id": created[r.id][0]}
                                   for r in made})
                self.keys_done.update(self._key(r.id, "create") for r in made)
            self._progress(f"Creating records in {self.result.crm_label}", len(chunk))

    def _hold(self, rows: list[MigrationRow]) -> None:
        """Invalid records and possible matches: listed where the bookkeeper looks (held back)."""
        with self.store.session() as s:
            for r in rows:
                if r.crm_type and r.crm_id:
                    q = s.scalars(select(Quarantine).where(
                        Quarantine.workspace_id == self.ws_id, Quarantine.side == "crm",
                        Quarantine.record_type == r.crm_type, Quarantine.record_id == r.crm_id)).first()
                    if q is None:
                        q = Quarantine(workspace_id=self.ws_id, side="crm", record_type=r.crm_type,
                                       record_id=r.crm_id)
                        s.add(q)
                    items = r.payload.get("problems") or [{"field": "match", "message": r.explanation or ""}]
                    q.name, q.reasons, q.run_id = r.name[:300], {"items": items}, self.run_id
                s.get(MigrationRow, r.id).status = "done"
        if rows:
            self._progress("Listing records held back", len(rows))

    # -- after a crash -------------------------------------------------------------------------
    def _settle(self, plan_id: int, cursors: dict[str, str | None]) -> None:
        """Writes journalled by a run that stopped before recording their answer: were they made?"""
        with self.store.session() as s:
            pending = list(s.scalars(select(Journal).where(Journal.workspace_id == self.ws_id,
                                                           Journal.status == "pending",
                                                           Journal.op.in_(("create_customer", "create_crm")))))
            pending = [j for j in pending if "migration_row" in (j.payload or {})]
        if not pending:
            return
        crm_seen: dict[str, list[CrmRecord]] = {}
        for j in pending:
            target = None
            name = j.payload.get("display_name")
            if j.op == "create_customer":
                hits = self.acct.find_customers(name=name) if name else []
                email = j.payload.get("email")
                if not hits and email:
                    hits = [h for h in self.acct.find_customers(email=email)
                            if normalise_name(h.party.name) == normalise_name(name)]
                target = hits[0].id if hits else None
            else:
                otype = j.crm_type or "company"
                if otype not in crm_seen:
                    crm_seen[otype] = self.crm.read_records(otype, cursors.get(f"crm:{otype}")).records
                props = j.payload.get("properties") or {}
                for rec in crm_seen[otype]:
                    if all(str(rec.properties.get(k) or "") == str(v or "") for k, v in props.items()):
                        target = rec.id
                        break
            with self.store.session() as s:
                row = s.get(Journal, j.id)
                if target:
                    row.status, row.target_id, row.updated_at = "done", target, utcnow()
                    self.keys_done.add(j.key)
                else:
                    row.status, row.error = "failed", "not made; sent again"


@dataclass(slots=True)
class _CreateLike:
    """What the engine's duplicate-name handling needs to know about a create."""

    key: str
    party: Party
    display_name: str
    refs: list[tuple[str, str]]


def _engine(store: Store, ws_id: int, crm: Any, acct: Any, **kw: Any) -> _MigrationEngine:
    return _MigrationEngine(store, ws_id, crm, acct, trigger="migration", **kw)


def _saved_plan(store: Store, ws_id: int, ws_name: str, *, apply: bool, exclude: set[int]) -> int | None:
    """The plan an apply or an exclusion works on (None: already applied), after checking the request."""
    with store.session() as s:
        plans = list(s.scalars(select(MigrationPlan).where(MigrationPlan.workspace_id == ws_id)
                               .order_by(MigrationPlan.id.desc())))
        current = next((p for p in plans if p.status in ("planned", "applying")), None)
        if not apply and not exclude:
            if current is not None and current.status == "applying":
                raise UserError(f"A migration of '{ws_name}' was started and has not finished. Finish it first "
                                f"with 'crossledger migrate \"{ws_name}\" --apply'.")
            return None
        if current is None:
            if apply and any(p.status == "applied" for p in plans):
                return None
            raise UserError(f"There is no migration plan for '{ws_name}' yet. Make one with 'crossledger migrate "
                            f"\"{ws_name}\"' (a dry run), check it, then apply it.")
        if exclude:
            ids = set(s.scalars(select(MigrationRow.id).where(MigrationRow.plan_id == current.id,
                                                              MigrationRow.id.in_(exclude))))
            unknown = sorted(exclude - ids)
            if unknown:
                raise UserError(f"The plan has no row {', '.join(map(str, unknown))}. Use the row numbers shown "
                                "by the dry run.")
        return current.id


def run_migration(store: Store, ws_id: int, crm: Any, acct: Any, *, apply: bool = False,
                  exclude: Iterable[int] = (), progress: Progress | None = None,
                  cancel: threading.Event | None = None, wait_for_quota: bool = True,
                  sleep: Callable[[float], None] = time.sleep) -> MigrationResult:
    """A dry run (makes and saves the plan), an exclusion of rows from the saved plan (``exclude``
    without ``apply``), or an apply of the saved plan, with connected connectors."""
    started = time.monotonic()
    exclude = set(exclude)
    with store.session() as s:
        from app.store.models import Workspace

        ws_name = s.get(Workspace, ws_id).name
    plan_id = _saved_plan(store, ws_id, ws_name, apply=apply, exclude=exclude)
    mode = "apply" if apply else ("exclude" if exclude else "dry_run")
    if apply and plan_id is None:
        with store.session() as s:
            last = s.scalars(select(MigrationPlan).where(MigrationPlan.workspace_id == ws_id,
                                                         MigrationPlan.status == "applied")
                             .order_by(MigrationPlan.id.desc())).first()
        return MigrationResult(ws_name, "apply", "nothing_to_do", last.id if last else None,
                               counts=dict.fromkeys(ACTIONS, 0), done=dict.fromkeys(ACTIONS, 0),
                               crm_label=_label(crm.provider), ledger_label=_label(acct.provider))
    engine = _engine(store, ws_id, crm, acct, dry_run=not apply, mode=mode, exclude=exclude, progress=progress,
                     cancel=cancel, wait_for_quota=wait_for_quota, sleep=sleep)
    engine.plan_id = plan_id
    run = engine.run()
    result = engine.result or MigrationResult(run.workspace, mode, run.status, plan_id)
    if run.status == "cancelled":
        result.status = "cancelled"
    elif run.status == "failed":
        result.status = "failed"
    result.errors = list(run.errors)
    result.seconds = time.monotonic() - started
    return result


def migrate(store: Store, tokens: TokenStore, name: str, *, apply: bool = False, exclude: Iterable[int] = (),
            progress: Progress | None = None, cancel: threading.Event | None = None) -> MigrationResult:
    """The use case behind `crossledger migrate` and the migration wizard."""
    ws = get_workspace(store, name)
    crm, acct = open_connectors(store, tokens, ws)
    try:
        return run_migration(store, ws.id, crm, acct, apply=apply, exclude=exclude, progress=progress,
                             cancel=cancel)
    finally:
        crm.close()
        acct.close()


# -- words for people ----------------------------------------------------------------------------
FIELD_WORDS = {"email": "email", "phone": "phone", "address_line1": "address", "address_line2": "address line 2",
               "city": "city", "region": "region", "postal_code": "postcode", "country": "country",
               "tax_id": "tax ID", "name": "name"}
ROWS_SHOWN = 20


def _changed(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[str]:
    before, after = before or {}, after or {}
    return [FIELD_WORDS.get(f, f) for f in PARTY_FIELDS if f != "name" and after.get(f) != before.get(f)]


def _row_line(r: RowView, res: MigrationResult) -> str:
    mark = " (left out)" if r.excluded else ""
    if r.action == "link":
        parts = []
        if filled := _changed(r.before.get("ledger"), r.after.get("ledger")):
            parts.append(f"{res.ledger_label} gets {', '.join(filled)}")
        if filled := _changed(r.before.get("crm"), r.after.get("crm")):
            parts.append(f"{res.crm_label} gets {', '.join(filled)}")
        what = "; ".join(parts) or "nothing to fill in"
        return f"#{r.id} {r.name}{mark}: {r.explanation}. {what}"
    if r.action == "create_ledger":
        shown = (r.after.get("ledger") or {}).get("display_name") or r.name
        extra = f" {r.explanation}" if r.explanation else ""
        return f"#{r.id} {shown}{mark}{extra}"
    if r.action == "create_crm":
        return f"#{r.id} {r.name}{mark}"
    return f"#{r.id} {r.name}{mark}: {r.explanation}"


def deals_sentence(deals: dict[str, int], ledger: str) -> str:
    """The won deals' outlook in one paragraph (the migration writes nothing for them; the first sync does)."""
    won, before, to_invoice = deals.get("won", 0), deals.get("invoiced_before", 0), deals.get("to_invoice", 0)
    parts = []
    if before:
        parts.append(f"{before:,} already {'has' if before == 1 else 'have'} an invoice in {ledger}, which the first "
                     "sync links instead of making another")
    if to_invoice:
        parts.append("all will be invoiced by the first sync after the migration" if to_invoice == won else
                     f"{to_invoice:,} will be invoiced by it")
    if deals.get("unsure"):
        parts.append(f"{deals['unsure']:,} fit more than one existing invoice and wait for you under Held back")
    if deals.get("already_invoiced"):
        parts.append(f"{deals['already_invoiced']:,} were invoiced through Crossledger before")
    return f"  {won:,} won deal{'' if won == 1 else 's'}" + (": " + "; ".join(parts) if parts else "") + "."


def describe_result(res: MigrationResult) -> str:
    """The plan or the outcome, in a bookkeeper's words, with what to do next."""
    name, crm, ledger = res.workspace, res.crm_label, res.ledger_label
    c = res.counts
    lines: list[str] = []
    if res.status == "nothing_to_do":
        return (f"The migration of '{name}' was already applied, so there is nothing left to do. From now on the "
                "regular sync keeps both sides in step.")
    if res.mode in ("dry_run", "exclude"):
        lines.append(f"Migration plan for '{name}' (plan {res.plan_id}). This was a dry run: nothing was written.")
    else:
        lines.append(f"Migration of '{name}' (plan {res.plan_id}). The plan was:")
    lines += [
        f"  Link   {c.get('link', 0):>6,}  {crm} records to customers already in {ledger}",
        f"  Create {c.get('create_ledger', 0):>6,}  customers in {ledger}",
        f"  Create {c.get('create_crm', 0):>6,}  records in {crm} for {ledger} customers it does not have yet",
        f"  Skip   {c.get('invalid', 0):>6,}  records that are not valid (each with what to correct)",
        f"  Review {c.get('review', 0):>6,}  possible matches to check by hand",
    ]
    if res.already_linked:
        lines.append(f"  {res.already_linked:,} records were linked before and are left to the regular sync.")
    if res.excluded:
        lines.append(f"  {res.excluded:,} rows are left out at your request.")
    if res.deals.get("won"):
        lines.append(deals_sentence(res.deals, ledger))
    if res.mode in ("dry_run", "exclude"):
        est = res.estimate
        lines.append(f"Applying it takes {est.text} within {ledger}'s and {crm}'s limits "
                     f"({est.acct_calls + est.crm_calls:,} write calls).")
        if est.note:
            lines.append(est.note)
        titles = {"link": "Will be linked", "create_ledger": f"Will be created in {ledger}",
                  "create_crm": f"Will be created in {crm}", "invalid": "Skipped: not valid",
                  "review": "To review by hand"}
        lines.append("\nRows (leave one out with --exclude ROW):")
        for action in ACTIONS:
            rows = [r for r in res.rows if r.action == action]
            if not rows:
                continue
            lines.append(f"  {titles[action]}:")
            lines += [f"    {_row_line(r, res)}" for r in rows[:ROWS_SHOWN]]
            if len(rows) > ROWS_SHOWN:
                lines.append(f"    … and {len(rows) - ROWS_SHOWN:,} more (add --json to see every row).")
        lines.append(f"\nNext: check the rows, then run 'crossledger migrate \"{name}\" --apply'. The apply does "
                     "exactly this plan and nothing else.")
        return "\n".join(lines)
    d = res.done
    lines.append(f"  Done: linked {d.get('link', 0):,}, created {d.get('create_ledger', 0):,} in {ledger} and "
                 f"{d.get('create_crm', 0):,} in {crm}; {d.get('invalid', 0) + d.get('review', 0):,} records are on "
                 f"the held-back list to correct or review ({res.writes:,} records written).")
    for err in res.errors[:10]:
        lines.append(f"  ! {err}")
    if res.status == "applied":
        lines.append("Everything in the plan is done. From now on the regular sync keeps both sides in step.")
    elif res.status == "partial":
        lines.append("The plan is done, but some records were refused (above). Correct them where it says, and "
                     "the regular sync picks them up.")
    else:
        lines.append(f"The migration stopped before the end. Run 'crossledger migrate \"{name}\" --apply' again to "
                     "continue: what is done already is not repeated.")
    return "\n".join(lines)


def saved_estimate(store: Store, name: str) -> Estimate | None:
    """How long applying the saved plan takes, as worked out when it was made (None: no plan to apply)."""
    ws = get_workspace(store, name)
    with store.session() as s:
        plan = s.scalars(select(MigrationPlan).where(MigrationPlan.workspace_id == ws.id,
                                                     MigrationPlan.status.in_(("planned", "applying")))
                         .order_by(MigrationPlan.id.desc())).first()
        if plan is None:
            return None
        e = plan.estimate or {}
    return Estimate(int(e.get("crm_calls", 0)), int(e.get("ledger_calls", 0)), float(e.get("seconds", 0.0)),
                    int(e.get("days", 0)), str(e.get("note", "")))
