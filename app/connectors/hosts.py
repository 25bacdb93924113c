"""The only hosts Crossledger sends tokens, client secrets and API calls to, per provider.

A URL the provider hands back during sign-in (Salesforce's ``instance_url``, Pipedrive's and Zoho's
``api_domain``, Zoho's ``accounts-server``) is used only when its host is on this list, over https.
A sandbox or test server (loopback, ``localhost``, a ``.test`` name) is accepted only where the user
configured it explicitly (``--base-url`` / ``--auth-url``), and a URL handed back during sign-in may
point at it only when it is that same configured server.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from app.connectors.errors import ConnectorError

# Zoho's data centres: accounts.zoho.<dc> signs in, www.zohoapis.<dc> answers the API.
ZOHO_DCS = ("com", "eu", "in", "com.au", "jp", "ca", "sa", "com.cn")
_ZOHO = (*(f"accounts.zoho.{dc}" for dc in ZOHO_DCS), "accounts.zohocloud.ca",
         *(f"www.zohoapis.{dc}" for dc in ZOHO_DCS), *(f"zohoapis.{dc}" for dc in ZOHO_DCS))

# Exact host names; an entry starting with "." allows any name under that domain (one org each).
ALLOWED: dict[str, tuple[str, ...]] = {
    "hubspot": ("app.hubspot.com", "app-eu1.hubspot.com", "api.hubapi.com", "api-eu1.hubapi.com",
                "api.hubspot.com"),
    "salesforce": ("login.salesforce.com", "test.salesforce.com", ".my.salesforce.com", ".salesforce.com",
                   ".force.com"),
    "pipedrive": ("oauth.pipedrive.com", "api.pipedrive.com", ".pipedrive.com"),
    "quickbooks": ("appcenter.intuit.com", "oauth.platform.intuit.com", "quickbooks.api.intuit.com",
                   "sandbox-quickbooks.api.intuit.com", "developer.api.intuit.com"),
    "xero": ("login.xero.com", "identity.xero.com", "api.xero.com"),
    "zohocrm": _ZOHO,
    "zohobooks": _ZOHO,
}

LABELS = {"hubspot": "HubSpot", "salesforce": "Salesforce", "pipedrive": "Pipedrive", "quickbooks": "QuickBooks",
          "xero": "Xero", "zohocrm": "Zoho CRM", "zohobooks": "Zoho Books"}


class UntrustedHost(ConnectorError):
    """A URL whose host is not one of the provider's: nothing is sent to it."""


def _host(url: str | None) -> tuple[str, str, int | None] | None:
    """(scheme, host, port) of ``url``; None when it is not an http(s) URL with a host."""
    if not url:
        return None
    try:
        parts = urlsplit(str(url).strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return parts.scheme.lower(), parts.hostname.lower().rstrip("."), port


def is_test_host(host: str) -> bool:
    """Loopback, ``localhost`` or a reserved ``.test`` name: sandboxes and tests only."""
    if host in ("localhost", "test") or host.endswith((".localhost", ".test")):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _listed(provider: str | None, host: str) -> bool:
    lists = [ALLOWED.get(provider, ())] if provider else list(ALLOWED.values())
    return any(host == entry or (entry.startswith(".") and host.endswith(entry)) for entries in lists
               for entry in entries)


def allowed(provider: str | None, url: str | None) -> bool:
    """``url`` is https on one of ``provider``'s hosts (any provider's when None)."""
    parsed = _host(url)
    return parsed is not None and parsed[0] == "https" and _listed(provider, parsed[1])


def configured_ok(provider: str | None, url: str | None) -> bool:
    """A URL the user configured: the provider's own hosts, or a sandbox/test server."""
    parsed = _host(url)
    return parsed is not None and (allowed(provider, url) or is_test_host(parsed[1]))


def check_configured(provider: str | None, url: str | None, what: str = "address") -> str:
    if url and not configured_ok(provider, url):
        name = LABELS.get(provider or "", "the provider")
        raise UntrustedHost(f"{url} is not an address of {name}, so Crossledger will not send sign-ins or "
                            f"records there. Leave the {what} out to use {name}'s own, or give a local sandbox's "
                            "address.", provider=provider or "")
    return url or ""


def from_provider(provider: str, url: str | None, configured: Iterable[str | None]) -> bool:
    """A URL handed back during sign-in may be used: the provider's own host over https, or exactly the
    sandbox/test server the user configured."""
    if allowed(provider, url):
        return True
    parsed = _host(url)
    if parsed is None or not is_test_host(parsed[1]):
        return False
    return any(_origin(c) == _origin(url) for c in configured if c and (h := _host(c)) and is_test_host(h[1]))


def _origin(url: str | None) -> tuple[str, str, int] | None:
    parsed = _host(url)
    if parsed is None:
        return None
    scheme, host, port = parsed
    return scheme, host, port or (443 if scheme == "https" else 80)


def take_data_centre(provider: str, conn: Any, token_body: dict[str, Any], callback: dict[str, str]) -> None:
    """Zoho: the data centre's API domain (token answer) and accounts server (callback), when they are
    Zoho's own (or the sandbox the user configured); anything else is ignored and the configured ones kept."""
    configured = (conn.base_url, conn.auth_url)
    api_domain = token_body.get("api_domain")
    if api_domain and from_provider(provider, str(api_domain), configured):
        conn.base_url = str(api_domain).rstrip("/")
    server = callback.get("accounts-server")
    if server and from_provider(provider, server, configured):
        conn.auth_url = server.rstrip("/")
