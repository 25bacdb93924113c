"""The distribution profile: the provider apps a build of Crossledger signs in with.

A bookkeeper should not register seven developer apps. Whoever distributes Crossledger registers one
app per provider and writes a TOML file, ``distribution-profile.toml``::

    [quickbooks]
    client_id = "AB…"
    client_secret = "…"          # only where the provider requires one (see SECRET_REQUIRED)
    redirect = "relay"           # "loopback" (http://127.0.0.1:<port>/callback) or "relay"
    relay_url = "https://example.org/crossledger/quickbooks.html"
    port = 47615                 # the loopback port registered with the app (0: any free port)

    [xero]
    client_id = "…"              # a public client: PKCE, no secret

``packaging/build_linux.sh`` bakes the builder's file (``CROSSLEDGER_PROFILE``) into the bundle; a user
or an IT department may also drop one into the data folder, whose entries win provider by provider.
Nothing in the source tree holds a registration. See packaging/README.md.
"""

from __future__ import annotations

import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from app.connectors import hosts
from app.connectors.errors import ConnectorError

FILE_NAME = "distribution-profile.toml"
DEFAULT_PORT = 47615  # the redirect URL registered with each app: http://127.0.0.1:47615/callback
PROVIDERS = ("hubspot", "salesforce", "pipedrive", "zohocrm", "quickbooks", "xero", "zohobooks")
# Their documentation allows a public client (PKCE, no secret): the app is used without one.
PUBLIC_CLIENTS = frozenset({"xero", "salesforce"})
SECRET_REQUIRED = frozenset(PROVIDERS) - PUBLIC_CLIENTS
REDIRECTS = ("loopback", "relay")


class ProfileError(ConnectorError):
    """A distribution profile that cannot be used, with the file and the line to fix."""


@dataclass(frozen=True, slots=True)
class AppRegistration:
    """One provider's app, as the distribution profile gives it."""

    provider: str
    client_id: str
    client_secret: str | None = None
    redirect: str = "loopback"
    port: int = DEFAULT_PORT
    relay_url: str = ""
    server: str = ""  # a local test server instead of the provider (sandboxes, tests); never a real host
    source: str = ""  # the file it came from

    @property
    def redirect_uri(self) -> str:
        """What is registered with the provider's app and sent with every authorization request."""
        return self.relay_url if self.redirect == "relay" else f"http://127.0.0.1:{self.port}/callback"


def parse(text: str, source: str = FILE_NAME) -> dict[str, AppRegistration]:
    """The registrations in a profile's text; ProfileError names the file and the entry that is wrong."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{source} is not a valid TOML file ({exc}).") from exc
    out: dict[str, AppRegistration] = {}
    for provider, entry in raw.items():
        where = f"{source}, [{provider}]"
        if provider not in PROVIDERS:
            raise ProfileError(f"{where}: unknown provider; use one of {', '.join(PROVIDERS)}.")
        if not isinstance(entry, dict):
            raise ProfileError(f"{where}: expected a table of settings.")
        out[provider] = _registration(provider, entry, where, source)
    return out


def _registration(provider: str, entry: dict[str, Any], where: str, source: str) -> AppRegistration:
    unknown = set(entry) - {"client_id", "client_secret", "redirect", "relay_url", "port", "server"}
    if unknown:
        raise ProfileError(f"{where}: unknown setting {', '.join(sorted(unknown))}.")
    client_id = str(entry.get("client_id") or "").strip()
    if not client_id:
        raise ProfileError(f"{where}: client_id is missing.")
    secret = str(entry.get("client_secret") or "").strip() or None
    if provider in PUBLIC_CLIENTS and secret:
        raise ProfileError(f"{where}: leave client_secret out. This provider signs a desktop app in with PKCE "
                           "and no secret; register the app as a public client.")
    if provider in SECRET_REQUIRED and not secret:
        raise ProfileError(f"{where}: client_secret is missing; this provider requires it at its token endpoint.")
    redirect = str(entry.get("redirect") or "loopback")
    if redirect not in REDIRECTS:
        raise ProfileError(f"{where}: redirect must be \"loopback\" or \"relay\".")
    port = entry.get("port", DEFAULT_PORT)
    if not isinstance(port, int) or not (port == 0 or 1024 <= port <= 65535):
        raise ProfileError(f"{where}: port must be a number between 1024 and 65535 (or 0: any free port, "
                           "for a provider that accepts any loopback port).")
    relay_url = str(entry.get("relay_url") or "").strip()
    if redirect == "relay":
        parts = urlsplit(relay_url)
        local = bool(parts.hostname) and hosts.is_test_host(parts.hostname or "")
        if not parts.hostname or (parts.scheme != "https" and not (local and parts.scheme == "http")):
            raise ProfileError(f"{where}: relay_url must be the https address of the relay page.")
    server = str(entry.get("server") or "").strip().rstrip("/")
    if server and not ((h := urlsplit(server).hostname) and hosts.is_test_host(h)):
        raise ProfileError(f"{where}: server may only name a local test server (such as a sandbox).")
    return AppRegistration(provider, client_id, secret, redirect, port, relay_url, server, source)


def bundled_path() -> Path | None:
    """The profile baked into a built bundle (PyInstaller's folder); None when running from source."""
    bundle = getattr(sys, "_MEIPASS", None)
    return Path(bundle) / FILE_NAME if bundle else None


def load(home: Path | None) -> dict[str, AppRegistration]:
    """The bundle's profile, then the data folder's (``home``), whose entries win provider by provider."""
    out: dict[str, AppRegistration] = {}
    for path in (bundled_path(), home / FILE_NAME if home is not None else None):
        if path is not None and path.is_file():
            out.update(parse(path.read_text(encoding="utf-8"), str(path)))
    return out


def main(argv: list[str]) -> int:
    """``python -m app.connectors.profile FILE``: check a profile before it is baked into a build."""
    if len(argv) != 1:
        print("usage: python -m app.connectors.profile distribution-profile.toml", file=sys.stderr)
        return 2
    try:
        found = parse(Path(argv[0]).read_text(encoding="utf-8"), argv[0])
    except (OSError, ProfileError) as exc:
        print(getattr(exc, "message", str(exc)), file=sys.stderr)
        return 1
    for reg in found.values():
        kind = "secret" if reg.client_secret else "public client"
        print(f"{reg.provider}: {kind}, redirect {reg.redirect_uri}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
