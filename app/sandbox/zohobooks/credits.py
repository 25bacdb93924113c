"""Zoho Books credit notes (``/creditnotes``) and crediting them to invoices.

``POST /creditnotes`` takes the invoices' line model and rounding (``customer_id``, ``date``,
``reference_number``, ``line_items``); it is ``open`` with its whole total as ``balance``, numbered
``CN-00001``... ``GET /creditnotes`` lists summaries as the other lists do (``customer_id``,
``reference_number``, ``last_modified_time``, ``filter_by=Status.Open|Closed``, paging);
``GET /creditnotes/{id}`` has the lines and ``invoices_credited``. ``POST /creditnotes/{id}/invoices``
with ``{"invoices": [{"invoice_id", "amount_applied"}]}`` credits sent (not draft, not void) invoices of the
same customer, up to the credit left and what each invoice owes; the invoice's ``credits_applied`` and ``balance`` move
(paid at zero), and the credit note is ``closed`` once nothing is left. Scopes ``ZohoBooks.creditnotes.*``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from app.sandbox.base import Request, Response, route
from app.sandbox.zohobooks.payments import ZohoBooksPayments
from app.sandbox.zohobooks.shapes import API, ZERO, dec, invalid, money, ok, s, zerr


class ZohoBooksCredits(ZohoBooksPayments):
    """The credit notes endpoints."""

    def _notes(self, org: str) -> dict[str, dict[str, Any]]:
        return self._books(org).setdefault("creditnotes", {})

    def _note(self, org: str, note_id: str) -> dict[str, Any]:
        rec = self._notes(org).get(note_id)
        if rec is None:
            raise zerr(404, 1002, "Credit note does not exist.")
        return rec

    def _note_out(self, org: str, n: dict[str, Any]) -> dict[str, Any]:
        customer = self._books(org)["contacts"].get(n["customer_id"]) or {}
        cur = self._currency(org, n["currency_id"])
        return {
            "creditnote_id": n["creditnote_id"], "creditnote_number": n["creditnote_number"],
            "status": n["status"], "reference_number": n["reference_number"], "date": n["date"],
            "customer_id": n["customer_id"], "customer_name": customer.get("contact_name", ""),
            "currency_id": n["currency_id"], "currency_code": cur["currency_code"],
            "line_items": [{"line_item_id": li["line_item_id"], "item_id": li["item_id"], "name": li["name"],
                            "description": li["description"], "rate": Decimal(li["rate"]),
                            "quantity": Decimal(li["quantity"]), "tax_id": li["tax_id"],
                            "item_total": Decimal(li["item_total"])} for li in n["line_items"]],
            "sub_total": Decimal(n["sub_total"]), "tax_total": Decimal(n["tax_total"]), "total": Decimal(n["total"]),
            "balance": Decimal(n["balance"]),
            "invoices_credited": [{"invoice_id": a["invoice_id"], "amount_applied": Decimal(a["amount_applied"]),
                                   "invoice_number": self._books(org)["invoices"][a["invoice_id"]]["invoice_number"]}
                                  for a in n["applied"]],
            "created_time": self.ts(n["_created"], org), "last_modified_time": self.ts(n["_lmt"], org),
        }

    @route("POST", API + r"/creditnotes")
    def create_credit_note(self, req: Request) -> Response:
        org = self._gate(req, "creditnotes")
        body = self._body(req)
        books = self._books(org)
        customer = books["contacts"].get(s(body.get("customer_id")))
        if customer is None or customer["contact_type"] != "customer":
            raise zerr(400, 2, "Invalid value passed for customer_id")
        now = self.now()
        rec: dict[str, Any] = {"creditnote_id": self.new_id(), "customer_id": customer["contact_id"],
                               "currency_id": customer["currency_id"], "date": s(body.get("date")) or self.today(org),
                               "reference_number": s(body.get("reference_number")).strip(), "status": "open",
                               "is_inclusive_tax": bool(body.get("is_inclusive_tax")), "_paid": "0", "applied": [],
                               "_created": now, "_lmt": now}
        if len(rec["reference_number"]) > 100:
            raise invalid("reference_number")
        rec["line_items"] = self._lines(org, body.get("line_items"), [])
        self._totals(org, rec)  # the invoices' rounding; _balance is the whole total
        rec["balance"] = rec.pop("_balance")
        books["numbers"]["creditnote"] = books["numbers"].get("creditnote", 0) + 1
        rec["creditnote_number"] = f"CN-{books['numbers']['creditnote']:05d}"
        self._notes(org)[rec["creditnote_id"]] = rec
        self.persist()
        return ok({"creditnote": self._note_out(org, rec)}, 201, "The credit note has been created.")

    @route("GET", API + r"/creditnotes")
    def list_credit_notes(self, req: Request) -> Response:
        """Summaries (no lines, no invoices credited), with the lists' paging, filters and sorting."""
        org = self._gate(req, "creditnotes")
        keep = ("creditnote_id", "creditnote_number", "status", "reference_number", "date", "customer_id",
                "customer_name", "currency_code", "total", "balance", "created_time",
                "last_modified_time")
        return self._list(
            req, org, list(self._notes(org).values()), key="creditnotes", id_key="creditnote_id",
            report="Credit Notes",
            texts={"creditnote_number": lambda n: n["creditnote_number"],
                   "reference_number": lambda n: n["reference_number"]},
            exact={"customer_id": lambda n: n["customer_id"], "date": lambda n: n["date"]},
            statuses={"Status.All": lambda n: True, "Status.Open": lambda n: n["status"] == "open",
                      "Status.Closed": lambda n: n["status"] == "closed"},
            default_filter="Status.All",
            sorts={"date": lambda n: n["date"], "created_time": lambda n: int(n["_created"]),
                   "last_modified_time": lambda n: int(n["_lmt"])},
            default_sort=("created_time", "D"),
            out=lambda n: {k: v for k, v in self._note_out(org, n).items() if k in keep})

    @route("GET", API + r"/creditnotes/(?P<id>\d+)")
    def get_credit_note(self, req: Request) -> Response:
        org = self._gate(req, "creditnotes")
        return ok({"creditnote": self._note_out(org, self._note(org, req.params["id"]))})

    @route("POST", API + r"/creditnotes/(?P<id>\d+)/invoices")
    def credit_invoices(self, req: Request) -> Response:
        org = self._gate(req, "creditnotes")
        note = self._note(org, req.params["id"])
        body = self._body(req)
        wanted = body.get("invoices")
        if not isinstance(wanted, list) or not wanted:
            raise invalid("invoices")
        if note["status"] != "open":
            raise zerr(400, 4, "Credits can be applied only from an open credit note.")
        plan, total = [], ZERO
        for app in wanted:
            inv = self._books(org)["invoices"].get(s(app.get("invoice_id"))) if isinstance(app, dict) else None
            if inv is None or inv["customer_id"] != note["customer_id"]:
                raise zerr(400, 2, "Invalid value passed for invoice_id")
            if inv["_state"] in ("draft", "void"):
                raise zerr(400, 4, f"Credits cannot be applied to {inv['_state']} invoices.")
            part = money(dec(app.get("amount_applied"), "amount_applied"))
            if part <= 0 or part > Decimal(inv["_balance"]):
                raise zerr(400, 4, "The amount applied to an invoice cannot exceed its balance.")
            plan.append((inv, part))
            total += part
        if total > Decimal(note["balance"]):
            raise zerr(400, 4, "The amount applied cannot exceed the credit note's balance.")
        now = self.now()
        for inv, part in plan:
            inv["_credited"] = str(Decimal(inv.get("_credited", "0")) + part)
            self._totals(org, inv)
            inv["_lmt"] = now
            note["applied"].append({"invoice_id": inv["invoice_id"], "amount_applied": str(part)})
        note["balance"] = str(Decimal(note["balance"]) - total)
        if Decimal(note["balance"]) == 0:
            note["status"] = "closed"
        note["_lmt"] = now
        self.persist()
        return ok({"apply_to_invoices": {"invoices": [{"invoice_id": inv["invoice_id"], "amount_applied": part}
                                                      for inv, part in plan]}},
                  200, "Credits have been applied to the invoice(s).")
