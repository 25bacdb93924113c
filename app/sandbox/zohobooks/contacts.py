"""Zoho Books contacts and contact persons: unique names, summaries in lists, details by id."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from app.sandbox.base import Request, Response, route
from app.sandbox.zohobooks.listing import ZohoBooksListing
from app.sandbox.zohobooks.shapes import _EMAIL, API, ZERO, _address, invalid, money, ok, s, zerr

_NOTHING_OWED = (money(ZERO), money(ZERO))  # a contact with no open invoice or unused credit


class ZohoBooksContacts(ZohoBooksListing):
    """The contacts endpoints."""

    # -- contacts ---------------------------------------------------------------------------
    def _find_contact(self, org: str, name: str) -> dict[str, Any]:
        return next(c for c in self._books(org)["contacts"].values() if c["contact_name"] == name)

    def _contact(self, org: str, contact_id: str) -> dict[str, Any]:
        rec = self._books(org)["contacts"].get(contact_id)
        if rec is None:
            raise zerr(404, 1002, "Contact does not exist.")
        return rec

    def _name_taken(self, org: str, name: str, own_id: str) -> bool:
        """Whether another contact already has ``name`` (case ignored): a look-up in the name index."""
        return bool(self.names.holders(org, {"contacts": self._books(org)["contacts"]}, name,
                                       skip=("contacts", own_id)))

    def _store_contact(self, org: str, rec: dict[str, Any]) -> None:
        contacts = self._books(org)["contacts"]
        contacts[rec["contact_id"]] = rec
        self.names.note(org, {"contacts": contacts}, "contacts", rec["contact_id"])

    def _contact_from(self, org: str, body: dict[str, Any], existing: dict[str, Any] | None) -> dict[str, Any]:
        """Validate a create/update body and return the stored contact (not yet saved)."""
        now = self.now()
        rec: dict[str, Any] = dict(existing) if existing else {
            "contact_id": self.new_id(), "contact_type": "customer", "customer_sub_type": "business",
            "status": "active", "company_name": "", "contact_number": "", "payment_terms": 0,
            "payment_terms_label": "Due on Receipt", "website": "", "notes": "", "vat_reg_no": "",
            "tax_reg_no": "", "gst_no": "", "language_code": "en", "billing_address": _address({}),
            "shipping_address": _address({}), "contact_persons": [], "_created": now,
            "currency_id": self._base_currency(org)["currency_id"],
        }
        if existing is None or "contact_name" in body:
            name = s(body.get("contact_name")).strip()
            if not name or len(name) > 200:
                raise invalid("contact_name")
            if self._name_taken(org, name, rec["contact_id"]):
                raise zerr(400, 1001, f"Contact name {name} already exists")
            rec["contact_name"] = name
        for field, limit in (("company_name", 200), ("contact_number", 100), ("website", 200), ("notes", 2000),
                             ("vat_reg_no", 30), ("tax_reg_no", 30), ("gst_no", 15), ("payment_terms_label", 100),
                             ("language_code", 10)):
            if field in body:
                value = s(body[field]).strip()
                if len(value) > limit:
                    raise invalid(field)
                rec[field] = value
        if "contact_type" in body:
            if body["contact_type"] not in ("customer", "vendor"):
                raise invalid("contact_type")
            rec["contact_type"] = body["contact_type"]
        if "customer_sub_type" in body:
            if body["customer_sub_type"] not in ("business", "individual"):
                raise invalid("customer_sub_type")
            rec["customer_sub_type"] = body["customer_sub_type"]
        if "payment_terms" in body:
            if not isinstance(body["payment_terms"], int) or body["payment_terms"] < 0:
                raise invalid("payment_terms")
            rec["payment_terms"] = body["payment_terms"]
        if body.get("currency_id") not in (None, ""):
            cur = self._currency(org, body["currency_id"])
            if existing and cur["currency_id"] != existing["currency_id"] and self._has_transactions(org, rec):
                raise zerr(400, 4, "Currency cannot be changed for a contact that has transactions.")
            rec["currency_id"] = cur["currency_id"]
        for kind in ("billing_address", "shipping_address"):
            if kind in body:
                if not isinstance(body[kind], dict):
                    raise invalid(kind)
                rec[kind] = _address(body[kind])
        if "contact_persons" in body:
            rec["contact_persons"] = self._persons(body["contact_persons"], rec["contact_persons"])
        rec["_lmt"] = now
        return rec

    def _persons(self, given: Any, current: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The new complete list: ids keep (and modify) a person, no id adds one, left out removes."""
        if not isinstance(given, list):
            raise invalid("contact_persons")
        known = {p["contact_person_id"]: p for p in current}
        out = []
        for raw in given:
            if not isinstance(raw, dict):
                raise invalid("contact_persons")
            person = dict(known.get(s(raw.get("contact_person_id")), {})) or {
                "contact_person_id": self.new_id(), "salutation": "", "first_name": "", "last_name": "",
                "email": "", "phone": "", "mobile": "", "designation": "", "department": "",
                "is_primary_contact": False, "enable_portal": False}
            for field in ("salutation", "first_name", "last_name", "email", "phone", "mobile", "designation",
                          "department"):
                if field in raw:
                    person[field] = s(raw[field]).strip()
            if person["email"] and not _EMAIL.match(person["email"]):
                raise invalid("email")
            for flag in ("is_primary_contact", "enable_portal"):
                if flag in raw:
                    person[flag] = bool(raw[flag])
            out.append(person)
        primaries = [p for p in out if p["is_primary_contact"]]
        for p in out:
            p["is_primary_contact"] = False
        if out:
            (primaries or out)[0]["is_primary_contact"] = True
        return out

    def _has_transactions(self, org: str, contact: dict[str, Any]) -> bool:
        return any(i["customer_id"] == contact["contact_id"] for i in self._books(org)["invoices"].values())

    def _receivables(self, org: str) -> dict[Any, tuple[Decimal, Decimal]]:
        """Each customer's outstanding balance and unused credits, from one pass over the books."""
        books = self._books(org)
        owed: dict[Any, Decimal] = {}
        credit: dict[Any, Decimal] = {}
        for i in books["invoices"].values():
            if i["_state"] != "draft" and i["_state"] != "void":
                owed[i["customer_id"]] = owed.get(i["customer_id"], ZERO) + Decimal(i["_balance"])
        for p in books["payments"].values():
            credit[p["customer_id"]] = credit.get(p["customer_id"], ZERO) + Decimal(p["unused_amount"])
        return {cid: (money(owed.get(cid, ZERO)), money(credit.get(cid, ZERO))) for cid in owed.keys() | credit.keys()}

    def _contact_summary(self, org: str, c: dict[str, Any],
                         balances: dict[Any, tuple[Decimal, Decimal]] | None = None) -> dict[str, Any]:
        """``balances``: ``_receivables(org)`` when the caller has it already (a page of contacts)."""
        primary = next((p for p in c["contact_persons"] if p["is_primary_contact"]), {})
        cur = self._currency(org, c["currency_id"])
        owed, credit = (self._receivables(org) if balances is None else balances).get(c["contact_id"], _NOTHING_OWED)
        return {
            "contact_id": c["contact_id"], "contact_name": c["contact_name"], "customer_name": c["contact_name"],
            "company_name": c["company_name"], "contact_type": c["contact_type"],
            "customer_sub_type": c["customer_sub_type"], "status": c["status"],
            "payment_terms": c["payment_terms"], "payment_terms_label": c["payment_terms_label"],
            "currency_id": c["currency_id"], "currency_code": cur["currency_code"],
            "outstanding_receivable_amount": owed, "unused_credits_receivable_amount": credit,
            "first_name": primary.get("first_name", ""), "last_name": primary.get("last_name", ""),
            "email": primary.get("email", ""), "phone": primary.get("phone", ""),
            "mobile": primary.get("mobile", ""),
            "created_time": self.ts(c["_created"], org), "last_modified_time": self.ts(c["_lmt"], org),
        }

    def _contact_detail(self, org: str, c: dict[str, Any]) -> dict[str, Any]:
        return {
            **self._contact_summary(org, c),
            "contact_number": c["contact_number"], "website": c["website"], "notes": c["notes"],
            "language_code": c["language_code"], "vat_reg_no": c["vat_reg_no"], "tax_reg_no": c["tax_reg_no"],
            "gst_no": c["gst_no"], "billing_address": dict(c["billing_address"]),
            "shipping_address": dict(c["shipping_address"]),
            "contact_persons": [dict(p) for p in c["contact_persons"]],
        }

    @route("GET", API + r"/contacts")
    def list_contacts(self, req: Request) -> Response:
        org = self._gate(req, "contacts")
        balances = self._receivables(org)  # once for the whole list, not once a contact
        return self._list(
            req, org, list(self._books(org)["contacts"].values()), key="contacts", id_key="contact_id",
            report="Contacts",
            texts={
                "contact_name": lambda c: c["contact_name"], "company_name": lambda c: c["company_name"],
                "email": lambda c: [p["email"] for p in c["contact_persons"]],
                "phone": lambda c: [p["phone"] for p in c["contact_persons"]] + [p["mobile"] for p in
                                                                                  c["contact_persons"]],
                "first_name": lambda c: [p["first_name"] for p in c["contact_persons"] if p["is_primary_contact"]],
                "last_name": lambda c: [p["last_name"] for p in c["contact_persons"] if p["is_primary_contact"]],
                "address": lambda c: [c["billing_address"]["address"], c["shipping_address"]["address"]],
            },
            exact={"contact_type": lambda c: c["contact_type"]},
            statuses={"Status.All": lambda c: True, "Status.Active": lambda c: c["status"] == "active",
                      "Status.Inactive": lambda c: c["status"] == "inactive",
                      "Status.Customers": lambda c: c["contact_type"] == "customer"},
            default_filter="Status.All",
            sorts={"contact_name": lambda c: c["contact_name"].casefold(),
                   "company_name": lambda c: c["company_name"].casefold(),
                   "first_name": lambda c: self._contact_summary(org, c, balances)["first_name"].casefold(),
                   "last_name": lambda c: self._contact_summary(org, c, balances)["last_name"].casefold(),
                   "email": lambda c: self._contact_summary(org, c, balances)["email"].casefold(),
                   "outstanding_receivable_amount": lambda c: balances.get(c["contact_id"], _NOTHING_OWED)[0],
                   "created_time": lambda c: int(c["_created"]), "last_modified_time": lambda c: int(c["_lmt"])},
            default_sort=("contact_name", "A"), out=lambda c: self._contact_summary(org, c, balances))

    @route("POST", API + r"/contacts")
    def create_contact(self, req: Request) -> Response:
        org = self._gate(req, "contacts")
        rec = self._contact_from(org, self._body(req), None)
        self._store_contact(org, rec)
        self.persist()
        return ok({"contact": self._contact_detail(org, rec)}, 201, "The contact has been added.")

    @route("GET", API + r"/contacts/(?P<id>\d+)")
    def get_contact(self, req: Request) -> Response:
        org = self._gate(req, "contacts")
        return ok({"contact": self._contact_detail(org, self._contact(org, req.params["id"]))})

    @route("PUT", API + r"/contacts/(?P<id>\d+)")
    def update_contact(self, req: Request) -> Response:
        org = self._gate(req, "contacts")
        current = self._contact(org, req.params["id"])
        rec = self._contact_from(org, self._body(req), current)
        self._store_contact(org, rec)
        self.persist()
        return ok({"contact": self._contact_detail(org, rec)}, 200, "Contact has been updated successfully")

    @route("DELETE", API + r"/contacts/(?P<id>\d+)")
    def delete_contact(self, req: Request) -> Response:
        org = self._gate(req, "contacts")
        rec = self._contact(org, req.params["id"])
        if self._has_transactions(org, rec):
            raise zerr(400, 4, "The contact has transactions associated with it and cannot be deleted. "
                               "Mark it as inactive instead.")
        del self._books(org)["contacts"][rec["contact_id"]]
        self.persist()
        return ok({}, 200, "The contact has been deleted.")

    @route("POST", API + r"/contacts/(?P<id>\d+)/(?P<status>active|inactive)")
    def contact_status(self, req: Request) -> Response:
        org = self._gate(req, "contacts")
        rec = self._contact(org, req.params["id"])
        rec["status"], rec["_lmt"] = req.params["status"], self.now()
        self.persist()
        word = "active" if req.params["status"] == "active" else "inactive"
        return ok({}, 200, f"The contact has been marked as {word}.")

