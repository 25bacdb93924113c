"""A local imitation of Zoho CRM's REST API v8 and of the Zoho Accounts server it signs in through.

Follows Zoho CRM's API documentation (www.zoho.com/crm/developer/docs/api/v8; our schema of it in
tests/specs/zoho-crm/):

* OAuth: ``/oauth/v2/auth`` answers with ``code``, ``location`` and ``accounts-server`` (this server),
  ``/oauth/v2/token`` takes its parameters as query string or form, names ``api_domain`` (this
  server) in every answer, issues one-hour access tokens and refresh tokens that never rotate
  (a refresh answer carries none), answers a bad code or refresh token with HTTP 200
  ``{"error": "invalid_code"}``, allows 10 refreshes per refresh token per 10 minutes (then 400
  ``Access Denied``) and 20 refresh tokens per client (the 21st evicts the oldest).
* ``Authorization: Zoho-oauthtoken``; scopes are checked per module and per operation.
* Records (Accounts, Contacts, Deals, Products): ``GET`` lists with a mandatory ``fields`` (<= 50),
  ``per_page`` <= 200, ``page`` for the first 2,000 records and ``page_token`` beyond, ``ids``,
  ``sort_by``/``sort_order``, ``If-Modified-Since`` (304), 204 when empty; insert/update/upsert/
  delete of up to 100 records with per-record results (201/200 all good, 207 mixed, 400 all bad),
  ``DUPLICATE_DATA`` naming the existing record, ``MANDATORY_NOT_FOUND``, ``INVALID_DATA``;
  ``/deleted`` (recycle bin, ``If-Modified-Since``); search by ``email``/``phone``/``word``/
  ``criteria``; COQL with a real (small) parser; ``GET`` and ``DELETE`` of one record by id; merging
  duplicate accounts or contacts (``merging``).
* Deals carry a custom subform ``Line_Items`` (Product lookup, Quantity, Unit Price, Discount %),
  stages with ``forecast_type`` metadata in two pipelines; metadata through ``settings/fields``
  (custom fields can be created there), ``settings/layouts``, ``settings/pipeline``, ``settings/modules``,
  ``org`` and ``users`` (``type=CurrentUser``; the org has one user).
* API credits per rolling 24 hours by edition (Enterprise: 50,000 + 1,000 per user), priced per
  call as the reference prices them; ``X-API-CREDITS-REMAINING`` once half is used; 429
  ``TOO_MANY_REQUESTS`` when spent.

Money is kept as strings in the state and written as exact JSON numbers.

Simplifications (said here so nobody mistakes them for Zoho behaviour): seeded demo records are
stored as an import would store them, without the API's field validation (so the demo can hold
malformed emails); the per-app concurrency limit is not imitated (the sandbox answers one request
at a time); layouts list no sections; deleting an account does not delete its contacts and deals;
the search index has no lag.
"""

from __future__ import annotations

from typing import Any

from app.sandbox.zoho_accounts import ZohoAccounts
from app.sandbox.zohocrm.common import (
    API,
    CREATABLE_TYPES,
    CURRENCIES,
    CURRENCY_FIELDS,
    CUSTOM_FIELDS,
    DATE_RE,
    DEFAULT_LENGTH,
    DISPLAY_FIELD,
    EDITIONS,
    EMAIL_RE,
    FORECAST_CATEGORY_IDS,
    ID_PREFIX,
    JSON_TYPE,
    MODULE_IDS,
    MODULE_LABEL,
    MODULE_RE,
    MODULES,
    NUMERIC,
    ORG_ID,
    PROFILE_ID,
    RENEWAL_STAGES,
    RESERVED,
    STANDARD_FIELDS,
    STANDARD_STAGES,
    SUBFORM_MODULES,
    SYSTEM,
    TEXTUAL,
    TIME_ZONE,
    TOO_MANY,
    TRIGGERS,
    UI_TYPE,
    dumps,
    parse_time,
    zerr,
    zoho_time,
)
from app.sandbox.zohocrm.coql import KEYWORDS, Coql, CoqlError, parse_criteria
from app.sandbox.zohocrm.limits import Limits
from app.sandbox.zohocrm.merging import Merging
from app.sandbox.zohocrm.query import Query
from app.sandbox.zohocrm.records import Records
from app.sandbox.zohocrm.seed import SeedData
from app.sandbox.zohocrm.settings import Settings
from app.sandbox.zohocrm.writing import Writing


class ZohoCrmSandbox(SeedData, Limits, Settings, Writing, Merging, Records, Query, ZohoAccounts):
    """Zoho CRM for one org, with its Zoho Accounts server on the same host."""

    provider = "zohocrm"
    access_ttl = 3600
    refresh_rotates = False
    code_ttl = 120  # an authorization code is good for a minute or two
    edition = "enterprise"
    users = 5
    full_scope = ("ZohoCRM.modules.ALL,ZohoCRM.settings.ALL,ZohoCRM.coql.READ,ZohoCRM.org.READ,"
                  "ZohoCRM.users.READ")

    def __init__(self, *args: Any, **kw: Any) -> None:
        self.credit_scale = 1.0
        self._credit_header = None
        super().__init__(*args, **kw)


__all__ = [
    "API",
    "CREATABLE_TYPES",
    "CURRENCIES",
    "CURRENCY_FIELDS",
    "CUSTOM_FIELDS",
    "DATE_RE",
    "DEFAULT_LENGTH",
    "DISPLAY_FIELD",
    "EDITIONS",
    "EMAIL_RE",
    "FORECAST_CATEGORY_IDS",
    "ID_PREFIX",
    "JSON_TYPE",
    "KEYWORDS",
    "MODULES",
    "MODULE_IDS",
    "MODULE_LABEL",
    "MODULE_RE",
    "NUMERIC",
    "ORG_ID",
    "PROFILE_ID",
    "RENEWAL_STAGES",
    "RESERVED",
    "STANDARD_FIELDS",
    "STANDARD_STAGES",
    "SUBFORM_MODULES",
    "SYSTEM",
    "TEXTUAL",
    "TIME_ZONE",
    "TOO_MANY",
    "TRIGGERS",
    "UI_TYPE",
    "Coql",
    "CoqlError",
    "ZohoCrmSandbox",
    "dumps",
    "parse_criteria",
    "parse_time",
    "zerr",
    "zoho_time",
]
