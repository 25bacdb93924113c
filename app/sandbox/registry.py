"""Which imitation serves which provider.

The sandbox package alone knows its imitations; the connectors know nothing of them. Each entry is
``"module:Class"`` and is imported only when asked for, so serving one provider does not load the
other six.
"""

from __future__ import annotations

import importlib

SANDBOXES: dict[str, str] = {
    "hubspot": "app.sandbox.hubspot:HubSpotSandbox",
    "salesforce": "app.sandbox.salesforce:SalesforceSandbox",
    "pipedrive": "app.sandbox.pipedrive:PipedriveSandbox",
    "zohocrm": "app.sandbox.zohocrm:ZohoCrmSandbox",
    "quickbooks": "app.sandbox.quickbooks:QuickBooksSandbox",
    "xero": "app.sandbox.xero:XeroSandbox",
    "zohobooks": "app.sandbox.zohobooks:ZohoBooksSandbox",
}


def sandbox_class(provider: str) -> type:
    """The imitation of ``provider`` (a class; build it with an optional ``state_file``)."""
    try:
        target = SANDBOXES[provider]
    except KeyError:
        raise ValueError(f"There is no built-in sandbox for '{provider}'. "
                         f"Choose one of: {', '.join(SANDBOXES)}.") from None
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def has_sandbox(provider: str) -> bool:
    """Whether this build carries an imitation of ``provider`` (its module can be imported)."""
    try:
        sandbox_class(provider)
    except (ValueError, ImportError, AttributeError):
        return False
    return True
