"""A local imitation of Pipedrive's REST API (v2 records, v1 fields/recents/users) and its OAuth server.

Follows Pipedrive's public API documentation (developers.pipedrive.com; our schema of it in
tests/specs/pipedrive/): the v2 record shapes
(persons, organizations, deals, products, deal products, pipelines, stages) with cursor paging,
``updated_since`` and ``sort_by``; v1 ``recents`` (the change feed that also shows deletions),
``users/me``, merges of persons and organizations (``merges``) and the *Fields endpoints (custom
fields keyed by 40-character hashes); the
``success/data/additional_data`` envelope and its error bodies; token-cost rate limits (a daily
company budget priced by each operation's ``x-token-cost`` and a per-token burst window of 2 s)
answered with 429, ``Retry-After`` and the ``x-ratelimit-*`` headers; no duplicate check.
Money is kept as strings in the state and sent as exact JSON numbers.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from app.sandbox.base import SandboxApp
from app.sandbox.pipedrive.catalog import Catalog
from app.sandbox.pipedrive.changes import Changes
from app.sandbox.pipedrive.common import (
    ADDRESS_PARTS,
    CONTACTS_FULL,
    CONTACTS_READ,
    DEAL_KEYS,
    DEAL_PRODUCT_KEYS,
    DEALS_FULL,
    DEALS_READ,
    ENTITY_OF,
    ERROR_INFO,
    FIELD_TYPES_CREATABLE,
    HASH_RE,
    OPERATIONS,
    ORG_KEYS,
    PERSON_KEYS,
    PRODUCT_KEYS,
    STAGE_KEYS,
    api,
    dumps,
    parse_time,
    v1_time,
    v2_time,
)
from app.sandbox.pipedrive.contacts import Contacts
from app.sandbox.pipedrive.deals import Deals
from app.sandbox.pipedrive.limits import Limits
from app.sandbox.pipedrive.merges import Merges
from app.sandbox.pipedrive.oauth import OAuth
from app.sandbox.pipedrive.records import Records
from app.sandbox.pipedrive.seed import SeedData


class PipedriveSandbox(SeedData, OAuth, Limits, Records, Changes, Contacts, Merges, Deals, Catalog, SandboxApp):
    """Pipedrive for one company: OAuth, records, fields, recents and the token budget."""

    provider = "pipedrive"
    access_ttl = 3599
    refresh_ttl = 60 * 86400  # a refresh token dies when unused for 60 days; every use rotates it
    refresh_rotates = True
    refresh_grace = 0
    pkce_supported = False  # Pipedrive documents no PKCE: the token exchange always takes the client secret
    app_scopes = ("base,deals:full,contacts:full,products:full,deal-fields:full,contact-fields:full,"
                  "recents:read,search:read,users:read")
    # Token-based limits (reference §9): daily budget = 30,000 base tokens x plan multiplier x seats,
    # burst per access token per 2-second window (OAuth row of the Essential plan), search 10 / 2 s.
    base_tokens = 30_000
    plan_multiplier = 2
    seats = 3
    burst_limit = 80
    search_limit = 10
    burst_window = 2.0

    def __init__(self, state_file: str | None = None, *, clock: Callable[[], float] = time.time,
                 plan_multiplier: int | None = None, seats: int | None = None) -> None:
        """``plan_multiplier`` (1 Lite … 7 Ultimate) and ``seats`` make the company's daily token budget."""
        if plan_multiplier is not None:
            self.plan_multiplier = plan_multiplier
        if seats is not None:
            self.seats = seats
        super().__init__(state_file, clock=clock)


__all__ = [
    "ADDRESS_PARTS",
    "CONTACTS_FULL",
    "CONTACTS_READ",
    "DEALS_FULL",
    "DEALS_READ",
    "DEAL_KEYS",
    "DEAL_PRODUCT_KEYS",
    "ENTITY_OF",
    "ERROR_INFO",
    "FIELD_TYPES_CREATABLE",
    "HASH_RE",
    "OPERATIONS",
    "ORG_KEYS",
    "PERSON_KEYS",
    "PRODUCT_KEYS",
    "STAGE_KEYS",
    "PipedriveSandbox",
    "api",
    "dumps",
    "parse_time",
    "v1_time",
    "v2_time",
]
