"""What became of CRM companies and people: still there, deleted, or merged into another record.

Mixins for the four CRM connectors (each ``Connector`` lists one as its last base). ``record_fates(
object_type, ids, names)`` answers one ``RecordFate`` per id, in order:

* HubSpot: a batch read answers a merged-away ID with the surviving record, whose
  ``hs_merged_object_ids`` lists it (merged, certain); what the live read lacks is looked up among
  archived records (deleted), else missing.
* Salesforce: ``queryAll`` sees deleted rows; a merge loser carries ``MasterRecordId`` (merged, certain).
* Pipedrive and Zoho CRM keep no merge trail: the loser is simply deleted (Zoho lists it in ``/deleted``).
  When the caller knows the record's last name (``names``) and exactly one live record now carries that
  exact name, the record is reported merged into it with ``certain=False``, for a person to confirm.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from app.connectors.errors import NotFound
from app.domain.lifecycle import RecordFate
from app.domain.models import CrmRecord

HS_TYPE = {"company": "companies", "person": "contacts"}
SF_OBJECT = {"company": "Account", "person": "Contact"}
SF_ID = re.compile(r"[A-Za-z0-9]{15,18}")


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[n:n + size] for n in range(0, len(items), size)]


def _inferred(rid: str, name: str | None, heirs: Sequence[tuple[str, str | None]]) -> RecordFate:
    """A deleted record, reported merged into the one live record that now carries its exact name."""
    others = [(hid, hname) for hid, hname in heirs if hid != rid]
    if name and len(others) == 1:
        return RecordFate(rid, "merged", survivor_id=others[0][0], name=name, survivor_name=others[0][1] or name,
                          certain=False)
    return RecordFate(rid, "deleted", name=name)


class HubSpotLifecycle:
    if TYPE_CHECKING:
        def _call(self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None,
                  idempotent: bool | None = None) -> dict[str, Any]: ...

    def _hs_read(self, hs_type: str, ids: list[str], archived: bool) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for chunk in _chunks(ids, 100):
            payload = self._call("POST", f"/crm/v3/objects/{hs_type}/batch/read", idempotent=True,
                                 params={"archived": "true"} if archived else None,
                                 body={"properties": ["name", "firstname", "lastname", "hs_merged_object_ids"],
                                       "propertiesWithHistory": [], "inputs": [{"id": i} for i in chunk]})
            out += payload.get("results") or []
        return out

    @staticmethod
    def _hs_name(props: dict[str, Any]) -> str | None:
        if props.get("name"):
            return str(props["name"])
        return " ".join(str(props[k]) for k in ("firstname", "lastname") if props.get(k)) or None

    def record_fates(self, object_type: str, ids: Sequence[str],
                     names: dict[str, str] | None = None) -> list[RecordFate]:
        hs_type = HS_TYPE[object_type]
        wanted = list(dict.fromkeys(str(i) for i in ids))
        found: dict[str, RecordFate] = {}
        for row in self._hs_read(hs_type, wanted, archived=False):
            rid, props = str(row["id"]), row.get("properties") or {}
            name = self._hs_name(props)
            if rid in wanted:
                found[rid] = RecordFate(rid, "active", name=name)
            for loser in str(props.get("hs_merged_object_ids") or "").split(";"):
                if loser in wanted and loser != rid:
                    found.setdefault(loser, RecordFate(loser, "merged", survivor_id=rid, survivor_name=name))
        rest = [i for i in wanted if i not in found]
        for row in self._hs_read(hs_type, rest, archived=True) if rest else []:
            rid = str(row["id"])
            found[rid] = RecordFate(rid, "deleted", name=self._hs_name(row.get("properties") or {}))
        return [found.get(str(i)) or RecordFate(str(i), "missing") for i in ids]


def _sf_name(row: dict[str, Any]) -> str | None:
    """An Account's Name, or a Contact's first and last name."""
    if row.get("Name"):
        return str(row["Name"])
    return " ".join(str(row[k]) for k in ("FirstName", "LastName") if row.get(k)) or None


class SalesforceLifecycle:
    if TYPE_CHECKING:
        def _query(self, soql: str, *, all_rows: bool = False) -> list[dict[str, Any]]: ...

    def record_fates(self, object_type: str, ids: Sequence[str],
                     names: dict[str, str] | None = None) -> list[RecordFate]:
        sobject = SF_OBJECT[object_type]
        cols = "Name" if sobject == "Account" else "FirstName, LastName"
        wanted = [i for i in dict.fromkeys(str(i) for i in ids) if SF_ID.fullmatch(i)]
        rows: dict[str, dict[str, Any]] = {}
        for chunk in _chunks(wanted, 200):
            quoted = ", ".join(f"'{i}'" for i in chunk)
            for row in self._query(f"SELECT Id, {cols}, IsDeleted, MasterRecordId FROM {sobject} "  # noqa: S608 - ids checked
                                   f"WHERE Id IN ({quoted})", all_rows=True):
                rows[str(row["Id"])] = {**row, "Name": _sf_name(row)}
        masters = sorted({str(r["MasterRecordId"]) for r in rows.values() if r.get("MasterRecordId")} - set(rows))
        master_names: dict[str, str] = {}
        for chunk in _chunks([m for m in masters if SF_ID.fullmatch(m)], 200):
            quoted = ", ".join(f"'{i}'" for i in chunk)
            for row in self._query(f"SELECT Id, {cols} FROM {sobject} WHERE Id IN ({quoted})"):  # noqa: S608
                master_names[str(row["Id"])] = _sf_name(row) or ""
        out = []
        for rid in (str(i) for i in ids):
            hit = rows.get(rid) or next((r for k, r in rows.items() if k[:15] == rid[:15]), None)
            if hit is None:
                out.append(RecordFate(rid, "missing"))
            elif hit.get("MasterRecordId"):
                master = str(hit["MasterRecordId"])
                out.append(RecordFate(rid, "merged", survivor_id=master, name=hit.get("Name"),
                                      survivor_name=master_names.get(master) or (rows.get(master) or {}).get("Name")))
            elif hit.get("IsDeleted"):
                out.append(RecordFate(rid, "deleted", name=hit.get("Name")))
            else:
                out.append(RecordFate(rid, "active", name=hit.get("Name")))
        return out


class PipedriveLifecycle:
    if TYPE_CHECKING:
        def get_records(self, object_type: str, ids: Sequence[str]) -> list[CrmRecord]: ...
        def _search(self, entity: str, field: str, term: str) -> list[str]: ...

    def record_fates(self, object_type: str, ids: Sequence[str],
                     names: dict[str, str] | None = None) -> list[RecordFate]:
        """Live by a read; gone ones are deleted (Pipedrive hides them), or merged by name (not certain)."""
        entity = {"company": "organizations", "person": "persons"}[object_type]
        live = {r.id: r for r in self.get_records(object_type, [str(i) for i in ids])}
        out = []
        for rid in (str(i) for i in ids):
            rec = live.get(rid)
            if rec is not None:
                out.append(RecordFate(rid, "active", name=rec.properties.get("name")))
                continue
            name = (names or {}).get(rid)
            hits = self._search(entity, "name", name) if name else []
            found = {r.id: r.properties.get("name") for r in self.get_records(object_type, hits)} if hits else {}
            heirs = [(h, found.get(h)) for h in hits if found.get(h) == name]
            out.append(_inferred(rid, name, heirs))
        return out


class ZohoCrmLifecycle:
    if TYPE_CHECKING:
        def get_records(self, object_type: str, ids: Sequence[str]) -> list[CrmRecord]: ...
        def _call(self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None,
                  headers: dict[str, str] | None = None, idempotent: bool | None = None,
                  per_record: bool = False) -> tuple[Any, Any]: ...

    def record_fates(self, object_type: str, ids: Sequence[str],
                     names: dict[str, str] | None = None) -> list[RecordFate]:
        """Live by a read; gone ones found in the recycle bin are deleted, or merged by name (not certain)."""
        module, field = {"company": ("Accounts", "Account_Name"), "person": ("Contacts", "Full_Name")}[object_type]
        live = {r.id: r for r in self.get_records(object_type, [str(i) for i in ids])}
        gone = [str(i) for i in ids if str(i) not in live]
        binned: dict[str, str] = {}
        page = 1
        while gone and page <= 10:
            data, _ = self._call("GET", f"/{module}/deleted", params={"type": "recycle", "page": page,
                                                                            "per_page": 200})
            for row in (data or {}).get("data") or []:
                binned[str(row["id"])] = row.get("display_name") or ""
            if not ((data or {}).get("info") or {}).get("more_records"):
                break
            page += 1
        out = []
        for rid in (str(i) for i in ids):
            rec = live.get(rid)
            if rec is not None:
                out.append(RecordFate(rid, "active", name=rec.properties.get(field)))
                continue
            name = binned.get(rid) or (names or {}).get(rid)
            if rid not in binned and not name:
                out.append(RecordFate(rid, "missing"))
                continue
            heirs: list[tuple[str, str | None]] = []
            if name:
                safe = re.sub(r"([(),\\])", r"\\\1", name)
                try:
                    data, _ = self._call("GET", f"/{module}/search",
                                         params={"criteria": f"({field}:equals:{safe})"})
                except NotFound:
                    data = None
                heirs = [(str(r["id"]), r.get(field)) for r in (data or {}).get("data") or [] if r.get(field) == name]
            out.append(_inferred(rid, name, heirs))
        return out
