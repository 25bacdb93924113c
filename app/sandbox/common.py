"""What the ledger imitations truly share: JSON with exact numbers, half-up rounding, a folded-name
index, and slicing a list into pages.

Written from the providers' documentation, not from the connectors: a sandbox that borrowed the
product's encoder or arithmetic would agree with the product's bugs instead of catching them.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from app.sandbox.base import Response

CENT = Decimal("0.01")


# -- JSON with exact numbers ------------------------------------------------------------------------
# The three ledgers send amounts as JSON numbers ("150.00", not "150" or 150.0000001). The standard
# encoder cannot write a Decimal as a number, so each Decimal is first written as a tagged string and
# the tag (and its quotes) removed afterwards. The tag holds control characters and a random part, so
# no text a user stored can be mistaken for it.
_TAG = f"\x02{secrets.token_hex(4)}\x03"
_ESCAPED_TAG = json.dumps(_TAG)[1:-1]
_UNTAG = re.compile('"' + re.escape(_ESCAPED_TAG) + r'(-?[0-9]+(?:\.[0-9]+)?)"')


def _number(value: Any) -> str:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} is not a number JSON can carry")
        return _TAG + format(value, "f")
    raise TypeError(f"{type(value).__name__} cannot go into a provider's JSON")


def dumps(body: Any) -> str:
    """Compact JSON text in which every Decimal is a number written digit for digit."""
    tagged = False

    def number(value: Any) -> str:
        nonlocal tagged
        tagged = True
        return _number(value)

    text = json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=number)
    return _UNTAG.sub(r"\1", text) if tagged else text  # no Decimal in it: no tag to take out


def loads(data: bytes | str) -> Any:
    """JSON whose fractional numbers are read as Decimals (money is never a float here)."""
    return json.loads(data, parse_float=Decimal)


class ExactJsonResponse(Response):
    """A response whose dict or list body goes out with Decimals as JSON numbers."""

    __slots__ = ()

    def encode(self) -> bytes:
        if isinstance(self.body, dict | list):
            return dumps(self.body).encode()
        return Response.encode(self)



# -- time zones -----------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=32)
def zone(name: str, fallback: dt.tzinfo = dt.UTC) -> dt.tzinfo:
    """A time zone by name, looked up once (every timestamp of every answer is written in one);
    ``fallback`` where there is no time zone database (a frozen build)."""
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo(name)
    except Exception:  # noqa: BLE001 - no tz database, or an unknown name
        return fallback

# -- rounding -----------------------------------------------------------------------------------------
def half_up(value: Decimal, places: Decimal = CENT) -> Decimal:
    """Rounded to ``places`` with halves away from zero, as all three ledgers document their cents."""
    return value.quantize(places, rounding=ROUND_HALF_UP)


# -- a folded-name index ------------------------------------------------------------------------------
def fold(name: Any) -> str:
    """How the ledgers compare names for uniqueness: outer spaces and case ignored."""
    return str(name or "").strip().casefold()


@dataclass(slots=True)
class _Scope:
    lists: tuple[dict[str, Any], ...]  # the record collections watched, by identity
    sizes: tuple[int, ...]
    keys: dict[str, set[tuple[int, str]]]  # folded name -> (list number, record id)
    held: set[tuple[int, str]]


class NameIndex:
    """Folded name -> the records that hold it, per company (or tenant, or organisation).

    A name check is a dictionary look-up instead of a scan of every record. The index is kept in
    step by ``note`` after each store; entries are checked against the records on every look-up, so
    a rename or a record changed behind the index's back never makes a false clash; and the index is
    rebuilt whenever a watched collection was replaced (state loaded, seeded again) or changed size
    without ``note`` being told (a record added or removed some other way).
    """

    def __init__(self, name_of: Callable[[dict[str, Any]], Any]) -> None:
        self._name_of = name_of
        self._scopes: dict[str, _Scope] = {}

    def _scope(self, scope: str, lists: tuple[dict[str, Any], ...]) -> _Scope:
        sizes = tuple(len(records) for records in lists)
        found = self._scopes.get(scope)
        if found is not None and found.sizes == sizes and all(
                a is b for a, b in zip(found.lists, lists, strict=True)):
            return found
        keys: dict[str, set[tuple[int, str]]] = {}
        for n, records in enumerate(lists):
            for rec_id, rec in records.items():
                keys.setdefault(fold(self._name_of(rec)), set()).add((n, rec_id))
        built = self._scopes[scope] = _Scope(lists, sizes, keys, {e for held in keys.values() for e in held})
        return built

    def holders(self, scope: str, lists: Mapping[str, dict[str, Any]], name: Any, *,
                skip: tuple[str, str] | None = None,
                counts: Callable[[dict[str, Any]], bool] | None = None) -> list[tuple[str, dict[str, Any]]]:
        """(list label, record) of every record in ``lists`` whose name folds as ``name`` does.

        ``skip`` is the (label, id) of the record being written (it never clashes with itself);
        ``counts`` leaves out records that do not hold their name (an archived contact, say)."""
        labels = list(lists)
        found = self._scope(scope, tuple(lists.values()))
        key = fold(name)
        out = []
        for n, rec_id in sorted(found.keys.get(key, ())):
            if skip == (labels[n], rec_id):
                continue
            rec = found.lists[n].get(rec_id)
            if rec is None or fold(self._name_of(rec)) != key or (counts is not None and not counts(rec)):
                continue
            out.append((labels[n], rec))
        return out

    def note(self, scope: str, lists: Mapping[str, dict[str, Any]], label: str, rec_id: str) -> None:
        """The record ``rec_id`` in ``lists[label]`` was just stored (created, renamed or changed)."""
        found = self._scopes.get(scope)
        watched = tuple(lists.values())
        if found is None or not all(a is b for a, b in zip(found.lists, watched, strict=True)):
            return  # built on the next look-up, this record included
        n = list(lists).index(label)
        new = (n, rec_id) not in found.held
        expected = tuple(size + (1 if new and i == n else 0) for i, size in enumerate(found.sizes))
        if tuple(len(records) for records in watched) != expected:
            del self._scopes[scope]  # something else changed the lists meanwhile: rebuild on the next look-up
            return
        found.sizes = expected
        found.held.add((n, rec_id))
        found.keys.setdefault(fold(self._name_of(watched[n][rec_id])), set()).add((n, rec_id))


# -- pages ----------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Page:
    rows: list[Any]
    total: int  # rows before slicing
    more: bool  # rows remain after this page

    def count(self, size: int) -> int:
        """How many pages of ``size`` the whole list makes."""
        return -(-self.total // size)


def page_at(rows: Iterable[Any], offset: int, size: int) -> Page:
    """The ``size`` rows from 0-based ``offset``."""
    everything = list(rows)
    return Page(everything[offset:offset + size], len(everything), offset + size < len(everything))


def page_number(rows: Iterable[Any], page: int, size: int) -> Page:
    """Page ``page`` (1-based) of ``size`` rows."""
    return page_at(rows, (page - 1) * size, size)
