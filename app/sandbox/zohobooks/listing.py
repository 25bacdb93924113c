"""Zoho Books list reads (search, filter_by, sort, page/per_page) and the organisation settings."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from app.sandbox.base import Request, Response, route
from app.sandbox.common import page_number
from app.sandbox.zohobooks.limits import ZohoBooksLimits
from app.sandbox.zohobooks.shapes import API, _many, bad_param, ok, s, zerr


class ZohoBooksListing(ZohoBooksLimits):
    """Paged lists, organisations, currencies, taxes."""

    # -- listing ----------------------------------------------------------------------------
    def _list(self, req: Request, org: str, records: list[dict[str, Any]], *, key: str, id_key: str, report: str,
              texts: dict[str, Callable[[dict], Any]], exact: dict[str, Callable[[dict], Any]],
              statuses: dict[str, Callable[[dict], bool]], default_filter: str,
              sorts: dict[str, Callable[[dict], Any]], default_sort: tuple[str, str],
              out: Callable[[dict], dict]) -> Response:
        try:
            page = int(req.arg("page", "1") or "1")
            per_page = min(int(req.arg("per_page", "200") or "200"), 200)  # silently capped at 200
        except ValueError:
            raise bad_param("page") from None
        if page < 1 or per_page < 1:
            raise bad_param("page")
        criteria = []
        rows = list(records)
        for name, getter in texts.items():
            for suffix, test in (("", lambda v, q: v == q), ("_startswith", str.startswith),
                                 ("_contains", lambda v, q: q in v)):
                q = req.arg(name + suffix)
                if q is None:
                    continue
                q = q.casefold()
                rows = [r for r in rows if any(test(s(v).casefold(), q) for v in _many(getter(r)))]
                criteria.append({"column_name": name, "search_text": q,
                                 "comparator": {"": "equal", "_startswith": "starts_with",
                                                "_contains": "contains"}[suffix]})
        for name, getter in exact.items():
            q = req.arg(name)
            if q is not None:
                rows = [r for r in rows if s(getter(r)) == q]
                criteria.append({"column_name": name, "search_text": q, "comparator": "equal"})
        status_filter = req.arg("filter_by") or default_filter
        if status_filter not in statuses:
            raise bad_param("filter_by")
        rows = [r for r in rows if statuses[status_filter](r)]
        text = req.arg("search_text")
        if text:
            needle = text.casefold()
            rows = [r for r in rows if any(needle in s(v).casefold() for g in texts.values() for v in _many(g(r)))]
        since = req.arg("last_modified_time")
        if since is not None:
            after = int(self.parse_ts(since, "last_modified_time"))
            rows = [r for r in rows if int(r["_lmt"]) > after]  # modified after the given time
        column = req.arg("sort_column") or default_sort[0]
        order = req.arg("sort_order") or (default_sort[1] if column == default_sort[0] else "A")
        if column not in sorts:
            raise bad_param("sort_column")
        if order not in ("A", "D"):
            raise bad_param("sort_order")
        rows.sort(key=lambda r: (sorts[column](r), int(r[id_key])), reverse=order == "D")
        chunk = page_number(rows, page, per_page)
        return ok({key: [out(r) for r in chunk.rows], "page_context": {
            "page": page, "per_page": per_page, "has_more_page": chunk.more,
            "report_name": report, "applied_filter": status_filter, "sort_column": column, "sort_order": order,
            "search_criteria": criteria,
        }})

    # -- organisations and settings ---------------------------------------------------------
    @route("GET", API + r"/organizations")
    def list_orgs(self, req: Request) -> Response:
        self._gate(req, "settings", org_required=False)
        return ok({"organizations": [self._org_out(o) for o in self.state["orgs"].values()]})

    @route("GET", API + r"/organizations/(?P<org>\d+)")
    def get_org(self, req: Request) -> Response:
        self._gate(req, "settings", org_required=False)
        org = self.state["orgs"].get(req.params["org"])
        if org is None:
            raise zerr(400, 6041, f"This user is not associated with the CompanyID/CompanyName:{req.params['org']}.")
        return ok({"organization": self._org_out(org)})

    @staticmethod
    def _org_out(org: dict[str, Any]) -> dict[str, Any]:
        return dict(org)

    @route("GET", API + r"/settings/currencies")
    def currencies(self, req: Request) -> Response:
        org = self._gate(req, "settings")
        out = [{**c, "exchange_rate": Decimal(c["exchange_rate"])} for c in self._books(org)["currencies"]]
        return ok({"currencies": out})

    @route("GET", API + r"/settings/taxes")
    def taxes(self, req: Request) -> Response:
        org = self._gate(req, "settings")
        out = [{**t, "tax_percentage": Decimal(t["tax_percentage"])} for t in self._books(org)["taxes"]]
        return ok({"taxes": out})

