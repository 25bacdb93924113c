"""QBO names: customers (DisplayName unique across customers, vendors and employees) and items."""

from __future__ import annotations

from typing import Any

from app.sandbox.quickbooks.faults import QboFault, business, dec, invalid_ref, missing, s, too_long, unsupported
from app.sandbox.quickbooks.oauth import QboOAuth
from app.sandbox.quickbooks.schema import _EMAIL, ADDRESS_FIELDS, CURRENCIES, NAME_HOLDERS, TRANSACTIONS


class QboCustomers(QboOAuth):
    """Customer and item rules."""

    # -- customers ------------------------------------------------------------------------------
    def _index_name(self, co: dict[str, Any], entity: str, rec: dict[str, Any]) -> None:
        """Keep the DisplayName index in step after ``rec`` was stored (a no-op for other entities)."""
        if entity in NAME_HOLDERS:
            self.names.note(co["realm"], {e: co["entities"][e] for e in NAME_HOLDERS}, entity, rec["Id"])

    def _name_holder(self, co: dict[str, Any], name: str, own: tuple[str, str] | None) -> tuple[str, str] | None:
        """The customer, vendor or employee (other than ``own``) whose DisplayName is ``name``, trimmed and
        case ignored."""
        found = self.names.holders(co["realm"], {e: co["entities"][e] for e in NAME_HOLDERS}, name, skip=own)
        return (found[0][0], found[0][1]["Id"]) if found else None

    def _check_name_free(self, co: dict[str, Any], name: str, own: tuple[str, str] | None) -> None:
        if self._name_holder(co, name, own) is not None:
            raise QboFault("6240", "Duplicate Name Exists Error",
                           "The name supplied already exists. : Another customer, vendor or employee is "
                           "already using this name. Please use a different name.", "DisplayName")

    def _customer(self, co: dict[str, Any], rec: dict[str, Any], current: dict[str, Any] | None) -> dict[str, Any]:
        for field, limit in (("Title", 16), ("GivenName", 25), ("MiddleName", 25), ("FamilyName", 25),
                             ("Suffix", 16), ("CompanyName", 100), ("DisplayName", 500), ("Notes", 2000),
                             ("PrimaryTaxIdentifier", 30), ("ResaleNum", 16), ("BusinessNumber", 30)):
            value = rec.get(field)
            if value is not None and not isinstance(value, str):
                raise QboFault("2010", "Request has invalid or unsupported property",
                               f"Property Name:{field} must be a string", field)
            if value is not None and len(value) > limit:
                raise too_long(field, limit, len(value))
        if not rec.get("DisplayName"):
            parts = [rec.get(k) for k in ("Title", "GivenName", "MiddleName", "FamilyName", "Suffix")]
            built = " ".join(p for p in parts if p) or rec.get("CompanyName")
            if not built:
                raise missing("DisplayName")
            rec["DisplayName"] = built
        name = rec["DisplayName"]
        if any(ch in name for ch in ":\t\n"):
            raise business("A name can't contain a colon (:), tab or new line.", "DisplayName")
        for key in ("PrimaryEmailAddr",):
            email = rec.get(key)
            if email is not None:
                if not isinstance(email, dict) or set(email) - {"Id", "Address", "Default", "Tag"}:
                    raise unsupported(key)
                address = (email.get("Address") or "").strip()
                if not address:
                    rec.pop(key)
                elif not all(_EMAIL.match(part.strip()) for part in address.split(",")):
                    raise business(f"Invalid email address: {address}", f"{key}.Address")
        for key in ("PrimaryPhone", "AlternatePhone", "Mobile", "Fax"):
            phone = rec.get(key)
            if phone is not None:
                allowed = {"Id", "DeviceType", "CountryCode", "AreaCode", "ExchangeCode", "Extension",
                           "FreeFormNumber", "Default", "Tag"}
                if not isinstance(phone, dict) or set(phone) - allowed:
                    raise unsupported(key)
                if not phone.get("FreeFormNumber"):
                    rec.pop(key)
                elif len(phone["FreeFormNumber"]) > 30:
                    raise too_long(f"{key}.FreeFormNumber", 30, len(phone["FreeFormNumber"]))
        for key in ("BillAddr", "ShipAddr"):
            self._address(co, rec, key, current)
        active = rec.get("Active", True)
        if not isinstance(active, bool):
            raise QboFault("2010", "Request has invalid or unsupported property", "Active must be a boolean",
                           "Active")
        was_active = current.get("Active", True) if current else True
        if not active and was_active and not name.endswith(" (deleted)"):
            name = rec["DisplayName"] = self._deleted_name(co, name)  # frees the name (reference §4)
        elif active and not was_active and name.endswith(" (deleted)"):
            plain = name[: -len(" (deleted)")]
            try:
                self._check_name_free(co, plain, ("Customer", current["Id"]) if current else None)
                name = rec["DisplayName"] = plain
            except QboFault:
                pass
        rec["Active"] = active
        self._check_name_free(co, name, ("Customer", current["Id"]) if current else None)
        # Currency: set at creation; changing it is refused once the customer has transactions.
        wanted = (rec.get("CurrencyRef") or {}).get("value") if isinstance(rec.get("CurrencyRef"), dict) else None
        if rec.get("CurrencyRef") is not None and wanted is None:
            raise missing("CurrencyRef.value")
        had = ((current or {}).get("CurrencyRef") or {}).get("value")
        code = wanted or had or co["home_currency"]
        if code != co["home_currency"] and not co["multicurrency"]:
            raise business("Multicurrency is off in this company, so a customer can only use "
                           f"{co['home_currency']}.", "CurrencyRef")
        if code not in CURRENCIES:
            raise invalid_ref("Currency", code, "CurrencyRef")
        if current is not None and had and code != had and self._has_transactions(co, current["Id"]):
            raise business("You can't change the currency of a customer that has transactions.", "CurrencyRef")
        rec["CurrencyRef"] = self._currency_ref(code)
        rec["FullyQualifiedName"] = name
        rec.setdefault("PrintOnCheckName", name)
        for key, default in (("Job", False), ("BillWithParent", False), ("Taxable", False),
                             ("PreferredDeliveryMethod", "Print")):
            rec.setdefault(key, default)
        return rec

    def _deleted_name(self, co: dict[str, Any], name: str) -> str:
        candidate, n = f"{name} (deleted)", 1
        while self._name_holder(co, candidate, None) is not None:
            candidate, n = f"{name} (deleted-{n})", n + 1
        return candidate

    def _has_transactions(self, co: dict[str, Any], cid: str) -> bool:
        return any(t["CustomerRef"]["value"] == cid for e in TRANSACTIONS for t in co["entities"][e].values())

    def _address(self, co: dict[str, Any], rec: dict[str, Any], key: str, current: dict[str, Any] | None) -> None:
        addr = rec.get(key)
        if addr is None:
            return
        if not isinstance(addr, dict):
            raise unsupported(key)
        for field, value in addr.items():
            if field not in ADDRESS_FIELDS:
                raise unsupported(f"{key}.{field}")
            if not isinstance(value, str):
                raise QboFault("2010", "Request has invalid or unsupported property",
                               f"Property Name:{key}.{field} must be a string", f"{key}.{field}")
            if field.startswith("Line") and len(value) > 500:
                raise too_long(f"{key}.{field}", 500, len(value))
        clean = {k: v for k, v in addr.items() if v}
        if not clean or set(clean) == {"Id"}:
            rec.pop(key)
            return
        old = ((current or {}).get(key) or {}).get("Id")
        clean["Id"] = old or self._new_id(co, "Addr")
        rec[key] = clean

    # -- items -----------------------------------------------------------------------------------
    def _item(self, co: dict[str, Any], rec: dict[str, Any], current: dict[str, Any] | None) -> dict[str, Any]:
        name = rec.get("Name")
        if not name:
            raise missing("Name")
        if not isinstance(name, str):
            raise unsupported("Name")
        if len(name) > 100:
            raise too_long("Name", 100, len(name))
        if ":" in name:
            raise business("The name can't contain a colon (:).", "Name")
        if rec.get("Sku") is not None and len(str(rec["Sku"])) > 100:
            raise too_long("Sku", 100, len(str(rec["Sku"])))
        if rec.get("Description") is not None and len(str(rec["Description"])) > 4000:
            raise too_long("Description", 4000, len(str(rec["Description"])))
        kind = rec.get("Type")
        if not kind:
            raise missing("Type")
        if kind not in ("Service", "NonInventory", "Inventory", "Group", "Category"):
            raise QboFault("2010", "Request has invalid or unsupported property", f"Invalid Type {kind}", "Type")
        if kind == "Inventory" and not (rec.get("AssetAccountRef") and rec.get("InvStartDate")
                                        and rec.get("QtyOnHand") is not None):
            raise missing("AssetAccountRef, InvStartDate and QtyOnHand")
        if kind in ("Service", "NonInventory", "Inventory"):
            ref = rec.get("IncomeAccountRef")
            if not isinstance(ref, dict) or not ref.get("value"):
                raise missing("IncomeAccountRef")
            account = co["entities"]["Account"].get(str(ref["value"]))
            if account is None or not account.get("Active", True):
                raise invalid_ref("Accounts", ref["value"], "IncomeAccountRef")
            rec["IncomeAccountRef"] = {"value": account["Id"], "name": account["Name"]}
        if rec.get("UnitPrice") is not None:
            price = dec(rec["UnitPrice"], "UnitPrice")
            rec["UnitPrice"] = s(price)
        active = rec.get("Active", True)
        was_active = current.get("Active", True) if current else True
        if not active and was_active and not name.endswith(" (deleted)"):
            name = rec["Name"] = f"{name} (deleted)"
        rec["Active"] = bool(active)
        key = name.strip().casefold()
        for other in co["entities"]["Item"].values():
            if current is not None and other["Id"] == current["Id"]:
                continue
            if other["Name"].strip().casefold() == key:
                raise QboFault("6240", "Duplicate Name Exists Error",
                               "The name supplied already exists. : Another product or service is already using "
                               "this name. Please use a different name.", "Name")
        rec["FullyQualifiedName"] = name
        rec.setdefault("Taxable", False)
        rec.setdefault("TrackQtyOnHand", kind == "Inventory")
        return rec

