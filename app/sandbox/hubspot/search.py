"""HubSpot imitation: CRM search (filter groups, sorts, paging, the 10,000 cap) over an index that trails writes."""

from __future__ import annotations

import copy
import heapq
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from app.sandbox.base import Request, Response
from app.sandbox.hubspot.common import (
    OBJ,
    OBJECT_TYPES,
    SEARCH_CAP,
    SEARCH_FILTERS_MAX,
    SEARCH_FILTERS_PER_GROUP,
    SEARCH_GROUPS_MAX,
    SEARCH_MAX,
    TEXT_SEARCH,
    _bad_request,
    api,
    parse_instant,
)
from app.sandbox.parts import SandboxPart


class Search(SandboxPart):
    """CRM search (filter groups, sorts, paging, the 10,000 cap) over an index that trails writes."""

    _lag: float
    _index: dict[str, dict[str, dict[str, Any]]] | None  # type -> id -> {rec, values}, as search sees them
    _pending: list[tuple[float, str, str]]  # (due, type, id) writes not yet in the index

    def _reset_index(self) -> None:
        """Forget the index; it is built again from the records as they are (the next search, or now)."""
        self._index, self._pending = None, []

    def _index_all(self) -> None:
        """Index every record as it is now (when search lags at all)."""
        self._reset_index()
        self.search_lag = self._lag

    # -- search index -------------------------------------------------------------------------
    @property
    def search_lag(self) -> float:
        """Seconds the search index trails the records (0: search sees every write at once)."""
        return self._lag

    @search_lag.setter
    def search_lag(self, seconds: float) -> None:
        with self.lock:
            if seconds > 0 and self._index is None:
                self._index = {t: {} for t in OBJECT_TYPES}
                for t in OBJECT_TYPES:
                    for r in self.state["objects"][t].values():
                        if not r["archived"]:
                            self._index[t][r["id"]] = {"rec": copy.deepcopy(r), "values": self._values(t, r)}
                self._pending = []
            self._lag = seconds

    def _reindex(self, otype: str, rid: str) -> None:
        if self.search_lag > 0:
            self._pending.append((self.now() + self.search_lag, otype, rid))

    def _searchable(self, otype: str, *, values: bool = True) -> list[tuple[dict[str, Any], Any]]:
        """(record, values) pairs the search index holds now; ``values=False``: None where working them out
        would be needed (no index: search sees every write at once)."""
        if self.search_lag <= 0:
            self._index = None
            return [(r, self._values(otype, r) if values else None)
                    for r in self.state["objects"][otype].values() if not r["archived"]]
        if self._index is None:
            self.search_lag = self.search_lag  # builds the index from the records as they are now
        assert self._index is not None
        now = self.now()
        due = [p for p in self._pending if p[0] <= now]
        self._pending = [p for p in self._pending if p[0] > now]
        for _, t, rid in sorted(due):
            rec = self.state["objects"][t].get(rid)
            if rec is None or rec["archived"]:
                self._index[t].pop(rid, None)
            else:
                self._index[t][rid] = {"rec": copy.deepcopy(rec), "values": self._values(t, rec)}
        return [(e["rec"], e["values"]) for e in self._index[otype].values()]

    # -- objects: search ----------------------------------------------------------------------
    @api("POST", OBJ + r"/search", scopes=("crm.objects.{type}.read",), search=True)
    def objects_search(self, req: Request) -> Response:
        otype = self._type_arg(req) or ""
        body = self._body(req)
        try:
            limit = int(body.get("limit") if body.get("limit") is not None else 10)
            after = int(str(body.get("after") if body.get("after") not in (None, "") else 0))
        except ValueError as exc:
            raise _bad_request("limit and after must be numbers") from exc
        if limit > SEARCH_MAX or limit < 0:
            raise _bad_request(f"limit must be between 0 and {SEARCH_MAX}; got {limit}")
        if after >= SEARCH_CAP:
            raise _bad_request(f"Search results are limited to {SEARCH_CAP} records per query. Narrow the filters "
                               "(for example by hs_lastmodifieddate) to page further.",
                               context={"after": [str(after)]})
        groups = body.get("filterGroups") or []
        if not isinstance(groups, list) or len(groups) > SEARCH_GROUPS_MAX:
            raise _bad_request(f"A search can have at most {SEARCH_GROUPS_MAX} filterGroups")
        count = 0
        for group in groups:
            filters = (group or {}).get("filters")
            if not isinstance(filters, list) or len(filters) > SEARCH_FILTERS_PER_GROUP:
                raise _bad_request(f"A filterGroup needs 'filters' (at most {SEARCH_FILTERS_PER_GROUP})")
            count += len(filters)
        if count > SEARCH_FILTERS_MAX:
            raise _bad_request(f"A search can have at most {SEARCH_FILTERS_MAX} filters in total")
        defs = self.state["properties"][otype]
        query = (body.get("query") or "").strip().casefold()
        sorts = body.get("sorts") or []
        props = [p for p in body.get("properties") or [] if isinstance(p, str)]
        if not groups and not query and (descending := self._by_modified(otype, sorts)) is not None:
            return self._newest_first(otype, descending, after, limit, props)
        rows = []
        for rec, values in self._searchable(otype):
            if groups and not any(all(self._match(defs, values, f) for f in g["filters"]) for g in groups):
                continue
            if query and not any(query in (values.get(p) or "").casefold() for p in TEXT_SEARCH[otype]):
                continue
            rows.append((rec, values))
        rows = self._sort(defs, rows, sorts)
        return self._answer(otype, rows[after:after + limit], len(rows), after, limit, props)

    def _answer(self, otype: str, page: Sequence[tuple[dict[str, Any], dict[str, Any] | None]], total: int, after: int,
                limit: int, props: list[str]) -> Response:
        """One page of a search that matched ``total`` records (values worked out here where None)."""
        out: dict[str, Any] = {"total": total, "results": [
            self._out(otype, r, props, values=v if v is not None else self._values(otype, r)) for r, v in page]}
        if after + limit < total:
            out["paging"] = {"next": {"after": str(after + limit)}}
        return Response(200, out)

    @staticmethod
    def _sort_spec(first: Any) -> tuple[Any, bool]:
        """A sort as HubSpot takes it: ``{propertyName, direction}`` or a property name (``-name`` descending)."""
        if isinstance(first, dict):
            return first.get("propertyName"), first.get("direction") == "DESCENDING"
        text = str(first)
        return text.lstrip("-"), text.startswith("-")

    def _by_modified(self, otype: str, sorts: list[Any]) -> bool | None:
        """A search sorted by last modification alone (descending: True): the page is found from the records'
        modification times, without working out every record's values. None for any other sort."""
        if len(sorts) != 1:
            return None
        name, descending = self._sort_spec(sorts[0])
        modified = {"hs_lastmodifieddate"} | ({"lastmodifieddate"} if otype == "contacts" else set())
        return descending if name in modified else None

    def _newest_first(self, otype: str, descending: bool, after: int, limit: int, props: list[str]) -> Response:
        """The same page and total as the general path (``_sort``: by ID, then stably by the modification
        time), for a search with no filter and no query: how an incremental read asks for what changed."""
        rows = self._searchable(otype, values=False)
        sign = -1 if descending else 1
        order = heapq.nsmallest(after + limit, rows, key=lambda rv: (sign * rv[0]["u"], int(rv[0]["id"])))
        return self._answer(otype, order[after:after + limit], len(rows), after, limit, props)

    @staticmethod
    def _typed(defs: dict[str, Any], name: str, value: Any) -> Any:
        if value is None or value == "":
            return None
        kind = (defs.get(name) or {}).get("type")
        if kind == "number":
            try:
                return Decimal(str(value))
            except InvalidOperation:
                return None
        if kind in ("date", "datetime"):
            return parse_instant(str(value))
        return str(value).casefold()

    def _match(self, defs: dict[str, Any], values: dict[str, Any], flt: dict[str, Any]) -> bool:
        name, op = flt.get("propertyName"), flt.get("operator")
        if not name or op is None:
            raise _bad_request("A filter needs propertyName and operator")
        if name not in defs:
            raise _bad_request(f"There was a problem with the request: property {name} does not exist",
                               context={"propertyName": [name]})
        have = self._typed(defs, name, values.get(name))
        if op == "HAS_PROPERTY":
            return have is not None
        if op == "NOT_HAS_PROPERTY":
            return have is None
        if op in ("IN", "NOT_IN"):
            wanted = [self._typed(defs, name, v) for v in flt.get("values") or []]
            return (have in wanted) == (op == "IN") if have is not None else op == "NOT_IN"
        want = self._typed(defs, name, flt.get("value"))
        if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
            token = str(flt.get("value") or "").casefold().replace("*", "")
            found = have is not None and token in str(have)
            return found == (op == "CONTAINS_TOKEN")
        if op == "NEQ":
            return have != want
        if have is None or want is None:
            return False
        try:
            if op == "EQ":
                return have == want
            if op == "LT":
                return have < want
            if op == "LTE":
                return have <= want
            if op == "GT":
                return have > want
            if op == "GTE":
                return have >= want
            if op == "BETWEEN":
                high = self._typed(defs, name, flt.get("highValue"))
                return high is not None and want <= have <= high
        except TypeError:
            return False
        raise _bad_request(f"Unknown filter operator {op}")

    def _sort(self, defs: dict[str, Any], rows: list[tuple[dict, dict]], sorts: list[Any]) -> list[tuple[dict, dict]]:
        """One sort is honoured: ``{propertyName, direction}`` or a property name (``-name`` descending)."""
        rows = sorted(rows, key=lambda rv: int(rv[0]["id"]))
        if not sorts:
            return rows
        name, descending = self._sort_spec(sorts[0])
        if not name or name not in defs:
            raise _bad_request(f"Cannot sort by unknown property {name}")
        present = [rv for rv in rows if self._typed(defs, name, rv[1].get(name)) is not None]
        absent = [rv for rv in rows if self._typed(defs, name, rv[1].get(name)) is None]
        present.sort(key=lambda rv: self._typed(defs, name, rv[1].get(name)), reverse=descending)
        return present + absent
