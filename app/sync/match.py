"""Matching a CRM party to an existing ledger customer: email, then tax ID, then name.

A name alone links only names that differ in case, spacing, accents, legal form and look-alike
characters (``name_key``), and only when nothing else about the two disagrees: a name match whose
company email domain or tax ID differs is left for a person to answer on the Review page.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from app.domain.models import Party
from app.domain.text import compact_tax_id, company_domain, name_key, normalise_email

KEYS = ("email", "tax_id", "name")


def keys_of(party: Party) -> dict[str, str]:
    out = {}
    if email := normalise_email(party.email):
        out["email"] = email
    if tax := compact_tax_id(party.tax_id):
        out["tax_id"] = tax
    if name := name_key(party.name):
        out["name"] = name
    return out


class _Names(dict[str, str]):
    """Display names by ID, with their case-folded forms counted, so a name check is O(1)."""

    def __init__(self) -> None:
        super().__init__()
        self.folded: Counter[str] = Counter()

    def __setitem__(self, key: str, value: str) -> None:
        if key in self:
            self._forget(self[key])
        super().__setitem__(key, value)
        self.folded[value.casefold()] += 1

    def _forget(self, value: str) -> None:
        folded = value.casefold()
        self.folded[folded] -= 1
        if self.folded[folded] <= 0:
            del self.folded[folded]

    def __delitem__(self, key: str) -> None:
        self._forget(self[key])
        super().__delitem__(key)

    def pop(self, key: str, *default: Any) -> Any:
        if key in self:
            value = self[key]
            del self[key]
            return value
        return default[0] if default else super().pop(key)


@dataclass
class Index:
    """Customers by each matching key. Values are ledger IDs (or planned-create tokens)."""

    by: dict[str, dict[str, list[str]]] = field(default_factory=lambda: {k: defaultdict(list) for k in KEYS})
    names: _Names = field(default_factory=_Names)
    parties: dict[str, Party] = field(default_factory=dict)

    def add(self, ident: str, party: Party, display: str | None = None) -> None:
        for key, value in keys_of(party).items():
            bucket = self.by[key][value]
            if ident not in bucket:
                bucket.append(ident)
        self.names[ident] = display or party.name
        self.parties[ident] = party

    def remove(self, ident: str) -> None:
        for table in self.by.values():
            for bucket in table.values():
                if ident in bucket:
                    bucket.remove(ident)
        self.names.pop(ident, None)
        self.parties.pop(ident, None)

    def display_taken(self, name: str) -> bool:
        return name.casefold() in self.names.folded


@dataclass(frozen=True, slots=True)
class MatchResult:
    ident: str | None = None
    how: str | None = None
    ambiguous: tuple[str, ...] = ()
    disagrees: str | None = None  # a name match left for review: what else differs, in a bookkeeper's words


def disagreement(a: Party, b: Party) -> str | None:
    """What identifies two same-named parties as different: their tax IDs or company email domains."""
    tax_a, tax_b = compact_tax_id(a.tax_id), compact_tax_id(b.tax_id)
    if tax_a and tax_b and tax_a != tax_b:
        return f"its tax ID is {tax_a} and the customer's is {tax_b}"
    dom_a, dom_b = company_domain(a.email), company_domain(b.email)
    if dom_a and dom_b and dom_a != dom_b:
        return f"its email is at {dom_a} and the customer's at {dom_b}"
    return None


def find_match(party: Party, index: Index) -> MatchResult:
    """The first key that names exactly one customer wins; several on the first key that hits
    is ambiguous unless a later key narrows them to one."""
    keys = keys_of(party)
    for position, key in enumerate(KEYS):
        value = keys.get(key)
        if not value:
            continue
        hits = index.by[key].get(value, [])
        if len(hits) == 1:
            other = index.parties.get(hits[0])
            why = disagreement(party, other) if key == "name" and other is not None else None
            if why:
                return MatchResult(None, key, (hits[0],), why)
            return MatchResult(hits[0], key)
        if len(hits) > 1:
            for later in KEYS[position + 1 :]:
                later_value = keys.get(later)
                if not later_value:
                    continue
                narrowed = [h for h in hits if h in index.by[later].get(later_value, [])]
                if len(narrowed) == 1:
                    return MatchResult(narrowed[0], f"{key}+{later}")
            return MatchResult(None, key, tuple(hits))
    return MatchResult()
