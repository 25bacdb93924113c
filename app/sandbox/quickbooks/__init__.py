"""A faithful local imitation of the QuickBooks Online Accounting API v3 and Intuit's OAuth server.

Follows Intuit's QuickBooks Online API documentation (developer.intuit.com) and the XSDs in
tests/specs/quickbooks/ for every field name:

- OAuth at Intuit's real paths: authorize ``/connect/oauth2`` (auto-approves, ``realmId`` in the
  callback), tokens ``/oauth2/v1/tokens/bearer`` (client secret required, Basic or post), revoke
  ``/v2/oauth2/tokens/revoke``. Access tokens live an hour; refresh tokens roll for ~100 days and rotate
  (a new value on every refresh; the old one keeps working for a short grace, as community reports say).
- ``/v3/company/{realmId}/...``: entity create/read/sparse+full update with ``SyncToken`` (5010 when
  stale), ``?operation=delete|void``, the SQL-like ``query`` (a real small parser: ``=``, ``<``, ``>``,
  ``<=``, ``>=``, ``IN``, ``LIKE``, ``AND``, ``ORDERBY``, ``STARTPOSITION``, ``MAXRESULTS`` <= 1000,
  ``count(*)``), ``cdc`` (30-day look-back, 1000 objects shared across entities, tombstones),
  ``batch`` (<= 30 items, serial, per-item Fault, answers keyed by bId in no promised order),
  ``requestid`` replay (the original answer, nothing executed twice), ``companyinfo`` and ``preferences``.
- Rules: DisplayName unique (case-insensitive) across customers, vendors and employees (6240);
  ``Amount = Qty x UnitPrice`` rounded half-up to cents; references must exist and be active (610);
  invoice totals, discounts and balances computed the way QBO does; voided invoices keep their lines
  with zero amounts and a "Voided" private note; deactivated names gain " (deleted)".
- Limits: 500 requests a minute per realm and 40 batch calls a minute per realm, answered with 429 and
  no Retry-After (none is documented).
- Errors in QBO's Fault envelope ``{"Fault": {"Error": [{"Message", "Detail", "code", "element"}],
  "type"}, "time"}``; authentication failures use the lower-case ``fault``/``error`` keys QBO sends.

Money is kept as strings in the state and sent as JSON numbers; every response carries ``intuit_tid``.

The imitation is a package along QBO's concerns: ``schema`` (field names), ``faults`` (errors, numbers),
``core`` (companies, times), ``limits``, ``oauth``, ``customers`` (names, items), ``sales`` (invoices,
credit memos), ``payments``, ``records`` (writes, entity routes), ``query``, ``cdc``, ``batch``, ``seed``.
"""

from __future__ import annotations

from app.sandbox.quickbooks.seed import QboSeed


class QuickBooksSandbox(QboSeed):
    """One QuickBooks Online company (more can be added) behind Intuit's OAuth server."""


__all__ = ["QuickBooksSandbox"]
