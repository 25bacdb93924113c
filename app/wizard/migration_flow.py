"""The migration wizard without widgets: read both sides, show the plan, settle it, apply exactly it.

The steps (``read`` or ``resume`` first, then ``plan``, ``invalid``, ``review``, ``start``,
``apply``, ``done``) run on the shared step machine. The plan itself is made, saved and applied by
``app.ops.migration``; this flow keeps what the bookkeeper chose on the way (rows left out, and for
each possible match: link, keep apart or leave for later) and writes those choices into the saved
plan only when Apply is pressed, so what is applied is what the pages showed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from app.connectors.base import Limits
from app.connectors.tokens import TokenStore
from app.domain.models import PARTY_FIELDS, AccountingCustomer, Party
from app.ops import changes, mirror_reads, workspace_settings, workspaces
from app.ops.conflicts import AmbiguousMatch
from app.ops.migration import (
    ACTIONS,
    FIELD_WORDS,
    Estimate,
    MigrationResult,
    PlanInput,
    RowSpec,
    RowView,
    batch_limits,
    crm_properties,
    deals_sentence,
    describe_duration,
    disambiguate,
    estimate,
    link_row,
    provider_words,
    run_migration,
    written_fields,
)
from app.ops.plan_rows import Unfinished, left_for_later, settle_rows, unfinished_plan
from app.store.db import Store
from app.store.serial import party_data
from app.sync import fuzzy
from app.sync.mapping import Mapping, map_record
from app.sync.validate import validate_party
from app.wizard.flow import Data, Flow, Step

Progress = Callable[[str, int, int], None]
Connectors = Callable[[], tuple[Any, Any]]

LINK, APART, LATER = "link", "apart", "later"
CHOICE_LABEL = {LINK: "Same customer: link them", APART: "Different customers: keep apart",
                LATER: "Not sure: leave for later"}
SHOWN_FIELDS = ("email", "phone", "address_line1", "city", "postal_code", "country", "tax_id")


def action_label(action: str, crm: str, ledger: str) -> str:
    return {"link": "Link", "create_ledger": f"Create in {ledger}", "create_crm": f"Create in {crm}",
            "invalid": "Skip: not valid", "review": "Check by hand"}[action]


def spec_ref(spec: RowSpec) -> str | None:
    return f"{spec.crm_ref[0]} {spec.crm_ref[1]}" if spec.crm_ref else None


def fields_text(values: dict[str, Any] | None) -> str:
    """A record's details on one line, in the order a bookkeeper reads a customer card."""
    if not values:
        return "(not there yet)"
    name = values.get("display_name") or values.get("name") or ""
    rest = [str(v) for f in SHOWN_FIELDS if (v := values.get(f))]
    return ", ".join([name, *rest]) if name else ", ".join(rest) or "(empty)"


def changes_text(before: dict[str, Any] | None, after: dict[str, Any] | None) -> str:
    """What a link fills in or changes on one side ("" when nothing)."""
    before, after = before or {}, after or {}
    out = []
    for f in PARTY_FIELDS:
        if f == "name" or after.get(f) == before.get(f):
            continue
        word = FIELD_WORDS.get(f, f)
        out.append(f"{word}: {after.get(f)}" if before.get(f) is None else
                   f"{word}: {before.get(f)} → {after.get(f)}")
    return "; ".join(out)


@dataclass(slots=True)
class PlanRow:
    """One row of the plan as the pages show it (before and after in words, the score explained)."""

    id: int
    action: str
    name: str
    what: str  # Link, Create in Xero, ...
    before: str
    after: str
    why: str  # the score explanation, the reasons a record is not valid, or a duplicate's note
    excluded: bool
    status: str
    crm_fields: dict[str, Any] | None = None
    ledger_fields: dict[str, Any] | None = None
    choice: str | None = None  # review rows: link | apart | later
    crm: str | None = None  # "company 123"
    ledger: str | None = None  # the ledger customer's ID

    def matches(self, words: str) -> bool:
        hay = " ".join((self.name, self.what, self.before, self.after, self.why)).casefold()
        return all(w in hay for w in words.casefold().split())


@dataclass(slots=True)
class Context:
    """What applying needs besides the saved plan: the providers' limits, mapping and rules."""

    crm_limits: Limits
    acct_limits: Limits
    crm_batch: Limits | None
    acct_batch: Limits | None
    mapping: Mapping
    rules: dict[str, str]
    direction: str


@dataclass(slots=True)
class ReadResult:
    result: MigrationResult
    context: Context


@dataclass(slots=True)
class _Decision:
    choice: str
    specs: list[RowSpec] = field(default_factory=list)  # the row's replacement, then any new rows


def later_matches(store: Store, workspace_id: int) -> list[AmbiguousMatch]:
    """Possible matches a migration left for later and nobody has linked since (for the Review page)."""
    later = left_for_later(store, workspace_id)
    if later is None:
        return []
    crm, ledger = provider_words(later.crm_provider), provider_words(later.accounting_provider)
    out = []
    for r in later.rows:
        before = r.before
        sides = []
        if before.get("crm"):
            sides.append(f"In {crm}: {fields_text(before['crm'])}.")
        if before.get("other_crm"):
            sides.append(f"Also in {crm}: {fields_text(before['other_crm'])}.")
        if before.get("ledger"):
            sides.append(f"In {ledger}: {fields_text(before['ledger'])}.")
        record_type, record_id = (r.crm_type or "", r.crm_id) if r.crm_id else ("customer", r.acct_id or "")
        why = r.explanation.replace(" in the CRM", f" in {crm}").replace(" in the ledger", f" in {ledger}")
        out.append(AmbiguousMatch(record_type, record_id, r.name,
                                  " ".join([f"Left for later in the migration. {why}".strip(), *sides]),
                                  later.decided_at))
    return out


class MigrationFlow:
    """The migration of one workspace, step by step; safe to drive from tests without widgets."""

    def __init__(self, store: Store, tokens: TokenStore | None, workspace: str, *,
                 connectors: Connectors | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        self.store, self.tokens = store, tokens
        ws = workspaces.get_workspace(store, workspace)
        self.ws = ws
        self.workspace = ws.name
        self._connectors = connectors or (lambda: workspaces.open_connectors(store, tokens, ws))
        self.sleep = sleep
        self.result: MigrationResult | None = None  # the plan as read (rows as saved)
        self.applied: MigrationResult | None = None
        self.context: Context | None = None
        self.excluded: set[int] = set()
        self.decisions: dict[int, _Decision] = {}
        self.committed = False
        self.unfinished = self.find_unfinished()
        steps = {
            "resume": Step("resume", "Continue the migration", next=lambda d: "apply"),
            "read": Step("read", "Read both sides", next=lambda d: "plan"),
            "plan": Step("plan", "The plan", validate=self._check_plan,
                         next=lambda d: "invalid" if self._has("invalid") else self._after_invalid()),
            "invalid": Step("invalid", "Records that are not valid", next=lambda d: self._after_invalid()),
            "review": Step("review", "Possible matches", next=lambda d: "start"),
            "start": Step("start", "Ready to apply", next=lambda d: "apply", validate=self._check_start),
            "apply": Step("apply", "Applying the plan", next=lambda d: "done", validate=self._check_applied),
            "done": Step("done", "Done"),
        }
        self.flow = Flow(steps, "resume" if self.unfinished else "read")

    # -- the step machine --------------------------------------------------------------------------
    def _has(self, action: str) -> bool:
        return self.result is not None and any(r.action == action for r in self.result.rows)

    def _after_invalid(self) -> str:
        return "review" if self._has("review") else "start"

    def _check_plan(self, _d: Data, _v: Data) -> dict[str, str]:
        if self.result is None:
            return {"plan": "Both sides have not been read yet."}
        return {}

    def _check_start(self, _d: Data, _v: Data) -> dict[str, str]:
        if not any(self.counts().get(a, 0) for a in ACTIONS):
            return {"start": "There is nothing to apply: every record is left out."}
        return {}

    def _check_applied(self, _d: Data, _v: Data) -> dict[str, str]:
        if self.applied is None or self.applied.status not in ("applied", "partial", "nothing_to_do"):
            return {"apply": "The plan is not finished yet."}
        return {}

    # -- reading (on a worker thread) ---------------------------------------------------------------
    def find_unfinished(self) -> Unfinished | None:
        return unfinished_plan(self.store, self.ws.id)

    def read(self, progress: Progress | None = None, cancel: threading.Event | None = None) -> ReadResult:
        """Read everything on both sides and make the plan (a dry run: nothing is written to either side)."""
        crm, acct = self._connectors()
        try:
            result = run_migration(self.store, self.ws.id, crm, acct, progress=progress, cancel=cancel)
            settings = workspace_settings.load(self.store, self.workspace)
            context = Context(crm.limits, acct.limits, batch_limits(crm), batch_limits(acct),
                              settings.mapping_or(crm.default_mapping()), settings.effective_rules,
                              settings.direction.customer)
            return ReadResult(result, context)
        finally:
            crm.close()
            acct.close()

    def record_read(self, read: ReadResult) -> None:
        """On the UI thread: keep the plan that was read; choices made on an older plan are dropped."""
        self.result, self.context = read.result, read.context
        self.excluded.clear()
        self.decisions.clear()
        self.committed = False

    # -- the plan -----------------------------------------------------------------------------------
    @property
    def crm_label(self) -> str:
        return self.result.crm_label if self.result else "the CRM"

    @property
    def ledger_label(self) -> str:
        return self.result.ledger_label if self.result else "the ledger"

    def _view(self, r: RowView, spec: RowSpec | None = None, choice: str | None = None) -> PlanRow:
        action = spec.action if spec else r.action
        before = spec.before if spec else r.before
        after = spec.after if spec else r.after
        why = (spec.explanation if spec else r.explanation) or ""
        crm, ledger = self.crm_label, self.ledger_label
        b_crm, b_led = before.get("crm"), before.get("ledger")
        a_crm, a_led = after.get("crm"), after.get("ledger")
        if action == "link":
            before_text = f"{crm}: {fields_text(b_crm)} | {ledger}: {fields_text(b_led)}"
            fills = [f"{side} gets {t}" for side, t in ((ledger, changes_text(b_led, a_led)),
                                                        (crm, changes_text(b_crm, a_crm))) if t]
            after_text = "Linked. " + ("; ".join(fills) if fills else "Nothing to fill in.")
        elif action == "create_ledger":
            before_text = f"{crm}: {fields_text(b_crm)}"
            after_text = f"New customer in {ledger}: {fields_text(a_led)}"
            why = f"No customer in {ledger} matches it. {why}".strip() if not why or why.startswith("(") else why
        elif action == "create_crm":
            before_text = f"{ledger}: {fields_text(b_led)}"
            after_text = f"New record in {crm}: {fields_text(a_crm)}"
            why = f"No record in {crm} matches it. {why}".strip() if not why or why.startswith("(") else why
        elif action == "invalid":
            side = crm if b_crm else ledger
            before_text = f"{side}: {fields_text(b_crm or b_led)}"
            after_text = "Not written; listed under Held back until it is corrected"
        else:
            parts = [f"{crm}: {fields_text(b_crm)}" if b_crm else "",
                     f"also in {crm}: {fields_text(before.get('other_crm'))}" if before.get("other_crm") else "",
                     f"{ledger}: {fields_text(b_led)}" if b_led else ""]
            before_text = " | ".join(p for p in parts if p)
            after_text = "Waits for your decision on the Review tab"
        why = why.replace(" Compare the two: the migration writes nothing for either of them.", "")
        if spec is not None and choice == LINK:
            why = f"You said they are the same customer. {why}"
        return PlanRow(r.id, action, r.name, action_label(action, crm, ledger), before_text, after_text,
                       why.replace(" in the CRM", f" in {crm}").replace(" in the ledger", f" in {ledger}"),
                       r.id in self.excluded or r.excluded, r.status,
                       b_crm, b_led, choice, spec_ref(spec) if spec else r.crm,
                       spec.acct_id if spec else r.ledger)

    def rows(self, action: str | None = None, search: str = "") -> list[PlanRow]:
        """The plan's rows as they will be applied (choices on possible matches included), filtered."""
        if self.result is None:
            return []
        out = []
        for r in self.result.rows:
            decision = self.decisions.get(r.id)
            spec = decision.specs[0] if decision and decision.choice != LATER else None
            view = self._view(r, spec, decision.choice if decision else None)
            if (action is None or view.action == action) and (not search or view.matches(search)):
                out.append(view)
        for r, spec in self._extra_rows():
            view = self._view(r, spec)
            if (action is None or view.action == action) and (not search or view.matches(search)):
                out.append(view)
        return out

    def _extra_rows(self) -> list[tuple[RowView, RowSpec]]:
        """New rows a decision adds (a ledger customer kept apart gets its record in the CRM)."""
        out = []
        for row_id, d in self.decisions.items():
            for n, spec in enumerate(d.specs[1:], 1):
                out.append((RowView(-(row_id * 10 + n), spec.action, spec.name, None, spec.acct_id, spec.score,
                                    spec.explanation, spec.before, spec.after, False, "pending"), spec))
        return out

    def review_rows(self) -> list[PlanRow]:
        """The possible matches, with both sides (as read) for a side-by-side look."""
        if self.result is None:
            return []
        out = []
        for r in self.result.rows:
            if r.action == "review":
                d = self.decisions.get(r.id)
                out.append(self._view(r, None, d.choice if d else None))
        return out

    def set_excluded(self, row_id: int, excluded: bool) -> None:
        if self.committed:
            raise workspaces.UserError("The plan is being applied; rows can no longer be left out.")
        if self.result is None or not any(r.id == row_id for r in self.result.rows):
            raise workspaces.UserError("That row is not in the plan.")
        (self.excluded.add if excluded else self.excluded.discard)(row_id)

    def counts(self) -> dict[str, int]:
        """The counts of the plan that Apply runs: rows left out are not counted, decisions are."""
        counts = dict.fromkeys(ACTIONS, 0)
        for r in self.rows():
            if not r.excluded:
                counts[r.action] += 1
        return counts

    def counts_text(self) -> str:
        c = self.counts()
        return (f"Link {c['link']:,} · Create {c['create_ledger']:,} in {self.ledger_label} · "
                f"Create {c['create_crm']:,} in {self.crm_label} · Skip {c['invalid']:,} not valid · "
                f"Check {c['review']:,} by hand")

    def estimate(self) -> Estimate:
        """How long applying takes at the providers' published limits, for the plan as it stands."""
        if self.result is None or self.context is None:
            return Estimate()
        rows = []
        for r in self.result.rows:
            d = self.decisions.get(r.id)
            spec = d.specs[0] if d and d.choice != LATER else None
            rows.append(SimpleNamespace(excluded=r.id in self.excluded, status=r.status,
                                        action=spec.action if spec else r.action,
                                        payload=spec.payload if spec else self._payload(r)))
        rows += [SimpleNamespace(excluded=False, status="pending", action=s.action, payload=s.payload)
                 for _r, s in self._extra_rows()]
        c = self.context
        return estimate(rows, c.crm_limits, c.acct_limits, self.ledger_label, self.crm_label,
                        acct_batch=c.acct_batch, crm_batch=c.crm_batch)

    def _payload(self, r: RowView) -> dict[str, Any]:
        """The saved payload's parts the estimate needs (which sides a link writes to)."""
        if r.action != "link":
            return {}
        return {"acct_changes": changes_text(r.before.get("ledger"), r.after.get("ledger")),
                "crm_props": changes_text(r.before.get("crm"), r.after.get("crm"))}

    def eta_text(self) -> str:
        est = self.estimate()
        text = (f"Applying this plan takes {est.text}, at the pace {self.ledger_label} and {self.crm_label} "
                "accept changes.")
        return f"{text} {est.note}" if est.note else text

    # -- possible matches ---------------------------------------------------------------------------
    def choices_for(self, row_id: int) -> list[str]:
        """What a possible match can be settled as: a pair across the two sides can be linked."""
        r = self._row(row_id)
        if r.action != "review":
            return []
        return [LINK, APART, LATER] if (r.crm and r.ledger) else [APART, LATER]

    def decide(self, row_id: int, choice: str) -> None:
        """Settle a possible match: link the pair, keep them apart (each gets its counterpart), or later."""
        if self.committed:
            raise workspaces.UserError("The plan is being applied; its possible matches can no longer change.")
        if choice not in self.choices_for(row_id):
            raise workspaces.UserError("That choice does not fit this record.")
        if choice == LATER:
            self.decisions.pop(row_id, None)
            return
        r = self._row(row_id)
        specs = self._link_specs(r) if choice == LINK else self._apart_specs(r)
        self.decisions[row_id] = _Decision(choice, specs)

    def _row(self, row_id: int) -> RowView:
        if self.result is None:
            raise workspaces.UserError("Both sides have not been read yet.")
        for r in self.result.rows:
            if r.id == row_id:
                return r
        raise workspaces.UserError("That row is not in the plan.")

    def _crm_party(self, r: RowView) -> tuple[tuple[str, str], Party]:
        crm_type, _, crm_id = (r.crm or "").partition(" ")
        record = mirror_reads.crm_record(self.store, self.ws.id, crm_type, crm_id)
        party, _ = validate_party(map_record(record, self.context.mapping))
        return (crm_type, crm_id), party

    def _customer(self, acct_id: str) -> AccountingCustomer:
        customer = mirror_reads.ledger_customer(self.store, self.ws.id, acct_id)
        if customer is None:
            raise workspaces.UserError("That customer is no longer in the ledger. Read both sides again.")
        return customer

    def _inp(self) -> PlanInput:
        c = self.context
        return PlanInput({}, {}, {}, c.mapping, c.rules, c.direction)

    def _link_specs(self, r: RowView) -> list[RowSpec]:
        ref, party = self._crm_party(r)
        cust = self._customer(r.ledger or "")
        key = f"{ref[0]}:{ref[1]}"
        score, reasons = fuzzy.score_pair(fuzzy.prepare(key, party), fuzzy.prepare(cust.id, cust.party))
        cand = fuzzy.Candidate(key, cust.id, round(score, 1), reasons or ("you said they are the same customer",),
                               "link")
        direction = self.context.direction
        return [link_row(self._inp(), cand.left, party, cust, cand, "manual",
                          direction in ("both", "crm_to_acct"), direction in ("both", "acct_to_crm"))]

    def _taken_names(self) -> set[str]:
        names = mirror_reads.ledger_names(self.store, self.ws.id)
        for r in self.rows("create_ledger"):
            names.add(str((self._after_of(r.id) or {}).get("display_name") or r.name).casefold())
        return names

    def _after_of(self, row_id: int) -> dict[str, Any] | None:
        d = self.decisions.get(row_id)
        if d and d.specs:
            return d.specs[0].after.get("ledger")
        r = next((x for x in self.result.rows if x.id == row_id), None) if self.result else None
        return r.after.get("ledger") if r else None

    def _apart_specs(self, r: RowView) -> list[RowSpec]:
        direction = self.context.direction
        specs: list[RowSpec] = []
        if r.crm and direction in ("both", "crm_to_acct"):
            ref, party = self._crm_party(r)
            fields = party.fields()
            display = disambiguate(party.name, self._taken_names())
            specs.append(RowSpec("create_ledger", party.name, ref, None, None,
                                 "You said these are different customers: kept apart.",
                                 {"crm": fields, "ledger": None}, {"ledger": {**fields, "display_name": display}},
                                 {"party": party_data(party), "display_name": display, "refs": [list(ref)],
                                  "crm_fields": {f"{ref[0]}:{ref[1]}": fields}}))
        acct_id = r.ledger
        if acct_id and direction in ("both", "acct_to_crm") and not self._acct_in_plan(acct_id, r.id):
            cust = self._customer(acct_id)
            party, problems = validate_party(cust.party)
            if not problems:
                mapping = self.context.mapping
                otype = "person" if party.kind == "person" and "person" in mapping else "company"
                crm_after = written_fields(party.fields(), otype, mapping)
                spec = RowSpec("create_crm", party.name, None, acct_id, None,
                               "You said these are different customers: kept apart.",
                               {"ledger": cust.party.fields(), "crm": None}, {"crm": crm_after},
                               {"object_type": otype, "properties": crm_properties(party, otype, mapping),
                                "crm_fields": crm_after, "acct_fields": cust.party.fields()})
                specs.append(spec)
        if not specs:
            raise workspaces.UserError("Nothing can be written for this record in this workspace's sync direction.")
        return specs

    def _acct_in_plan(self, acct_id: str, but: int) -> bool:
        """Is this ledger customer linked, created or questioned by another row (left for later counts too)?"""
        for r in self.result.rows if self.result else []:
            if r.id == but or r.ledger != acct_id:
                continue
            d = self.decisions.get(r.id)
            if d is None or d.choice == LINK:
                return True
        return any(spec.action == "create_crm" and spec.acct_id == acct_id
                   for row_id, d in self.decisions.items() if row_id != but for spec in d.specs)

    # -- applying ----------------------------------------------------------------------------------
    def commit(self) -> None:
        """Write the bookkeeper's choices on possible matches into the saved plan (once, before applying)."""
        if self.committed or self.result is None:
            return
        settle_rows(self.store, self.result.plan_id, ((row_id, d.specs) for row_id, d in self.decisions.items()))
        self.committed = True

    def apply(self, progress: Progress | None = None, cancel: threading.Event | None = None) -> MigrationResult:
        """Apply the saved plan (on a worker thread); a stopped apply is continued, nothing done twice."""
        crm, acct = self._connectors()
        try:
            exclude: Iterable[int] = () if self.unfinished or self.applied else self.excluded
            return run_migration(self.store, self.ws.id, crm, acct, apply=True, exclude=exclude,
                                 progress=progress, cancel=cancel, sleep=self.sleep)
        finally:
            crm.close()
            acct.close()
            changes.announce(self.store, self.ws.id, changes.MIGRATION)

    def record_applied(self, result: MigrationResult) -> None:
        self.applied = result
        if result.status in ("cancelled", "failed", "applying", "waiting"):
            self.unfinished = self.find_unfinished()

    # -- words --------------------------------------------------------------------------------------
    def done_lines(self) -> list[str]:
        """What was done and what to do next, for the last page."""
        res = self.applied
        if res is None:
            return []
        crm, ledger = res.crm_label, res.ledger_label
        if res.status == "nothing_to_do":
            return ["The migration was already applied, so there was nothing left to do.",
                    "From now on the regular sync keeps both sides in step: click Sync now, or let the schedule "
                    "run it."]
        d = res.done
        lines = [f"Linked {d.get('link', 0):,} {crm} records to customers already in {ledger}.",
                 f"Created {d.get('create_ledger', 0):,} customers in {ledger}.",
                 f"Created {d.get('create_crm', 0):,} records in {crm}."]
        if d.get("invalid"):
            lines.append(f"{d['invalid']:,} records were not valid and were not written: they are on the Held back "
                         "tab, each with what to correct.")
        if d.get("review"):
            lines.append(f"{d['review']:,} possible matches wait on the Review tab for your decision.")
        if res.excluded:
            lines.append(f"{res.excluded:,} row{'s' if res.excluded != 1 else ''} you left out "
                         f"{'were' if res.excluded != 1 else 'was'} not touched.")
        if res.errors:
            lines.append(f"{len(res.errors):,} records were refused by the other side and are listed below.")
            lines += [f"• {e}" for e in res.errors[:5]]
        if res.deals.get("won"):
            lines.append(deals_sentence(res.deals, ledger).strip())
        lines.append("Next: from now on the regular sync keeps both sides in step. Click Sync now, or let the "
                     "schedule run it. Correct the held-back records where it says, and the sync picks them up.")
        return lines

    def deals_text(self) -> str:
        """For the plan page: what the first sync will do with the won deals ('' when there are none)."""
        res = self.result
        return deals_sentence(res.deals, res.ledger_label).strip() if res is not None and res.deals.get("won") else ""

    def elapsed_text(self) -> str:
        return describe_duration(self.applied.seconds) if self.applied else ""
