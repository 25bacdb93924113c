"""The JSON forms the store keeps of domain records (mirror rows, journal payloads, migration rows).

One place for them: the sync, the migration, the reconciliation and the wizards read and write the
same shapes, so a customer or a deal saved by one is read back the same way by the others.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from app.domain.models import PARTY_FIELDS, Deal, Invoice, LineItem, Party
from app.domain.text import mend_broken


def party_data(party: Party, raw_name: str | None = None) -> dict[str, Any]:
    """A customer's fields as the mirror keeps them (with the name exactly as the ledger shows it)."""
    return {**party.fields(), "kind": party.kind, "currency": party.currency, "raw_name": raw_name}


_PARTY_REST = tuple(k for k in (*PARTY_FIELDS, "currency") if k != "name")


def party_from(data: dict[str, Any]) -> Party:
    """The customer a :func:`party_data` row describes."""
    return Party(data.get("kind") or "company", data.get("name") or "", **{k: data.get(k) for k in _PARTY_REST})


def jsonable(value: Any) -> Any:
    """``value`` with anything JSON cannot hold (dates, decimals, tuples) turned into strings and lists."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def text_value(value: Any) -> str | None:
    """A field's value as the run's history keeps it: text, with any broken character mended."""
    return None if value is None else mend_broken(str(value))


def deal_to_json(deal: Deal) -> dict[str, Any]:
    return {
        "name": deal.name, "won": deal.won, "currency": deal.currency,
        "amount": str(deal.amount) if deal.amount is not None else None,
        "close_date": deal.close_date.isoformat() if deal.close_date else None,
        "company_id": deal.company_id, "contact_ids": list(deal.contact_ids),
        "lines": [{"description": li.description, "quantity": str(li.quantity), "unit_price": str(li.unit_price),
                   "discount_percent": str(li.discount_percent), "sku": li.sku, "product_name": li.product_name,
                   "tax_code": li.tax_code} for li in deal.line_items],
        "archived": deal.archived,
    }


def deal_from_json(deal_id: str, d: dict[str, Any]) -> Deal:
    return Deal(
        id=deal_id, name=d.get("name") or "", won=bool(d.get("won")), currency=d.get("currency") or "",
        amount=Decimal(d["amount"]) if d.get("amount") else None,
        close_date=dt.date.fromisoformat(d["close_date"]) if d.get("close_date") else None,
        company_id=d.get("company_id"), contact_ids=tuple(d.get("contact_ids") or ()),
        line_items=tuple(LineItem(li["description"], Decimal(li["quantity"]), Decimal(li["unit_price"]),
                                  Decimal(li.get("discount_percent") or 0), li.get("sku"), li.get("product_name"),
                                  li.get("tax_code")) for li in d.get("lines", [])),
        archived=bool(d.get("archived")))


def invoice_json(inv: Invoice) -> dict[str, Any]:
    return {"customer_id": inv.customer_id, "currency": inv.currency, "reference": inv.reference,
            "number": inv.number, "status": inv.status,
            "total": str(inv.total) if inv.total is not None else None,
            "amount_paid": str(inv.amount_paid) if inv.amount_paid is not None else None,
            "balance": str(inv.balance) if inv.balance is not None else None,
            "issue_date": inv.issue_date.isoformat() if inv.issue_date else None,
            "due_date": inv.due_date.isoformat() if inv.due_date else None, "web_url": inv.web_url}


def iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def naive_utc(value: dt.datetime | None) -> dt.datetime | None:
    """A time as the store keeps it: naive UTC."""
    if value is None:
        return None
    return value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value


def parse_iso(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None
