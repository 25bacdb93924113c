"""Pipedrive imitation: v2 products, pipelines and stages."""

from __future__ import annotations

from app.sandbox.base import Request, Response
from app.sandbox.parts import SandboxPart
from app.sandbox.pipedrive.common import (
    PRODUCT_KEYS,
    STAGE_KEYS,
    _invalid,
    api,
    v2_time,
)


class Catalog(SandboxPart):
    """V2 products, pipelines and stages."""

    # -- v2: products, pipelines, stages ----------------------------------------------------
    @api("GET", "/products", cost=10, scopes=("products:read", "products:full"))
    def products_list(self, req: Request) -> Response:
        rows = [r for r in self.state["products"].values() if not r.get("is_deleted")]
        ids = self._ids_filter(req)
        if ids is not None:
            rows = [r for r in rows if r["id"] in ids]
        rows = self._updated_window(req, rows)
        return self._page(req, rows, sort_fields=("id", "name", "add_time", "update_time"), render=self._product_out)

    @api("GET", "/products/{id}", cost=1, scopes=("products:read", "products:full"))
    def products_get(self, req: Request) -> Response:
        return self._ok(self._product_out(self._record("products", req)))

    @api("POST", "/products", cost=5, scopes=("products:full",))
    def products_create(self, req: Request) -> Response:
        body = self._body(req, PRODUCT_KEYS)
        if not body.get("name"):
            raise _invalid("name: Parameter 'name' is required")
        pid = self.next_id("product")
        when = v2_time(self.now())
        rec = {"id": pid, "name": body["name"], "code": body.get("code") or "", "unit": body.get("unit") or "",
               "tax": str(body.get("tax") or 0), "is_deleted": False, "is_linkable": body.get("is_linkable", True),
               "visible_to": body.get("visible_to", 3), "owner_id": body.get("owner_id", self.state["user"]["id"]),
               "add_time": when, "update_time": when, "description": body.get("description") or "",
               "category": None, "custom_fields": self._custom_in("product", body.get("custom_fields") or {}, {}),
               "billing_frequency": body.get("billing_frequency", "one-time"),
               "billing_frequency_cycles": body.get("billing_frequency_cycles"),
               "prices": [{"product_id": pid, "price": str(p.get("price", 0)), "currency": p.get("currency"),
                           "cost": str(p.get("cost", 0)), "direct_cost": None, "notes": p.get("notes", "")}
                          for p in body.get("prices") or []]}
        self.state["products"][str(pid)] = rec
        self.persist()
        return self._ok(self._product_out(rec), status=201)

    @api("GET", "/pipelines", cost=5, scopes=("deals:read", "deals:full", "admin"))
    def pipelines_list(self, req: Request) -> Response:
        rows = [r for r in self.state["pipelines"].values() if not r.get("is_deleted")]
        return self._page(req, rows, sort_fields=("id", "update_time", "add_time"), render=dict)

    @api("GET", "/stages", cost=5, scopes=("deals:read", "deals:full", "admin"))
    def stages_list(self, req: Request) -> Response:
        rows = [r for r in self.state["stages"].values() if not r.get("is_deleted")]
        pipeline_id = self._int_arg(req, "pipeline_id")
        if pipeline_id is not None:
            rows = [r for r in rows if r["pipeline_id"] == pipeline_id]
        return self._page(req, rows, sort_fields=("id", "update_time", "add_time", "order_nr"), render=dict)

    @api("PATCH", "/stages/{id}", cost=5, scopes=("admin",))
    def stages_update(self, req: Request) -> Response:
        rec = self._record("stages", req)
        body = self._body(req, STAGE_KEYS)
        for key, value in body.items():
            rec[key] = value
        self._touch(rec)
        self.persist()
        return self._ok(dict(rec))
