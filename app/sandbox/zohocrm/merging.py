"""Zoho CRM imitation: the Merge Records API.

``POST /crm/v8/{Accounts|Contacts}/{master_id}/actions/merge`` with ``{"merge": [{"data": [{"id": child,
"_fields": [{"api_name": "Phone"}]}]}]}`` (one merge, at most two children): the listed fields are taken
from each child, records that pointed to a child (a contact's account, a deal's account or contact) point
to the master, and the children are deleted to the recycle bin, where ``/deleted`` lists them; nothing
names the master there. The answer is ``SUCCESS`` with a ``job_id``; ``GET`` on the same path reports the
job ``COMPLETED``.
"""

from __future__ import annotations

from typing import Any

from app.sandbox.base import Request, Response, route
from app.sandbox.parts import SandboxPart
from app.sandbox.zohocrm.common import API, zerr

MERGEABLE = ("Accounts", "Contacts")


class Merging(SandboxPart):
    """Merging duplicates into a master record."""

    @route("POST", API + r"/(?P<module>Accounts|Contacts)/(?P<id>\d+)/actions/merge")
    def merge_records(self, req: Request) -> Response:
        module = self._module(req)
        self._authorize(req, self._module_scopes(module, "WRITE") + self._module_scopes(module, "UPDATE"))
        self._spend(1)
        records = self.state["records"][module]
        master = records.get(req.params["id"])
        if master is None:
            raise zerr(400, "INVALID_DATA", "Specified master record ID is invalid", {"id": req.params["id"]})
        body = self._body(req)
        merges = body.get("merge") if isinstance(body, dict) else None
        if not isinstance(merges, list) or len(merges) != 1 or not isinstance(merges[0], dict):
            raise zerr(400, "INVALID_DATA", "invalid data", {"api_name": "merge", "json_path": "$.merge"})
        children = merges[0].get("data")
        if not isinstance(children, list) or not 1 <= len(children) <= 2:
            raise zerr(400, "INVALID_DATA", "invalid data", {"api_name": "data", "json_path": "$.merge[0].data"})
        ids = [str((c or {}).get("id") or "") for c in children]
        if any(i not in records or i == master["id"] for i in ids):
            raise zerr(400, "INVALID_DATA", "the id given seems to be invalid", {"api_name": "id"})
        before = dict(master)
        for child, cid in zip(children, ids, strict=True):
            for field in child.get("_fields") or []:
                name = (field or {}).get("api_name")
                if name and name in records[cid]:
                    master[name] = records[cid][name]
            self._repoint(cid, master)
            self._delete(module, cid)
        self._save(module, master, before)
        job = self.new_id()
        self.state.setdefault("merge_jobs", {})[master["id"]] = job
        self.persist()
        return self._json(200, {"merge": [{"code": "SUCCESS", "details": {"job_id": job},
                                           "message": "Records merged successfully", "status": "success"}]})

    def _repoint(self, old: str, master: dict[str, Any]) -> None:
        for module in ("Contacts", "Deals"):
            for rec in self.state["records"][module].values():
                for key, value in rec.items():
                    if isinstance(value, dict) and value.get("id") == old:
                        rec[key] = {**value, "id": master["id"]}

    @route("GET", API + r"/(?P<module>Accounts|Contacts)/(?P<id>\d+)/actions/merge")
    def merge_status(self, req: Request) -> Response:
        module = self._module(req)
        self._authorize(req, self._module_scopes(module, "READ"))
        job = self.state.get("merge_jobs", {}).get(req.params["id"])
        if job is None:
            raise zerr(400, "INVALID_DATA", "Specified master record ID is invalid", {"id": req.params["id"]})
        return self._json(200, {"merge": [{"job_id": job, "status": "COMPLETED"}]})
