"""What the connect wizard's account step asks for each provider, with the help that sits next to each field.

Three ways to a real account: the app of the distribution profile (one "Sign in" button), the client's
own app (client ID, secret where the provider requires one, the redirect URL to register), or an access
token for one business where the provider offers one (HubSpot private apps, Pipedrive personal API tokens).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.connectors import registry
from app.connectors.profile import DEFAULT_PORT, PUBLIC_CLIENTS


@dataclass(frozen=True, slots=True)
class Choice:
    value: str
    label: str


@dataclass(frozen=True, slots=True)
class Endpoint:
    base_url: str
    auth_url: str


ZOHO_DCS: dict[str, tuple[str, Endpoint]] = {
    "us": ("United States (zoho.com)", Endpoint("https://www.zohoapis.com", "https://accounts.zoho.com")),
    "eu": ("Europe (zoho.eu)", Endpoint("https://www.zohoapis.eu", "https://accounts.zoho.eu")),
    "uk": ("United Kingdom (zoho.uk)", Endpoint("https://www.zohoapis.uk", "https://accounts.zoho.uk")),
    "in": ("India (zoho.in)", Endpoint("https://www.zohoapis.in", "https://accounts.zoho.in")),
    "au": ("Australia (zoho.com.au)", Endpoint("https://www.zohoapis.com.au", "https://accounts.zoho.com.au")),
    "jp": ("Japan (zoho.jp)", Endpoint("https://www.zohoapis.jp", "https://accounts.zoho.jp")),
    "ca": ("Canada (zohocloud.ca)", Endpoint("https://www.zohoapis.ca", "https://accounts.zohocloud.ca")),
    "sa": ("Saudi Arabia (zoho.sa)", Endpoint("https://www.zohoapis.sa", "https://accounts.zoho.sa")),
    "cn": ("China (zoho.com.cn)", Endpoint("https://www.zohoapis.com.cn", "https://accounts.zoho.com.cn")),
}
SALESFORCE_ENVS = {"production": "Production (login.salesforce.com)",
                   "sandbox": "Sandbox org (test.salesforce.com)",
                   "mydomain": "My Domain (your company's own sign-in address)"}
QBO_ENVS = {"production": "Production (real companies)", "sandbox": "Sandbox company (Intuit developer sandbox)"}

# Where each provider's own app shows its client ID (and secret), and what it calls the redirect URL.
_APP_PAGES = {
    "hubspot": ("In your HubSpot developer account open Apps, then your app's Auth tab", "a redirect URL"),
    "salesforce": ("In Salesforce Setup open External Client App Manager, then your app's OAuth settings "
                   "(the Consumer Key is the client ID)", "a callback URL"),
    "pipedrive": ("In Pipedrive's Developer Hub open your app, then OAuth & access scopes", "its callback URL"),
    "zohocrm": ("In the Zoho API console of your data centre (api-console.zoho.com, .eu, .in …) open your "
                "Server-based Application", "an authorized redirect URI"),
    "quickbooks": ("At developer.intuit.com open your app, then Keys and credentials (Production keys for real "
                   "companies, Development keys for a sandbox company)", "a redirect URI"),
    "xero": ("At developer.xero.com open My Apps, then your app (type: Auth code with PKCE)", "a redirect URI"),
}
_APP_PAGES["zohobooks"] = _APP_PAGES["zohocrm"]

# A token for one business instead of OAuth, and where the client finds it.
_TOKEN_HELP = {
    "hubspot": ("In HubSpot open Settings → Integrations → Private Apps (Legacy apps), open the app and copy its "
                "access token (it starts with pat-). It needs the CRM read and write scopes for companies, "
                "contacts, deals and products."),
    "pipedrive": ("In Pipedrive open Settings → Personal preferences → API and copy your personal API token. "
                  "Crossledger then works with your user's access rights."),
}


@dataclass(frozen=True, slots=True)
class ProviderSetup:
    """What the account step asks for one provider, and the help written next to each field."""

    provider: str
    label: str
    needs_secret: bool
    environment_label: str = ""
    environments: tuple[Choice, ...] = ()
    default_environment: str = ""
    client_id_help: str = ""
    secret_help: str = ""
    redirect_help: str = ""
    environment_help: str = ""
    token_help: str = ""  # empty: the provider offers no access token for one business

    @property
    def help(self) -> str:
        """All of the own-app help in one paragraph (the CLI and the docs)."""
        return " ".join(t for t in (self.client_id_help, self.secret_help, self.redirect_help) if t)


def redirect_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/callback"


def setup_for(provider: str, port: int = DEFAULT_PORT) -> ProviderSetup:
    info = registry.info(provider)
    where, redirect_word = _APP_PAGES.get(provider, ("Open your app's settings", "a redirect URL"))
    public = provider in PUBLIC_CLIENTS
    envs: tuple[Choice, ...] = ()
    env_label = env_default = env_help = ""
    if provider == "salesforce":
        envs, env_label, env_default = tuple(Choice(k, v) for k, v in SALESFORCE_ENVS.items()), "Salesforce org", \
            "production"
        env_help = "A sandbox org signs in at test.salesforce.com; My Domain at your company's own address."
    elif provider in ("zohocrm", "zohobooks"):
        envs, env_label, env_default = tuple(Choice(k, v[0]) for k, v in ZOHO_DCS.items()), "Zoho data centre", "us"
        env_help = "The data centre your Zoho account lives in: it is in your Zoho address (zoho.eu, zoho.in …)."
    elif provider == "quickbooks":
        envs, env_label, env_default = tuple(Choice(k, v) for k, v in QBO_ENVS.items()), "QuickBooks environment", \
            "production"
        env_help = "Production for real companies; a sandbox company needs your app's Development keys."
    return ProviderSetup(
        provider, info.label, not public and info.needs_client_secret, env_label, envs, env_default,
        client_id_help=f"{where}, and copy the client ID.",
        secret_help=("Only if your app was made with a secret; a public (PKCE) app has none." if public else
                     "On the same page as the client ID. Kept in the system keyring only, never in Crossledger's "
                     "files."),
        redirect_help=f"Add {redirect_url(port)} to your app as {redirect_word}.",
        environment_help=env_help,
        token_help=_TOKEN_HELP.get(provider, "") if registry.takes_access_token(provider) else "",
    )


def endpoints(provider: str, environment: str = "", my_domain: str = "") -> Endpoint:
    """Where a real account of ``provider`` lives, by data centre or environment."""
    info = registry.info(provider)
    if provider in ("zohocrm", "zohobooks"):
        return ZOHO_DCS.get(environment or "us", ZOHO_DCS["us"])[1]
    if provider == "salesforce":
        if environment == "sandbox":
            return Endpoint("https://test.salesforce.com", "https://test.salesforce.com")
        if environment == "mydomain":
            host = my_domain_url(my_domain)
            return Endpoint(host, host)
        return Endpoint(info.default_base_url, info.default_auth_url)
    if provider == "quickbooks" and environment == "sandbox":
        return Endpoint("https://sandbox-quickbooks.api.intuit.com", info.default_auth_url)
    return Endpoint(info.default_base_url, info.default_auth_url)


def my_domain_url(text: str) -> str:
    """'acme', 'acme.my.salesforce.com', 'https://acme.lightning.force.com/' -> the My Domain sign-in URL."""
    host = re.sub(r"^https?://", "", text.strip(), flags=re.I).split("/")[0].lower()
    host = re.sub(r"\.lightning\.force\.com$", ".my.salesforce.com", host)
    if "." not in host:
        host += ".my.salesforce.com"
    return "https://" + host


def valid_my_domain(text: str) -> bool:
    if not text.strip():
        return False
    return bool(re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)+", my_domain_url(text)[len("https://"):]))
