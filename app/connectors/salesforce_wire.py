"""Salesforce's wire format for the connector (``app.connectors.salesforce``): record ids (15 and 18
characters), times as SOQL literals and query parameters, SOQL itself, amounts as JSON numbers written
from Decimals, field values by their describe type, custom-field metadata, and the cursor it hands out."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from app.connectors.base import FieldInfo, cursor_fields, cursor_text
from app.connectors.errors import ValidationRejected
from app.domain.money import decimal_or_none as _dec
from app.domain.money import plain as _plain

OVERLAP = 5  # seconds re-read before the watermark; the cursor's `seen` map drops what we already have
TOOLING_TYPE = {"number": "Currency", "money": "Currency", "date": "Date", "boolean": "Checkbox"}

def to18(rid: str) -> str:
    """A 15-character ID -> its 18-character, case-insensitive form (what the API returns)."""
    if len(rid) != 15:
        return rid
    suffix = ""
    for chunk in range(3):
        flags = sum(1 << i for i, ch in enumerate(rid[chunk * 5:chunk * 5 + 5]) if "A" <= ch <= "Z")
        suffix += "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"[flags]
    return rid + suffix


def _epoch(text: str | None) -> float | None:
    """'2026-05-01T09:30:12.000+0000' (or Z, or +00:00) -> epoch seconds."""
    if not text:
        return None
    text = text.strip().replace("Z", "+00:00")
    text = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", text)
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def _ms(text: str | None) -> int | None:
    epoch = _epoch(text)
    return round(epoch * 1000) if epoch is not None else None


def _datetime(text: str | None) -> dt.datetime | None:
    epoch = _epoch(text)
    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC) if epoch is not None else None


def _literal(epoch: float) -> str:
    """A SOQL datetime literal (unquoted ISO 8601, whole seconds, UTC)."""
    return dt.datetime.fromtimestamp(math.floor(epoch), tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _param_time(epoch: float) -> str:
    return dt.datetime.fromtimestamp(math.floor(epoch), tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _soql(fields: Iterable[str], sobject: str, where: str | None = None, order: str | None = None) -> str:
    """SOQL text. Every value inside ``where`` went through _quote or _literal first."""
    parts = ["SELECT", ", ".join(fields), "FROM", sobject]
    if where:
        parts += ["WHERE", where]
    if order:
        parts += ["ORDER BY", order]
    return " ".join(parts)


def _quote(value: str) -> str:
    """A SOQL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(_plain(value))
    return value


def _mark(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return "\x00N" + format(_plain(obj), "f") + "\x00"
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


_MARKED = re.compile(r'"\\u0000N(-?[0-9.]+)\\u0000"')


def _dumps(obj: Any) -> bytes:
    """JSON with Decimals as exact numbers (Salesforce money fields are JSON numbers)."""
    return _MARKED.sub(r"\1", json.dumps(obj, default=_mark, ensure_ascii=False)).encode()


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    """A record as read -> flat provider properties (custom fields included, nested objects dropped)."""
    return {k: _jsonable(v) for k, v in row.items() if k != "attributes" and not isinstance(v, dict | list)}


def _api_name(name: str) -> str:
    """'crossledger_invoice_status' -> 'Crossledger_Invoice_Status__c'."""
    parts = [p for p in re.split(r"[^A-Za-z0-9]+", name) if p]
    base = "_".join(p[:1].upper() + p[1:] for p in parts)[:40].rstrip("_")
    if not base or not base[0].isalpha():
        base = "X_" + base
    return base + "__c"


class _Cursor:
    """Watermark (newest SystemModstamp seen), server time of the last read, getDeleted coverage."""

    def __init__(self, ts: float | None, now: float | None, dele: float | None, seen: dict[str, int] | None = None,
                 gone: dict[str, int] | None = None, fields: list[str] | None = None,
                 lines: dict[str, int] | None = None) -> None:
        self.ts = ts
        self.now = now
        self.dele = dele
        self.seen = seen or {}
        self.gone = gone or {}
        self.fields = fields or []
        self.lines = lines or {}

    @classmethod
    def parse(cls, text: str | None) -> _Cursor | None:
        raw = cursor_fields(text)
        if raw is None:
            return None
        return cls(raw.get("ts"), raw.get("now"), raw.get("del"), raw.get("seen"), raw.get("gone"),
                   raw.get("fields"), raw.get("lines"))

    def dump(self) -> str:
        return cursor_text(ts=self.ts, now=self.now, seen=self.seen, gone=self.gone, fields=self.fields,
                           lines=self.lines, **{"del": self.dele})

    @staticmethod
    def window(stamps: dict[str, int], since: float | None) -> dict[str, int]:
        """Keep what lies within the overlap of the watermark (older entries cannot come back)."""
        if since is None:
            return {}
        edge = (since - OVERLAP - 1) * 1000
        return {k: v for k, v in stamps.items() if v >= edge}


def _field_spec(info: FieldInfo) -> dict[str, Any]:
    """Our field -> Tooling API CustomField metadata (money as Currency: it follows the deal's currency)."""
    kind = TOOLING_TYPE.get(info.type, "Text")
    spec: dict[str, Any] = {"label": info.label[:40], "type": kind}
    if kind == "Text":
        spec["length"] = 255
    elif kind == "Currency":
        spec.update(precision=18, scale=2)
    return spec


def _typed(field: dict[str, Any], value: Any, *, creating: bool) -> Any:
    """A value for a field of this describe type; '' clears (null)."""
    name, ftype = field["name"], field.get("type")
    if value is None or value == "":
        if not field.get("nillable", True) and ftype != "boolean" and not creating:
            raise ValidationRejected(f"Salesforce needs a value for '{name}'; it cannot be cleared.", field=name,
                                     provider="salesforce")
        return None
    if ftype in ("currency", "double", "percent"):
        number = _dec(value)
        if number is None or isinstance(value, bool):
            raise ValidationRejected(f"'{value}' is not a number.", field=name, provider="salesforce")
        return number
    if ftype in ("int", "long"):
        number = _dec(value)
        if number is None or number != number.to_integral_value():
            raise ValidationRejected(f"'{value}' is not a whole number.", field=name, provider="salesforce")
        return int(number)
    if ftype == "boolean":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no"):
            return False
        raise ValidationRejected(f"'{value}' is not true or false.", field=name, provider="salesforce")
    if ftype == "date":
        if isinstance(value, dt.datetime):
            return value.date().isoformat()
        if isinstance(value, dt.date):
            return value.isoformat()
        try:
            return dt.date.fromisoformat(str(value)[:10]).isoformat()
        except ValueError as exc:
            raise ValidationRejected(f"'{value}' is not a date.", field=name, provider="salesforce") from exc
    if ftype == "datetime":
        if isinstance(value, dt.datetime):
            return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
        return str(value)
    return str(value)
