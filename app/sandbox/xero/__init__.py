"""A faithful local imitation of the Xero Accounting API 2.0 and Xero's identity service.

Follows Xero's API documentation (developer.xero.com) and the official OpenAPI documents in
tests/specs/xero/:
- Identity: ``/identity/connect/authorize`` (PKCE required, S256), ``/connect/token`` (30-minute access
  tokens; refresh tokens rotate on every use, the previous one living 30 more minutes, or until its
  successor is used; no refresh token without ``offline_access``), ``/connect/revocation`` and
  ``/connections`` (the organisations a sign-in reaches; every Accounting call names one in
  ``xero-tenant-id``, else 403 ``AuthenticationUnsuccessful``).
- Accounting: Contacts, Items, Invoices, Payments, Organisation under ``/api.xro/2.0`` with Xero's
  envelopes, ``/Date(ms+0000)/`` dates, ``page``/``pageSize`` (<= 1000) with ``pagination``,
  ``If-Modified-Since`` (second precision), ``where`` (a subset: ``==``, ``!=``, comparisons, ``&&``,
  ``||``, ``StartsWith``/``Contains``/``EndsWith``, ``Guid("..")``, ``DateTime(y,m,d)``), ``searchTerm``,
  ``IDs``, ``includeArchived`` and ``order``. PUT creates, POST creates or updates (a POST whose contact
  name matches an active contact updates it). ``summarizeErrors`` defaults to true (one failing element
  makes the answer a 400, the valid ones still saved); ``false`` answers each element in order.
  ``Idempotency-Key`` replays the first answer. Contact names are unique among active contacts.
- Invoices: Xero's arithmetic (line amount to the cent after the discount rate, tax rounded per line,
  Exclusive/Inclusive/NoTax), statuses and their transitions, payments that move AmountPaid/AmountDue.
- Limits per organisation: 5 in flight, 60 a minute, 5,000 a day (and 10,000 a minute per app), answered
  with 429, ``X-Rate-Limit-Problem`` and ``Retry-After``; the ``X-*Limit-Remaining`` headers on every answer.

Validation messages quoted by the reference or the spec are exact; the few others are close wording.

The imitation is a package along Xero's concerns: ``shapes`` (wire forms, errors), ``core`` (tenants,
ids, envelope), ``limits``, ``oauth`` (identity, connections), ``where`` (list reads), ``batch`` (bulk
writes, idempotency), ``contacts``, ``items``, ``invoices`` and ``arithmetic``, ``payments``, ``seed``.
"""

from __future__ import annotations

from app.sandbox.xero.seed import XeroSeed


class XeroSandbox(XeroSeed):
    """Xero's identity service and Accounting API on one host."""


__all__ = ["XeroSandbox"]
