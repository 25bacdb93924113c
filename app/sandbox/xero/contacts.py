"""Xero contacts: names unique among active contacts, balances, POST that matches by name."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from app.sandbox.base import Request, Response, route
from app.sandbox.xero.batch import XeroBatch
from app.sandbox.xero.shapes import (
    _EMAIL,
    ADDRESS_LIMITS,
    API,
    CONTACT_LIMITS,
    DUPLICATE,
    PHONE_TYPES,
    ZERO,
    ZERO_ID,
    Invalid,
    XeroResponse,
    _address,
    _phone_rec,
    money,
    msdate,
    not_found,
    s,
)


class XeroContacts(XeroBatch):
    """The Contacts endpoints."""

    # -- contacts -----------------------------------------------------------------------------
    def _named(self, tenant: dict[str, Any], name: str) -> list[dict[str, Any]]:
        """Active contacts called ``name`` (case and outer spaces ignored): archived ones free their name."""
        return [c for _, c in self.names.holders(tenant["tenantId"], {"contacts": tenant["contacts"]}, name,
                                                  counts=lambda c: c["ContactStatus"] == "ACTIVE")]

    def _active_clash(self, tenant: dict[str, Any], name: str, own_id: str | None) -> bool:
        return any(c["ContactID"] != own_id for c in self._named(tenant, name))

    def _apply_contact(self, tenant: dict[str, Any], el: dict[str, Any], existing: dict[str, Any] | None) -> dict:
        """Validate one element and store it (a new contact, or the changes to ``existing``)."""
        rec = dict(existing) if existing else {
            "ContactID": self.new_id("contact"), "ContactStatus": "ACTIVE", "Name": "", "FirstName": "",
            "LastName": "", "EmailAddress": "", "AccountNumber": "", "ContactNumber": "", "TaxNumber": "",
            "CompanyNumber": "", "DefaultCurrency": "",
            "ContactPersons": [], "IsSupplier": False,
        }
        if not existing:  # blank addresses and phones, unless the element sends its own (set below)
            if "Addresses" not in el:
                rec["Addresses"] = [_address("STREET", {}), _address("POBOX", {})]
            if "Phones" not in el:
                rec["Phones"] = [_phone_rec(t, {}) for t in PHONE_TYPES]
        errors: list[str] = []
        for fld, limit in CONTACT_LIMITS.items():
            if fld in el:
                value = s(el[fld])
                if len(value) > limit:
                    errors.append(f"{fld} must be {limit} characters or fewer.")
                rec[fld] = value
        if not rec["Name"] and (existing is None or "Name" in el):
            errors.append("The contact name must be specified.")
        if rec["EmailAddress"] and (not _EMAIL.match(rec["EmailAddress"]) or not rec["EmailAddress"].isascii()):
            errors.append("Email address must be valid.")
        if "DefaultCurrency" in el:
            code = s(el["DefaultCurrency"]).upper()
            if code and not re.fullmatch(r"[A-Z]{3}", code):
                errors.append("The currency code is not valid.")
            rec["DefaultCurrency"] = code
        if "ContactStatus" in el:
            status = s(el["ContactStatus"]).upper()
            if status not in ("ACTIVE", "ARCHIVED"):
                errors.append("ContactStatus must be ACTIVE or ARCHIVED.")
            rec["ContactStatus"] = status
        if "Addresses" in el:
            given = {s(a.get("AddressType")).upper(): a for a in el["Addresses"] or [] if isinstance(a, dict)}
            if set(given) - {"POBOX", "STREET"}:
                errors.append("AddressType must be POBOX or STREET.")
            for a in given.values():
                errors += [f"{f} must be {n} characters or fewer." for f, n in ADDRESS_LIMITS.items()
                           if len(s(a.get(f))) > n]
            rec["Addresses"] = [_address(t, given.get(t) or {}) for t in ("STREET", "POBOX")]  # arrays are replaced
        if "Phones" in el:
            given = {s(p.get("PhoneType")).upper(): p for p in el["Phones"] or [] if isinstance(p, dict)}
            if set(given) - {*PHONE_TYPES, "OFFICE"}:
                errors.append("PhoneType must be DEFAULT, DDI, MOBILE or FAX.")
            if any(len(s(p.get("PhoneNumber"))) > 50 for p in given.values()):
                errors.append("PhoneNumber must be 50 characters or fewer.")
            rec["Phones"] = [_phone_rec(t, given.get(t) or {}) for t in PHONE_TYPES]
        if "ContactPersons" in el:
            persons = [p for p in el["ContactPersons"] or [] if isinstance(p, dict)]
            if len(persons) > 5:
                errors.append("A contact can have at most 5 contact persons.")
            rec["ContactPersons"] = [{"FirstName": s(p.get("FirstName")), "LastName": s(p.get("LastName")),
                                      "EmailAddress": s(p.get("EmailAddress")),
                                      "IncludeInEmails": bool(p.get("IncludeInEmails"))} for p in persons[:5]]
        if rec["AccountNumber"] and any(c["AccountNumber"].casefold() == rec["AccountNumber"].casefold()
                                        and c["ContactID"] != rec["ContactID"] for c in tenant["contacts"].values()):
            errors.append("Account Number already exists. Please enter a different Account Number.")
        active = rec["ContactStatus"] == "ACTIVE"
        if rec["Name"] and active and self._active_clash(tenant, rec["Name"], rec["ContactID"]):
            errors.append(DUPLICATE.format(rec["Name"]))
        if errors:
            raise Invalid(*errors)
        self._touch(rec)
        tenant["contacts"][rec["ContactID"]] = rec
        self.names.note(tenant["tenantId"], {"contacts": tenant["contacts"]}, "contacts", rec["ContactID"])
        return rec

    def _balances(self, tenant: dict[str, Any]) -> dict[str, tuple[Decimal, Decimal]]:
        today, out = self.today(), {}
        for inv in tenant["invoices"].values():
            if inv["Type"] == "ACCREC" and inv["Status"] == "AUTHORISED":
                cid = inv["ContactID"]
                due = Decimal(inv["AmountDue"])
                owed, late = out.get(cid, (ZERO, ZERO))
                out[cid] = (owed + due, late + (due if inv["DueDate"] < today else ZERO))
        return out

    @staticmethod
    def _customers(tenant: dict[str, Any]) -> set[str]:
        """Contacts with sales invoices: Xero derives IsCustomer from the transactions."""
        return {i["ContactID"] for i in tenant["invoices"].values()
                if i["Type"] == "ACCREC" and i["Status"] != "DELETED"}

    def _contact_out(self, tenant: dict[str, Any], c: dict[str, Any],
                     balances: dict[str, tuple[Decimal, Decimal]] | None = None,
                     customers: set[str] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"ContactID": c["ContactID"], "ContactStatus": c["ContactStatus"], "Name": c["Name"]}
        for fld in ("FirstName", "LastName", "EmailAddress", "AccountNumber", "ContactNumber", "CompanyNumber",
                    "TaxNumber", "DefaultCurrency"):
            if c.get(fld):
                out[fld] = c[fld]
        out.update({
            "Addresses": [dict(a) for a in c["Addresses"]], "Phones": [dict(p) for p in c["Phones"]],
            "UpdatedDateUTC": msdate(int(c["_updated"] * 1000)), "ContactGroups": [],
            "IsSupplier": c["IsSupplier"],
            "IsCustomer": c["ContactID"] in (customers if customers is not None else self._customers(tenant)),
            "ContactPersons": [dict(p) for p in c["ContactPersons"]], "HasAttachments": False,
            "HasValidationErrors": False,
        })
        if c.get("MergedToContactID"):
            out["MergedToContactID"] = c["MergedToContactID"]
        if balances is not None:
            owed, late = balances.get(c["ContactID"], (ZERO, ZERO))
            out["Balances"] = {"AccountsReceivable": {"Outstanding": money(owed), "Overdue": money(late)},
                               "AccountsPayable": {"Outstanding": money(ZERO), "Overdue": money(ZERO)}}
        return out

    @staticmethod
    def _failed_contact(el: dict[str, Any], messages: list[str]) -> dict[str, Any]:
        return {**el, "ContactID": el.get("ContactID") or ZERO_ID, "StatusAttributeString": "ERROR",
                "HasValidationErrors": True, "ValidationErrors": [{"Message": m} for m in messages]}

    @route("GET", rf"(?i:{API}/Contacts)")
    def list_contacts(self, req: Request) -> Response:
        tenant = self._gate(req, "contacts")
        records = sorted(tenant["contacts"].values(), key=lambda c: c["Name"].casefold())
        if (req.arg("includeArchived") or "").lower() != "true":
            records = [c for c in records if c["ContactStatus"] == "ACTIVE"]
        ids = {i.strip().lower() for i in (req.arg("IDs") or "").split(",") if i.strip()}
        if ids:
            records = [c for c in records if c["ContactID"] in ids]
        balances = self._balances(tenant) if req.arg("page") is not None else None
        customers = self._customers(tenant)
        rows = [(c, self._contact_out(tenant, c, balances, customers)) for c in records]
        return self._list(req, rows, "Contacts",
                          search=("Name", "FirstName", "LastName", "ContactNumber", "EmailAddress"))

    @route("GET", rf"(?i:{API}/Contacts/(?P<id>[^/]+))")
    def get_contact(self, req: Request) -> Response:
        tenant = self._gate(req, "contacts")
        key = req.params["id"].lower()
        rec = tenant["contacts"].get(key) or next(
            (c for c in tenant["contacts"].values() if c["ContactNumber"] and c["ContactNumber"].lower() == key), None)
        if rec is None:
            raise not_found()
        return XeroResponse(200, self.envelope("Contacts", [self._contact_out(tenant, rec, self._balances(tenant))]))

    def _write_contact(self, tenant: dict[str, Any], el: dict[str, Any], *, create_only: bool) -> dict[str, Any]:
        existing = None
        cid = s(el.get("ContactID")).lower()
        if cid and not create_only:
            existing = tenant["contacts"].get(cid)
            if existing is None:
                raise Invalid("The document with the supplied id was not found for this endpoint.")
        elif not create_only and s(el.get("Name")):  # POST matches an active contact by name and updates it
            existing = next(iter(self._named(tenant, s(el.get("Name")))), None)
        rec = self._apply_contact(tenant, el, existing)
        return {**self._contact_out(tenant, rec), "StatusAttributeString": "OK"}

    @route("PUT", rf"(?i:{API}/Contacts)")
    def create_contacts(self, req: Request) -> Response:
        tenant = self._gate(req, "contacts")
        return self._idempotent(req, tenant, lambda: self._bulk(
            req, tenant, "Contacts", lambda el: self._write_contact(tenant, el, create_only=True),
            self._failed_contact))

    @route("POST", rf"(?i:{API}/Contacts)")
    def save_contacts(self, req: Request) -> Response:
        tenant = self._gate(req, "contacts")
        return self._idempotent(req, tenant, lambda: self._bulk(
            req, tenant, "Contacts", lambda el: self._write_contact(tenant, el, create_only=False),
            self._failed_contact))

    @route("POST", rf"(?i:{API}/Contacts/(?P<id>[0-9a-fA-F-]{{36}}))")
    def update_contact(self, req: Request) -> Response:
        tenant = self._gate(req, "contacts")
        cid = req.params["id"].lower()
        if cid not in tenant["contacts"]:
            raise not_found()

        def one(el: dict[str, Any]) -> dict[str, Any]:
            return self._write_contact(tenant, {**el, "ContactID": cid}, create_only=False)

        return self._idempotent(req, tenant, lambda: self._bulk(req, tenant, "Contacts", one, self._failed_contact))

