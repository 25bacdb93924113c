"""The migration's plan, worked out without a database or a connector: deduplicate each side, match
the two, validate what would be written, and say for every record what happens to it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from app.domain.models import PARTY_FIELDS, AccountingCustomer, CrmRecord, Party
from app.domain.text import compact_tax_id, normalise_email
from app.ops.migration.estimate import WRITE_ORDER
from app.store.serial import party_data
from app.sync import fuzzy
from app.sync.mapping import Mapping, map_record, reverse_map
from app.sync.match import Index
from app.sync.planner import BACKFLOW_FIELDS, DEFAULT_RULES, customer_candidates
from app.sync.validate import Problem, validate_party


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


def written_fields(fields: dict[str, Any], object_type: str, mapping: Mapping) -> dict[str, Any]:
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
            score, reasons = fuzzy.score_pair(fuzzy.prepare(k, party), fuzzy.prepare(acct_id,
                                                                                        ledger[acct_id].party))
            cand = fuzzy.Candidate(k, acct_id, round(score, 1), reasons, "review")
            held.add(k)
            held_acct.add(acct_id)
            rows.append(_review_pair(k, cand, party, ledger[acct_id], crm_record_fields[k]))

    # 5. Links, with blanks filled both ways and differences settled by the field rules.
    group_target: dict[str, str] = {}
    for k, (acct_id, cand, how) in sorted(link_of.items()):
        group_target.setdefault(crm_groups.find(k), acct_id)
        rows.append(link_row(inp, k, crm[k], ledger[acct_id], cand, how, to_acct, to_crm))

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
            rows.append(link_row(inp, k, crm[k], ledger[acct_id], cand, "duplicate", to_acct, to_crm))
            continue
        if root in creates:
            spec = creates[root]
            spec.payload["refs"].append(list(_ref(k)))
            spec.payload["crm_fields"][k] = crm_record_fields[k]
            dupes = len(spec.payload["refs"]) - 1
            spec.explanation = f"(also stands for {dupes} duplicate{'s' if dupes != 1 else ''} in the CRM)"
            continue
        party = crm[k]
        display = disambiguate(party.name, names)
        names.add(display.casefold())
        spec = RowSpec("create_ledger", party.name, _ref(k), None, None, None,
                       {"crm": crm_record_fields[k], "ledger": None},
                       {"ledger": {**party.fields(), "display_name": display}},
                       {"party": party_data(party), "display_name": display, "refs": [list(_ref(k))],
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
            crm_after = written_fields(party.fields(), otype, inp.mapping)
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


def disambiguate(name: str, taken: set[str]) -> str:
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


def link_row(inp: PlanInput, k: str, party: Party, cust: AccountingCustomer, cand: fuzzy.Candidate, how: str,
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
                   {"how": how, "version": cust.version, "acct_party": party_data(cust.party.with_fields(
                       {f: v[1] for f, v in acct_changes.items()}), cust.raw_name),
                    "acct_changes": acct_changes, "crm_props": props, "crm_changes": crm_changes,
                    "snapshot": {"crm": crm_after, "acct": acct_after},
                    "ledger_name": cust.raw_name or cust.party.name})
