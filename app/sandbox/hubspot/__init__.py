"""A local imitation of HubSpot's CRM API (v3 objects, v4 associations, properties, pipelines) and OAuth.

Follows HubSpot's public API documentation (developers.hubspot.com) and the OpenAPI documents in
tests/specs/hubspot/: the v3 record shape ``{id, properties, createdAt, updatedAt,
archived}`` with every property value a string; list paging by an opaque ``after``; search with
filter groups, one sort, ``total``, 200 per page and the 10,000-result cap; batch read/create/update/
archive of at most 100 inputs (207 for partial results, all-or-nothing validation, 409 naming the
existing contact on a duplicate email); v4 associations with numeric ``toObjectId``; the properties API
(409 on a duplicate name, 400 ``PROPERTY_DOESNT_EXIST`` on an unknown property); deal pipelines whose
stage metadata are strings; OAuth with 30-minute access tokens and a refresh token that never rotates;
110 requests per 10 s per installed app and account (search: 5 per second, exempt from the 10-second
window as the spec's ``x-hubspot-rate-limit-exemptions`` says), answered with 429 and HubSpot's body.

Both the legacy numeric paths (``/crm/v3/...``) and the 2026-03 date-based paths are served.
``search_lag`` (seconds) makes search see the data as it was that long ago, like HubSpot's index: 0 in
process unless a test asks for it, ``SERVED_SEARCH_LAG`` (3 s) when served over HTTP by ``crossledger
sandbox serve`` and the demo (``served_defaults``).
"""

from __future__ import annotations

import email.utils
from typing import Any, ClassVar

from app.sandbox.base import Request, Response, SandboxApp
from app.sandbox.hubspot.associations import Associations
from app.sandbox.hubspot.batch import Batch
from app.sandbox.hubspot.common import (
    ALIASES,
    ASSOC_BATCH,
    ASSOC_OBJ,
    ASSOC_PAGE_MAX,
    ASSOC_READ_MAX,
    ASSOC_TYPES,
    BATCH_MAX,
    CURRENCIES,
    DEFAULT_PROPERTIES,
    DEFAULT_TYPE,
    EMAIL_RE,
    FIELD_TYPES,
    GROUP,
    INVERSE,
    LIFECYCLE,
    LIST_MAX,
    NAME_RE,
    OBJ,
    OBJECT_TYPES,
    PIPES,
    PRIMARY_TYPE,
    PROPERTY_TYPES,
    PROPS,
    SEARCH_CAP,
    SEARCH_FILTERS_MAX,
    SEARCH_FILTERS_PER_GROUP,
    SEARCH_GROUPS_MAX,
    SEARCH_MAX,
    SERVED_SEARCH_LAG,
    SINGULAR,
    STAGE_ID,
    STANDARD,
    TEXT_SEARCH,
    TYPE_IDS,
    api,
    hs_error,
    parse_instant,
)
from app.sandbox.hubspot.limits import Limits
from app.sandbox.hubspot.oauth import OAuth
from app.sandbox.hubspot.records import Records
from app.sandbox.hubspot.schema import Schema
from app.sandbox.hubspot.search import Search
from app.sandbox.hubspot.seed import SeedData


class HubSpotSandbox(SeedData, Records, Associations, Search, OAuth, Limits, Batch, Schema, SandboxApp):
    """One HubSpot account (portal) with one installed public app."""

    provider = "hubspot"
    access_ttl = 1800  # 30 minutes
    refresh_ttl = None  # valid until the app is uninstalled or the token deleted
    refresh_rotates = False  # the refresh response echoes the same refresh token
    rate_limit = (110, 10.0)  # public app: per installed account, rolling 10 s
    search_rate = (5, 1.0)
    _lag = 0.0
    app_id = 4242421
    app_scopes = ("oauth crm.objects.contacts.read crm.objects.contacts.write crm.objects.companies.read "
                  "crm.objects.companies.write crm.objects.deals.read crm.objects.deals.write "
                  "crm.objects.line_items.read crm.objects.line_items.write crm.objects.products.read "
                  "crm.objects.products.write crm.schemas.contacts.read crm.schemas.contacts.write "
                  "crm.schemas.companies.read crm.schemas.companies.write crm.schemas.deals.read "
                  "crm.schemas.deals.write crm.schemas.line_items.read")

    # What `crossledger sandbox serve hubspot` and the demo construct it with: a search index that trails.
    served_defaults: ClassVar[dict[str, Any]] = {"search_lag": SERVED_SEARCH_LAG}

    def __init__(self, state_file: str | None = None, *, search_lag: float = 0.0, **kw: Any) -> None:
        super().__init__(state_file, **kw)
        self._reset_index()
        self.search_lag = search_lag

    def handle(self, req: Request) -> Response:
        """Every answer carries HubSpot's clock in ``Date`` (whole seconds), as HTTP servers' answers do."""
        resp = super().handle(req)
        if "Date" not in resp.headers:
            resp.headers = {**resp.headers, "Date": email.utils.formatdate(int(self.now()), usegmt=True)}
        return resp


__all__ = [
    "ALIASES",
    "ASSOC_BATCH",
    "ASSOC_OBJ",
    "ASSOC_PAGE_MAX",
    "ASSOC_READ_MAX",
    "ASSOC_TYPES",
    "BATCH_MAX",
    "CURRENCIES",
    "DEFAULT_PROPERTIES",
    "DEFAULT_TYPE",
    "EMAIL_RE",
    "FIELD_TYPES",
    "GROUP",
    "INVERSE",
    "LIFECYCLE",
    "LIST_MAX",
    "NAME_RE",
    "OBJ",
    "OBJECT_TYPES",
    "PIPES",
    "PRIMARY_TYPE",
    "PROPERTY_TYPES",
    "PROPS",
    "SEARCH_CAP",
    "SEARCH_FILTERS_MAX",
    "SEARCH_FILTERS_PER_GROUP",
    "SEARCH_GROUPS_MAX",
    "SEARCH_MAX",
    "SERVED_SEARCH_LAG",
    "SINGULAR",
    "STAGE_ID",
    "STANDARD",
    "TEXT_SEARCH",
    "TYPE_IDS",
    "HubSpotSandbox",
    "api",
    "hs_error",
    "parse_instant",
]
