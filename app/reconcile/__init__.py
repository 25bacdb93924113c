"""Monthly reconciliation: CRM revenue against the books, every discrepancy flagged."""
