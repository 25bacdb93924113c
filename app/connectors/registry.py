"""Which providers exist, and how to build a connector for one (their imitations are app.sandbox.registry's)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from app.connectors import hosts
from app.connectors.base import Connection
from app.connectors.oauth import FlowResult, OAuthConfig
from app.connectors.tokens import TokenStore


@dataclass(frozen=True, slots=True)
class ProviderInfo:
    """What the app needs to know about a provider before it has a connection.

    Each provider module exposes ``PROVIDER: ProviderInfo`` and:
      ``oauth_config(conn: Connection, client_secret: str | None) -> OAuthConfig``
      ``finish_connect(conn: Connection, flow: FlowResult, tokens: Tokens, transport) -> None``
         (fills conn.tenant_id / conn.base_url / conn.label from the token response or callback)
      optionally ``finish_token(conn, tokens, transport)``: the same for an access token the user pasted
      ``Connector(conn, tokens: TokenStore, *, transport=None, sleep=time.sleep, clock=time.monotonic)``
    """

    name: str
    kind: Literal["crm", "accounting"]
    label: str
    default_base_url: str
    default_auth_url: str
    needs_client_secret: bool = True
    web_url: str = ""


PROVIDER_MODULES: dict[str, str] = {
    "hubspot": "app.connectors.hubspot",
    "salesforce": "app.connectors.salesforce",
    "pipedrive": "app.connectors.pipedrive",
    "zohocrm": "app.connectors.zohocrm",
    "quickbooks": "app.connectors.quickbooks",
    "xero": "app.connectors.xero",
    "zohobooks": "app.connectors.zohobooks",
}

CRM_PROVIDERS = ("hubspot", "salesforce", "pipedrive", "zohocrm")
ACCOUNTING_PROVIDERS = ("quickbooks", "xero", "zohobooks")


def module(name: str) -> Any:
    try:
        return importlib.import_module(PROVIDER_MODULES[name])
    except KeyError:
        raise ValueError(
            f"Unknown provider '{name}'. Choose one of: {', '.join(PROVIDER_MODULES)}."
        ) from None


def available(kind: str | None = None) -> list[str]:
    """Providers whose connector module is present in this build."""
    names = []
    for name, mod in PROVIDER_MODULES.items():
        if kind and name not in (CRM_PROVIDERS if kind == "crm" else ACCOUNTING_PROVIDERS):
            continue
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError:
            continue
        names.append(name)
    return names


def info(name: str) -> ProviderInfo:
    return module(name).PROVIDER


def label(name: str) -> str:
    """The provider's name as its users know it ("QuickBooks Online"); an unknown name is given back as it is."""
    try:
        return info(name).label
    except (KeyError, ModuleNotFoundError):
        return name


def oauth_config(conn: Connection, client_secret: str | None) -> OAuthConfig:
    """The provider's OAuth endpoints, on its own hosts only (or the sandbox the user configured)."""
    config = module(conn.provider).oauth_config(conn, client_secret)
    hosts.check_configured(conn.provider, config.authorize_url, "--auth-url")
    hosts.check_configured(conn.provider, config.token_url, "--auth-url")
    return config


def finish_connect(conn: Connection, flow: FlowResult, tokens: Any, transport: httpx.BaseTransport | None) -> None:
    module(conn.provider).finish_connect(conn, flow, tokens, transport)


def takes_access_token(name: str) -> bool:
    """The provider offers a token for one business instead of OAuth (HubSpot private apps, Pipedrive's
    personal API token): its module has ``finish_token(conn, tokens, transport)``."""
    return hasattr(module(name), "finish_token")


def finish_token(conn: Connection, tokens: Any, transport: httpx.BaseTransport | None) -> None:
    module(conn.provider).finish_token(conn, tokens, transport)


def make_connector(
    conn: Connection,
    tokens: TokenStore,
    *,
    transport: httpx.BaseTransport | None = None,
    sleep: Callable[[float], None] | None = None,
    clock: Callable[[], float] | None = None,
) -> Any:
    hosts.check_configured(conn.provider, conn.base_url, "--base-url")  # records go to the provider only
    hosts.check_configured(conn.provider, conn.auth_url, "--auth-url")
    kw: dict[str, Any] = {"transport": transport}
    if sleep is not None:
        kw["sleep"] = sleep
    if clock is not None:
        kw["clock"] = clock
    return module(conn.provider).Connector(conn, tokens, **kw)

