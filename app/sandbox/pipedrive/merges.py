"""Pipedrive imitation: merging two persons or two organizations (v1).

``PUT /v1/organizations/{id}/merge`` and ``PUT /v1/persons/{id}/merge`` with ``{"merge_with_id": N}``:
the record in the path is merged into ``merge_with_id`` and deleted; the survivor's values win, its empty
fields take the other's; deals and people (for an organization) move to the survivor. Pipedrive keeps no
merge trail: the loser reads as deleted, as any deleted record does. The answer is ``{"id": survivor}``.
"""

from __future__ import annotations

from app.sandbox.base import Request, Response
from app.sandbox.parts import SandboxPart
from app.sandbox.pipedrive.common import CONTACTS_FULL, _err, _invalid, api

_LINK = {"organizations": "org_id", "persons": "person_id"}


class Merges(SandboxPart):
    """Merging persons and organizations."""

    def _merge(self, kind: str, req: Request) -> Response:
        loser = self._record(kind, req)
        body = self._body(req, {"merge_with_id"})
        into = body.get("merge_with_id")
        if not isinstance(into, int) or isinstance(into, bool):
            raise _invalid("merge_with_id: Parameter 'merge_with_id' must be an integer")
        keep = self.state[kind].get(str(into))
        if keep is None or keep.get("is_deleted"):
            raise _err(404, f"{'Organization' if kind == 'organizations' else 'Person'} not found", "ERR_NOT_FOUND")
        if keep["id"] == loser["id"]:
            raise _invalid("merge_with_id: a record cannot be merged with itself")
        for key, value in loser.items():
            if key not in ("id", "add_time", "update_time", "is_deleted") and keep.get(key) in (None, "", [], {}):
                keep[key] = value
        moved = [(d, _LINK[kind]) for d in self.state["deals"].values() if d.get(_LINK[kind]) == loser["id"]]
        if kind == "organizations":
            moved += [(p, "org_id") for p in self.state["persons"].values() if p.get("org_id") == loser["id"]]
        for rec, field in moved:
            rec[field] = keep["id"]
            self._touch(rec)
        self._touch(keep)
        self._mark_deleted(kind, loser)
        self.persist()
        return self._ok({"id": keep["id"]})

    @api("PUT", "/organizations/{id}/merge", cost=40, scopes=CONTACTS_FULL, version="v1")
    def organizations_merge(self, req: Request) -> Response:
        return self._merge("organizations", req)

    @api("PUT", "/persons/{id}/merge", cost=40, scopes=CONTACTS_FULL, version="v1")
    def persons_merge(self, req: Request) -> Response:
        return self._merge("persons", req)
