"""QuickBooks Online's wire format: JSON whose amounts are numbers written from Decimals, query-language
literals and times. (Its rounding, half up to the cent, is ``app.domain.money.money``.) Shared by the connector
(``app.connectors.quickbooks``) and its invoices and payments (``app.connectors.quickbooks_invoices``)."""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import uuid
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

from app.connectors.errors import NotFound, StaleVersion

PAGE = 1000  # MAXRESULTS max
NAMESPACE = uuid.UUID("2f1b0c4e-5d1a-4f43-9a51-7c3b1e0e9b12")


# -- JSON with Decimal numbers ----------------------------------------------------------------
def json_dumps(obj: Any) -> str:
    """JSON text where Decimals are numbers (``150.00``), never floats or strings.

    One pass swaps each Decimal for a marker string no text can contain (a fresh nonce), the C
    encoder writes the whole document once, and the markers become the numbers' own digits.
    """
    nonce = secrets.token_hex(8)
    numbers: list[str] = []

    def prepare(value: Any) -> Any:
        kind = type(value)
        if kind is str or value is None or kind is bool:
            return value
        if kind is dict:
            return {(k if type(k) is str else str(k)): prepare(v) for k, v in value.items()}
        if kind is Decimal:
            if not value.is_finite():
                raise ValueError(f"not a JSON number: {value}")
            numbers.append(format(value, "f"))
            return f"\x00{nonce}:{len(numbers) - 1}"
        if kind is list or kind is tuple:
            return [prepare(v) for v in value]
        if isinstance(value, float):
            raise TypeError("floats are not used for money; pass a Decimal")
        if isinstance(value, str):  # a str subclass (an enum's value) is written as its text
            return value
        if isinstance(value, int):
            return int(value)
        if isinstance(value, Decimal | dict | list | tuple):
            return prepare(Decimal(value) if isinstance(value, Decimal) else
                           dict(value) if isinstance(value, dict) else list(value))
        raise TypeError(f"cannot encode {type(value).__name__} as JSON")

    text = json.dumps(prepare(obj), ensure_ascii=False, separators=(",", ":"))
    if not numbers:
        return text
    return re.sub(f'"\\\\u0000{nonce}:(\\d+)"', lambda m: numbers[int(m[1])], text)


def quote(value: str) -> str:
    """A query string literal: single quotes, an apostrophe escaped with a backslash (Intuit's "Data queries")."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def iso_utc(epoch: float) -> str:
    return dt.datetime.fromtimestamp(int(epoch), dt.UTC).isoformat()


def parse_ts(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None



def _clean_name(name: str, limit: int) -> str:
    """QBO refuses ``:``, tabs and new lines in names."""
    return re.sub(r"\s+", " ", name.replace(":", " -")).strip()[:limit]


def _chunks(seq: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(seq), size):
        yield seq[start:start + size]


# -- a record about to be changed ---------------------------------------------------------------
def found(record: dict[str, Any] | None, kind: str, record_id: str) -> dict[str, Any]:
    """``record`` as read by id, or NotFound: "Invoice 130 is not in QuickBooks."."""
    if record is None:
        raise NotFound(f"{kind} {record_id} is not in QuickBooks.", provider="quickbooks")
    return record


def unchanged_since(record: dict[str, Any], version: str | None, kind: str) -> None:
    """StaleVersion (QBO's 5010) when ``record`` is no longer the version a change was based on."""
    if version and str(record.get("SyncToken")) != str(version):
        raise StaleVersion(f"The {kind.lower()} changed in QuickBooks since it was read.", provider="quickbooks",
                           code="5010")
