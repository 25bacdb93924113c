"""Zoho Books' wire format: amounts and texts as it writes them, its times (``2026-05-12T03:10:11-0700``),
the invoice statuses it reports, the cursor the connector hands out, and how writes go one at a time
(Zoho Books has no batch). Shared by the connector
(``app.connectors.zohobooks``), its invoices and payments (``app.connectors.zohobooks_invoices``) and its
credit notes (``app.connectors.ledger_fates``)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import zlib
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from app.connectors.base import WriteResult
from app.connectors.errors import AuthExpired, ConnectorError, RateLimited, StaleVersion, Unauthorized
from app.domain.models import InvoiceStatus

CACHE_MAX = 20000  # contact details kept by last_modified_time, so our own writes are not read back
STATUS: dict[str, InvoiceStatus] = {
    "draft": "draft", "pending_approval": "draft", "approved": "draft", "sent": "awaiting_payment",
    "viewed": "awaiting_payment", "unpaid": "awaiting_payment", "overdue": "overdue",
    "partially_paid": "partly_paid", "paid": "paid", "void": "void"}
_PCT = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*%\s*$")



def parse_ts(value: str | None) -> dt.datetime | None:
    """``2026-05-12T03:10:11-0700`` (also with a colon in the offset) -> aware datetime."""
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        try:
            return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S%z")
        except ValueError:
            return None


def format_ts(epoch: float) -> str:
    return dt.datetime.fromtimestamp(int(epoch), dt.UTC).strftime("%Y-%m-%dT%H:%M:%S%z")


def _epoch(value: str | None) -> float | None:
    parsed = parse_ts(value)
    return parsed.timestamp() if parsed else None


def _pack_ids(ids: set[str]) -> str:
    return base64.b64encode(zlib.compress("\n".join(sorted(ids)).encode(), 9)).decode()


def _unpack_ids(text: str | None) -> set[str]:
    if not text:
        return set()
    raw = zlib.decompress(base64.b64decode(text)).decode()
    return set(raw.split("\n")) if raw else set()


class _Cursor:
    """Opaque cursor: the server time a read started, plus (contacts) the known ids and last sweep."""

    def __init__(self, since: float | None = None, ids: set[str] | None = None, sweep: float | None = None):
        self.since, self.ids, self.sweep = since, ids or set(), sweep

    @classmethod
    def load(cls, text: str | None) -> _Cursor | None:
        if not text:
            return None
        try:
            data = json.loads(text)
            return cls(float(data["since"]), _unpack_ids(data.get("ids")), data.get("sweep"))
        except (ValueError, KeyError, TypeError, zlib.error):
            return None  # an unreadable cursor means a full read

    def dump(self, with_ids: bool) -> str:
        data: dict[str, Any] = {"v": 1, "since": self.since, "sweep": self.sweep}
        if with_ids:
            data["ids"] = _pack_ids(self.ids)
        return json.dumps(data)


class _Keyed(Protocol):
    @property
    def key(self) -> str: ...


W = TypeVar("W", bound=_Keyed)


def one_by_one(writes: Sequence[W], write: Callable[[W], WriteResult]) -> list[WriteResult]:
    """Each write sent on its own. A record refused is that record's error; once Zoho Books says to slow
    down for longer than a run waits, the writes left are told the same without being sent; a lost
    sign-in stops them all."""
    results: list[WriteResult] = []
    stop: RateLimited | None = None
    for w in writes:
        if stop is not None:
            results.append(WriteResult(w.key, error=stop))
            continue
        try:
            results.append(write(w))
        except RateLimited as exc:
            stop = exc
            results.append(WriteResult(w.key, error=exc))
        except (AuthExpired, Unauthorized):
            raise
        except ConnectorError as exc:
            results.append(WriteResult(w.key, error=exc))
    return results


def unchanged_since(record: dict[str, Any], version: str | None, kind: str) -> None:
    """StaleVersion when ``record`` is no longer the version (its last_modified_time) a change was based on."""
    if version and str(record.get("last_modified_time")) != str(version):
        raise StaleVersion(f"The {kind} changed in Zoho Books since it was read.", provider="zohobooks")
