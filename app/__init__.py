"""Crossledger: keeps a small business's CRM and accounting software in sync."""

__version__ = "0.1.0"
