"""Won deals become invoices; invoice status flows back to the deal.

The decision is ``app.sync.invoice_plan`` (pure: deals, links, ledger invoices and items in; creates,
updates, holds, items and deal write-backs out); carrying it out is ``app.sync.invoice_apply``. This
module names what the rest of Crossledger uses of the two.
"""

from app.sync.invoice_apply import DEAL_FIELDS, InvoiceCounts, InvoiceSync, registry_label
from app.sync.invoice_plan import (
    CHANGED_LINES,
    CURRENCY_PER_CUSTOMER,
    ITEM_NAME_MAX,
    PRIOR_DAYS,
    REFERENCE_FIELD,
    STATUS_WORDS,
    UNIQUE_ITEM_NAMES,
    deal_digest,
    prior_invoice,
    reference_for,
    unique_item_names,
)

__all__ = ["CHANGED_LINES", "CURRENCY_PER_CUSTOMER", "DEAL_FIELDS", "ITEM_NAME_MAX", "PRIOR_DAYS", "REFERENCE_FIELD",
           "STATUS_WORDS", "UNIQUE_ITEM_NAMES", "InvoiceCounts", "InvoiceSync", "deal_digest", "prior_invoice",
           "reference_for", "registry_label", "unique_item_names"]
