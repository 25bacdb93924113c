"""A local imitation of Salesforce's REST API (one org) and its OAuth server.

Follows Salesforce's REST API documentation (developer.salesforce.com) and
tests/specs/salesforce/salesforce-rest-subset.openapi.yaml:
- OAuth web-server flow with PKCE at /services/oauth2/{authorize,token,revoke,introspect}; token
  responses carry instance_url, id (identity URL with org and user IDs), issued_at and signature,
  never expires_in; sessions last two hours (extended when used past half-time); refresh tokens do
  not rotate unless the app is set to rotate them; 401 INVALID_SESSION_ID bodies.
- REST under /services/data/vNN.0/: sObject CRUD and describe, SOQL query/queryAll with a small
  real parser (SELECT fields, parent fields, child subqueries, COUNT(), WHERE with AND/OR/NOT,
  comparisons, IN, LIKE, ORDER BY, LIMIT, OFFSET) and nextRecordsUrl paging (2000 a batch),
  getUpdated/getDeleted, SOSL search (FIND {...} IN ... FIELDS RETURNING ... LIMIT), sObject
  Collections (200 records, allOrNone), Composite (25 subrequests,
  @{ref.field} references), limits, Tooling CustomField creation.
- Error bodies are JSON arrays of {message, errorCode, fields}; duplicate rules on Account Name and
  Contact Email answer DUPLICATES_DETECTED with a duplicateResult (the short form in Collections).
- The daily API allocation (rolling 24 h) is reported in Sforce-Limit-Info on every response and
  enforced with 403 REQUEST_LIMIT_EXCEEDED (Salesforce never answers 429).
- Custom fields created through the Tooling API are invisible until field-level security is
  granted through a permission set assigned to the user, as in a real org.
Money is kept as Decimal strings in the state and printed as exact JSON numbers.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from app.sandbox.base import SandboxApp
from app.sandbox.salesforce.batch import Batch
from app.sandbox.salesforce.changes import Changes
from app.sandbox.salesforce.common import (
    API_VERSIONS,
    B62,
    BATCH_DEFAULT,
    CASCADE,
    CHECK,
    CHILD_RELATIONSHIPS,
    COLLECTION_MAX,
    COMPOSITE_MAX,
    COMPOSITE_QUERIES_MAX,
    CURRENCY_OBJECTS,
    CUSTOM_NAME_RE,
    DATA,
    DAY,
    DELETED_DAYS,
    EMAIL_RE,
    FORECAST,
    ID_RE,
    INNER,
    LABELS,
    LOCATOR_IDLE,
    MAX_LOCATORS,
    NO_SUCH_COLUMN_HINT,
    NUMBER_TYPES,
    OWNED,
    PREFIX,
    READ_ONLY_OBJECTS,
    RETRIEVE_MAX,
    SESSION_TTL,
    STAGES,
    STANDARD,
    TEXT_TYPES,
    TOOLING_TYPES,
    TYPE_OF_PREFIX,
    UPDATED_DAYS,
    RecordError,
    api,
    checksum,
    dumps,
    fmt_dt,
    make_id,
    norm_id,
    parse_dt,
)
from app.sandbox.salesforce.describe import Describe
from app.sandbox.salesforce.limits import Limits
from app.sandbox.salesforce.oauth import OAuth
from app.sandbox.salesforce.query import Query
from app.sandbox.salesforce.records import Records
from app.sandbox.salesforce.search import Search
from app.sandbox.salesforce.seed import SeedData
from app.sandbox.salesforce.soql import KEYWORDS, SoqlError, SoqlParser, tokenize


class SalesforceSandbox(SeedData, Describe, Records, OAuth, Limits, Query, Changes, Batch, Search, SandboxApp):
    """One Salesforce org: OAuth, sObjects, SOQL, replication, collections, composite and limits."""

    provider = "salesforce"
    access_ttl = SESSION_TTL
    refresh_ttl = None  # "valid until revoked", the default refresh token policy
    refresh_grace = 0

    def __init__(self, state_file: str | None = None, *, clock: Callable[[], float] = time.time,
                 multicurrency: bool = True, api_max: int = 15_000, rotate_refresh: bool = False,
                 admin: bool = True) -> None:
        self.multicurrency = multicurrency
        self.api_max = api_max  # Developer Edition's 15,000 a rolling day
        self.refresh_rotates = rotate_refresh
        self.admin = admin  # the user has "Customize Application" (Tooling API field creation)
        self.consumer_secret = "sandbox-secret"
        self._inner_key = secrets.token_hex(8)
        self._locators: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._signing_secret: str | None = None
        super().__init__(state_file, clock=clock)
        self.demo_ids = dict(self.state.get("demo_ids") or {})


__all__ = [
    "API_VERSIONS",
    "B62",
    "BATCH_DEFAULT",
    "CASCADE",
    "CHECK",
    "CHILD_RELATIONSHIPS",
    "COLLECTION_MAX",
    "COMPOSITE_MAX",
    "COMPOSITE_QUERIES_MAX",
    "CURRENCY_OBJECTS",
    "CUSTOM_NAME_RE",
    "DATA",
    "DAY",
    "DELETED_DAYS",
    "EMAIL_RE",
    "FORECAST",
    "ID_RE",
    "INNER",
    "KEYWORDS",
    "LABELS",
    "LOCATOR_IDLE",
    "MAX_LOCATORS",
    "NO_SUCH_COLUMN_HINT",
    "NUMBER_TYPES",
    "OWNED",
    "PREFIX",
    "READ_ONLY_OBJECTS",
    "RETRIEVE_MAX",
    "SESSION_TTL",
    "STAGES",
    "STANDARD",
    "TEXT_TYPES",
    "TOOLING_TYPES",
    "TYPE_OF_PREFIX",
    "UPDATED_DAYS",
    "RecordError",
    "SalesforceSandbox",
    "SoqlError",
    "SoqlParser",
    "api",
    "checksum",
    "dumps",
    "fmt_dt",
    "make_id",
    "norm_id",
    "parse_dt",
    "tokenize",
]
