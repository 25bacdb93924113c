"""Fuzzy matching across two sides, with blocking so the cost grows near-linearly.

Each candidate pair gets a score (0-100) and an explanation a bookkeeper can read
("name 94%, same email domain, same VAT number"). Confident pairs link, ambiguous ones go to
review, clear non-matches stay apart. A pair links on its name alone only when the names differ in no
more than case, spacing, accents and legal form (``name_key``); a name that differs in anything else
(a typo, another symbol or digit, words reordered) links only with something else that agrees (email,
tax ID, phone or company domain). Same-named records whose tax IDs or domains differ go to review.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from operator import itemgetter

from rapidfuzz import fuzz, process

from app.domain.models import Party
from app.domain.text import compact_tax_id, company_domain, folded_words, name_key, normalise_email, normalise_name

LINK_AT = 92.0
REVIEW_AT = 80.0
MAX_BLOCK = 64  # a block larger than this is too common to say anything (e.g. the word "bakery")
TOP_BY_NAME = 6


@dataclass(frozen=True, slots=True)
class Candidate:
    left: str
    right: str
    score: float
    reasons: tuple[str, ...]
    decision: str  # link | review | apart

    @property
    def explanation(self) -> str:
        return ", ".join(self.reasons)


@dataclass(slots=True)
class _Prepared:
    id: str
    name: str
    key: str  # name_key: equal keys may link on the name alone
    sorted_name: str
    tokens: tuple[str, ...]
    email: str
    domain: str
    tax: str
    phone: str
    postcode: str
    blocks: list[str] = field(default_factory=list)


def _digits(text: str | None) -> str:
    return re.sub(r"\D", "", text or "")


def prepare(ident: str, party: Party) -> _Prepared:
    words = folded_words(party.name)  # folded once for both keys
    name = normalise_name(party.name, words)
    tokens = tuple(name.split())
    return _Prepared(ident, name, name_key(party.name, words), " ".join(sorted(tokens)), tokens,
                     normalise_email(party.email), company_domain(party.email),
                     compact_tax_id(party.tax_id), _digits(party.phone)[-9:],
                     (party.postal_code or "").replace(" ", "").upper())


def _block_keys(p: _Prepared, token_freq: dict[str, int]) -> tuple[list[str], list[str]]:
    """The record's blocking keys: the strong ones (same email, tax ID or phone: always scored) and the
    rest (company domain, name words), each in a fixed order."""
    strong = []
    if p.email:
        strong.append("e:" + p.email)
    if p.tax:
        strong.append("t:" + p.tax)
    if len(p.phone) >= 7:
        strong.append("p:" + p.phone)
    keys = ["d:" + p.domain] if p.domain else []
    words = [t for _, t in sorted([(token_freq.get(t, 0), t) for t in set(p.tokens)])[:4]]  # rarest first
    if len(words) == 1:
        tok = words[0]
        keys += ["w:" + tok, "a:" + tok[:4], "z:" + tok[-4:]]
    # Pairs of words (in any order), and pairs where one word is known only by its first or last
    # four letters: a typo or a swapped pair of words still leaves a shared key.
    add = keys.append
    for i, t in enumerate(words):
        for u in words[i + 1:]:
            add("w:" + (t + "|" + u if t < u else u + "|" + t))
        if len(t) >= 4:
            head, tail = "a:" + t[:3] + "|", "z:" + t[-3:] + "|"
            for u in words:
                if u != t:
                    add(head + u)
                    add(tail + u)
    return strong, keys


def _word_score(a: _Prepared, b: _Prepared) -> float:
    """Word by word: each word of the longer name against its best partner, weighted by length.
    A one-letter typo in a short name costs little here, where it costs a lot on the whole string."""
    if len(a.tokens) != len(b.tokens):
        return 0.0
    total = weight = 0.0
    left = list(b.tokens)
    for t in a.tokens:  # each word pairs with one partner only; the first of equal partners
        _, best, best_i = process.extractOne(t, left, scorer=fuzz.ratio)
        if best < 75:
            return 0.0
        left.pop(best_i)
        total += best * len(t)
        weight += len(t)
    return total / weight if weight else 0.0


def score_pair(a: _Prepared, b: _Prepared) -> tuple[float, tuple[str, ...]]:
    reasons: list[str] = []
    return _score(a, b, reasons), tuple(reasons)


def _score(a: _Prepared, b: _Prepared, reasons: list[str] | None = None) -> float:
    """The pair's score; its reasons are added to ``reasons`` when given (matching scores many pairs and
    words the reasons of the best one only)."""
    if a.name and b.name:
        name = fuzz.ratio(a.name, b.name)
        if name < 100:  # the other two readings can only raise it, to at most 100
            name = max(name, fuzz.ratio(a.sorted_name, b.sorted_name), _word_score(a, b))
    else:
        name = 0.0
    score = name
    why: Callable[[str], None] = _ignore
    if reasons is not None:
        reasons.append(f"name {name:.0f}%")
        why = reasons.append
    if a.tax and b.tax:
        if a.tax == b.tax:
            score += 15
            why("same tax ID")
        else:
            score -= 50
            why("different tax IDs")
    if a.email and a.email == b.email:
        score += 12
        why("same email")
    elif a.domain and a.domain == b.domain:
        score += 8
        why("same email domain")
    elif a.domain and b.domain:
        score -= 15
        why("different email domains")
    if a.phone and a.phone == b.phone:
        score += 8
        why("same phone")
    if a.postcode and a.postcode == b.postcode:
        score += 3
        why("same postcode")
    if a.key and a.key == b.key and _disagree(a, b):
        score = max(score, REVIEW_AT)  # the same name, told apart by a tax ID or domain: a person decides
    return max(0.0, min(100.0, score))


def _ignore(_reason: str) -> None:
    return None


def _disagree(a: _Prepared, b: _Prepared) -> bool:
    return bool((a.tax and b.tax and a.tax != b.tax) or (a.domain and b.domain and a.domain != b.domain))


def may_link(a: _Prepared, b: _Prepared) -> bool:
    """Whether a pair scoring high enough may link: nothing identifying disagrees, and either the names
    are the same (as ``name_key`` reads them) or something besides the name agrees."""
    if _disagree(a, b):
        return False
    if a.key and a.key == b.key:
        return True
    return bool((a.tax and a.tax == b.tax) or (a.email and a.email == b.email)
                or (a.phone and a.phone == b.phone) or (a.domain and a.domain == b.domain))


def match(left: Iterable[tuple[str, Party]], right: Iterable[tuple[str, Party]], *,
          same_side: bool = False) -> list[Candidate]:
    """Best candidate per left record (and each right record used at most once per decision).

    Blocking: records meet only when they share an email, tax ID, phone, company email domain,
    or one of their two rarest name words (or its first or last four letters).
    """
    lp = [prepare(i, p) for i, p in left]
    rp = lp if right is left else [prepare(i, p) for i, p in right]  # one side against itself: prepared once
    freq: dict[str, int] = defaultdict(int)
    for rec in (*lp, *rp):
        for tok in set(rec.tokens):
            freq[tok] += 1
    rp_names = [r.sorted_name for r in rp]
    index: dict[str, list[int]] = defaultdict(list)
    for j, rec in enumerate(rp):
        for keys in _block_keys(rec, freq):
            for key in keys:
                index[key].append(j)
    for key, bucket in index.items():  # what each key contributes, worked out once
        if key[0] in "etp":  # same email, tax ID or phone: always scored (the first MAX_BLOCK)
            del bucket[MAX_BLOCK:]
        elif len(bucket) > MAX_BLOCK:  # too common to say anything
            bucket.clear()
    find = index.get
    results: list[Candidate] = []
    best_for_right: dict[str, float] = {}
    scored: list[tuple[float, _Prepared, _Prepared, tuple[str, ...]]] = []
    for rec in lp:
        seen: set[int] = set()
        strong: set[int] = set()
        strong_keys, keys = _block_keys(rec, freq)
        for key in strong_keys:
            found = find(key)
            if found:
                strong.update(found)
        for key in keys:
            found = find(key)
            if found:
                seen.update(found)
        if len(seen) > TOP_BY_NAME:  # one C call ranks the names; only the best few are scored in full
            ids = list(seen)
            ranked = process.extract(rec.sorted_name, itemgetter(*ids)(rp_names), scorer=fuzz.ratio,
                                     limit=TOP_BY_NAME, score_cutoff=55)
            seen = {ids[i] for _, _, i in ranked}
        seen |= strong
        best: tuple[float, _Prepared] | None = None
        second = 0.0
        for j in seen:
            other = rp[j]
            if same_side and other.id == rec.id:
                continue
            s = _score(rec, other)
            if best is None or s > best[0]:
                second = best[0] if best else 0.0
                best = (s, other)
            elif s > second:
                second = s
        if best is None or best[0] < REVIEW_AT:
            continue
        scored.append((best[0] - (5 if best[0] - second < 3 else 0), rec, best[1], score_pair(rec, best[1])[1]))
    for s, a, b, why in sorted(scored, key=lambda x: -x[0]):
        if b.id in best_for_right and s >= LINK_AT:
            decision = "review"  # the right record is already taken by a better match
        else:
            decision = "link" if s >= LINK_AT and may_link(a, b) else "review"
        if decision == "link":
            best_for_right[b.id] = s
        results.append(Candidate(a.id, b.id, round(s, 1), why, decision))
    return results


def dedupe(records: Sequence[tuple[str, Party]]) -> list[Candidate]:
    """Likely duplicates within one side: each pair once."""
    items = list(records)
    pairs = match(items, items, same_side=True)
    out, seen = [], set()
    for c in pairs:
        if c.left == c.right:
            continue
        key = tuple(sorted((c.left, c.right)))
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out
