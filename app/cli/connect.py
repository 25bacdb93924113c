"""`crossledger connect`: sign a workspace in to a provider, the three ways the connect wizard offers.

* the app of the distribution profile, when this copy has one for the provider (no --client-id): the
  wizard's "Sign in to <Provider>", with the same PKCE, state and relay page (``connect_with_app``);
* your own app: --client-id and --client-secret, as before;
* an access token for one business (HubSpot private apps, Pipedrive personal API tokens), read from
  standard input (--access-token-stdin) or CROSSLEDGER_ACCESS_TOKEN so that it never shows in the shell
  history or the process list; one read checks it before it goes to the keyring (``connect_with_token``).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import webbrowser
from typing import Any

from app.cli.common import open_home, token_store

TOKEN_ENV = "CROSSLEDGER_ACCESS_TOKEN"  # noqa: S105 - the name of a variable, not a token
SANDBOX_SECRET = "crossledger-sandbox-secret"  # noqa: S105 - a local sandbox takes any secret
# Where a bookkeeper finds the token, in the words of each provider's own settings pages.
TOKEN_PLACE = {"hubspot": "Settings › Integrations › Private apps",
               "pipedrive": "Settings › Personal preferences › API"}


def _checked_url(text: str | None, flag: str, provider: str) -> str | None:
    from urllib.parse import urlsplit

    from app.connectors import hosts
    from app.ops.workspaces import UserError

    if text is None:
        return None
    try:
        parts = urlsplit(text)
        _ = parts.port  # a port that is not a number fails here
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        ok = False
    if not ok:
        raise UserError(f"'{text}' is not a web address. Give {flag} as http://… or https://…, for example "
                        "http://127.0.0.1:8765 for a sandbox.")
    try:
        return hosts.check_configured(provider, text, flag)
    except hosts.UntrustedHost as exc:
        raise UserError(exc.message) from None


def cmd_connect(args: argparse.Namespace) -> int:
    from app.connectors import registry
    from app.ops import workspaces

    base_url = _checked_url(args.base_url, "--base-url", args.provider)
    auth_url = _checked_url(args.auth_url, "--auth-url", args.provider)
    label = registry.info(args.provider).label
    if args.plan is not None:
        from app.ops.budget import plan_key
        from app.ops.workspaces import UserError

        if args.provider != "pipedrive":
            raise UserError(f"--plan is for Pipedrive, whose plan sets its daily API token budget; {label} needs "
                            "none. Leave it out.")
        args.plan = plan_key(args.plan)
    use_token = args.access_token_stdin or bool(os.environ.get(TOKEN_ENV))
    if use_token:
        _check_token_options(args, label)
    home, store = open_home(args)
    ws = workspaces.get_workspace(store, args.workspace)
    if use_token:
        return _connect_with_token(args, store, ws, base_url, label)
    return _sign_in(args, home, store, ws, base_url, auth_url, label)


# -- an access token for one business ----------------------------------------------------------------------

def _check_token_options(args: argparse.Namespace, label: str) -> None:
    from app.connectors import registry
    from app.ops.workspaces import UserError

    how = "--access-token-stdin" if args.access_token_stdin else TOKEN_ENV
    if not registry.takes_access_token(args.provider):
        unset = "" if args.access_token_stdin else f" (unset {TOKEN_ENV})"
        raise UserError(f"{label} has no access token for one business; leave out {how}{unset} and sign in: "
                        f"crossledger connect {args.provider} --workspace NAME.")
    extra = [flag for flag, value in (("--client-id", args.client_id), ("--client-secret", args.client_secret),
                                      ("--auth-url", args.auth_url)) if value is not None]
    if extra:
        raise UserError(f"An access token needs no app to sign in with: use {how} without {', '.join(extra)}.")


def _read_token(args: argparse.Namespace, label: str) -> str:
    from app.ops.workspaces import UserError

    if args.access_token_stdin:
        if sys.stdin is None:
            raise UserError("--access-token-stdin: there is no standard input to read the access token from.")
        if sys.stdin.isatty():  # typed or pasted at a prompt: not echoed, so not on the screen either
            token = getpass.getpass(f"{label} access token (not shown): ")
        else:
            token = sys.stdin.readline()
        where = "on standard input"
    else:
        token, where = os.environ.get(TOKEN_ENV, ""), f"in {TOKEN_ENV}"
    token = token.strip()
    if not token:
        raise UserError(f"No {label} access token came {where}. Copy it from {TOKEN_PLACE[args.provider]} and "
                        f"pipe it in, for example: crossledger connect {args.provider} --workspace NAME "
                        "--access-token-stdin < token.txt")
    if any(c.isspace() for c in token):
        raise UserError(f"The {label} access token {where} has spaces in it; a token has none. Copy it again, "
                        f"whole, from {TOKEN_PLACE[args.provider]}.")
    return token


def _connect_with_token(args: argparse.Namespace, store, ws, base_url: str | None, label: str) -> int:
    from app.connectors import registry
    from app.connectors.oauth import AccessTokenRefused
    from app.ops import workspaces
    from app.ops.connect import connect_with_token

    info = registry.info(args.provider)
    conn = workspaces.new_connection(ws, args.provider, base_url or info.default_base_url,
                                     None if base_url else info.default_auth_url)
    conn.client_id = ""  # no app: the token alone, as the wizard saves it
    token = _read_token(args, label)
    tokens = token_store()
    print(f"Checking the {label} access token for '{ws.name}' …")
    try:
        connect_with_token(conn, tokens, token)
    except AccessTokenRefused:
        raise workspaces.UserError(f"{label} refused this access token: check it was copied whole, from "
                                   f"{TOKEN_PLACE[args.provider]}. Nothing was saved.") from None
    _keep_plan(args, conn)
    workspaces.save_connection(store, ws, conn)
    print(f"Connected to {(conn.label or label).rstrip('.')} with the access token. It is saved in the system "
          "keyring.")
    _tell_budget(conn, ws.name)
    return 0


# -- signing in (OAuth) -------------------------------------------------------------------------------------

def _sign_in(args: argparse.Namespace, home, store, ws, base_url: str | None, auth_url: str | None,
             label: str) -> int:
    import httpx

    from app.connectors import registry
    from app.connectors.oauth import follow_redirects_opener
    from app.connectors.profile import load as load_profile
    from app.ops import workspaces
    from app.ops.connect import connect, connect_with_app

    info = registry.info(args.provider)
    own_app = args.client_id is not None or args.client_secret is not None
    reg = None if own_app else load_profile(home).get(args.provider)
    server = reg.server if reg is not None and base_url is None and auth_url is None else ""
    base = base_url or server or info.default_base_url
    conn = workspaces.new_connection(ws, args.provider, base,
                                     auth_url or (None if base_url or server else info.default_auth_url))
    if server:
        conn.extra["server"] = server
    local = any(h in (conn.auth_url or "") for h in ("127.0.0.1", "localhost"))
    tokens = token_store()  # no keyring: said first, whichever way the sign-in would go
    if reg is None and not own_app and not local:
        raise workspaces.UserError(
            f"This copy of Crossledger has no {label} app to sign in with. Give your own app's --client-id and "
            f"--client-secret (packaging/README.md says how to register one)"
            + (", or use an access token: --access-token-stdin." if registry.takes_access_token(args.provider)
               else "."))
    if args.client_id:
        conn.client_id = args.client_id

    def sandbox_browser(url: str) -> None:
        try:
            follow_redirects_opener(url)
        except httpx.HTTPError:
            raise workspaces.UserError(f"Crossledger could not reach {conn.auth_url} to sign in. Check the address "
                                       "given with --base-url (is the sandbox running?) and try again.") from None

    opener = sandbox_browser if local else _browser
    print(f"Connecting {label} to '{ws.name}' …")
    if reg is not None:
        connect_with_app(conn, tokens, reg, open_url=opener, timeout=args.timeout)
    else:
        secret = args.client_secret
        if secret is None and local:
            secret = SANDBOX_SECRET  # some providers require one; a local sandbox takes any
        connect(conn, tokens, client_secret=secret, open_url=opener, timeout=args.timeout)
    _keep_plan(args, conn)
    workspaces.save_connection(store, ws, conn)
    print(f"Connected to {(conn.label or label).rstrip('.')}. The sign-in is saved in the system keyring.")
    _tell_budget(conn, ws.name)
    return 0


def _keep_plan(args: argparse.Namespace, conn: Any) -> None:
    if args.plan is not None:
        conn.extra["plan"] = args.plan


def _tell_budget(conn: Any, workspace: str) -> None:
    """Pipedrive: the daily token budget the plan and seats make, and how to give the plan if it was not."""
    if conn.provider != "pipedrive":
        return
    from app.connectors.pipedrive_tokens import budget_of, plan_label, seats_label

    plan, seats, cap = budget_of(conn.extra)
    people = seats_label(seats)
    if plan is not None:
        print(f"Pipedrive {plan_label(plan)} plan, {people}: {cap:,} API tokens a day.")
    else:
        print(f"Pipedrive, {people}: {cap:,} API tokens a day if the plan is Lite, the smallest. If it is another, "
              f"say so and syncs may run more often: crossledger workspace set \"{workspace}\" --plan growth")


def _browser(url: str) -> None:
    print("Your browser will open to sign in. If it does not, open this address:\n  " + url)
    webbrowser.open(url)
