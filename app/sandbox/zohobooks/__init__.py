"""A faithful local imitation of Zoho Books API v3 and its Zoho Accounts OAuth server.

Follows Zoho Books' API documentation (www.zoho.com/books/api/v3; our schema of it in
tests/specs/zoho-books/):
data-centre aware OAuth (``location`` and ``accounts-server`` on the callback, ``api_domain`` in the
token response, both pointing at this server), refresh tokens that never rotate, one-hour access
tokens, ``Authorization: Zoho-oauthtoken``, ``organization_id`` on every call, ``{code, message}``
envelopes with ``code: 0`` on success, ``page``/``per_page`` (<= 200) paging with
``page_context.has_more_page``, ``last_modified_time`` filters and sorts, list endpoints that return
summaries only (details cost one GET per record), 100 requests per minute per organisation and a
daily cap by plan answered with 429 ``{"code": 45, ...}``.

Money is kept as strings in the state and sent as JSON numbers, computed with Zoho's rounding
(line totals to the organisation's price precision, tax once per rate on the whole invoice).

The imitation is a package along Zoho Books' concerns: ``shapes`` (envelope, errors, numbers), ``core``
(organisations, clock, currencies, taxes), ``oauth``, ``limits``, ``listing`` (search and pages,
settings), ``contacts``, ``items``, ``invoices``, ``payments``, ``seed``.
"""

from __future__ import annotations

from app.sandbox.zohobooks.seed import ZohoBooksSeed


class ZohoBooksSandbox(ZohoBooksSeed):
    """Zoho Books with its Zoho Accounts server, on one host (``api_domain`` = ``accounts-server``)."""


__all__ = ["ZohoBooksSandbox"]
