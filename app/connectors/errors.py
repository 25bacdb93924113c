"""Typed connector errors. The UI maps these to messages; nobody matches on strings."""

from __future__ import annotations


class ConnectorError(Exception):
    """Base for every failure a connector reports."""

    retryable: bool = False

    def __init__(self, message: str, *, provider: str = "", status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.status = status
        self.code = code


class AuthExpired(ConnectorError):
    """The refresh token is dead or revoked: the user must reconnect."""


class Unauthorized(ConnectorError):
    """The access token was refused; a refresh may help."""


class RateLimited(ConnectorError):
    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, daily: bool = False, **kw):
        super().__init__(message, **kw)
        self.retry_after = retry_after
        self.daily = daily


class ServerError(ConnectorError):
    retryable = True


class TransportError(ConnectorError):
    """Timeout, reset or a body that could not be read: the outcome of a write is unknown."""

    retryable = True


class Forbidden(ConnectorError):
    """The sign-in lacks a permission (scope) this work needs: reconnect granting it."""


class NotFound(ConnectorError):
    pass


class Conflict(ConnectorError):
    """A record with the same identity exists (HubSpot 409, Salesforce DUPLICATES_DETECTED...)."""

    def __init__(self, message: str, *, existing_id: str | None = None, **kw):
        super().__init__(message, **kw)
        self.existing_id = existing_id


class DuplicateName(Conflict):
    """The ledger refuses a second customer with the same display name (QBO 6240, Xero)."""


class StaleVersion(ConnectorError):
    """The record changed since we read it (QBO 5010 stale SyncToken)."""


class ValidationRejected(ConnectorError):
    def __init__(self, message: str, *, field: str | None = None, **kw):
        super().__init__(message, **kw)
        self.field = field


class KeyringUnavailable(ConnectorError):
    """No usable OS keyring: tokens cannot be stored, and we never store them anywhere else."""


class CustomerInactive(ValidationRejected, NotFound):
    """The ledger refuses a document for a customer that is inactive, archived or gone (QuickBooks fault 610
    "Object Not Found" on ``CustomerRef``, hence also a NotFound). The message is in a bookkeeper's words;
    the provider's text is never shown."""

    def __init__(self, message: str, *, customer_id: str | None = None, **kw):
        super().__init__(message, field="customer", **kw)
        self.customer_id = customer_id


INACTIVE_CUSTOMER_TEXT = ("{ledger} refuses new invoices for this customer: it is inactive (archived) there. Make it "
                          "active again, or link the CRM record to the customer that replaced it.")
