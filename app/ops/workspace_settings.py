"""A workspace's sync settings as the command line reads and writes them.

The window's mapping wizard and Settings page write the same keys (``direction``, ``rules``,
``schedule``), so a setting made in one place is the setting everywhere. Values are checked
before anything is saved; a bad one raises UserError naming what is accepted.
"""

from __future__ import annotations

import re
from typing import Any

from app.domain.models import PARTY_FIELDS
from app.ops.workspaces import UserError, get_workspace, update_settings
from app.store.db import Store

DIRECTIONS = {"both": "both", "crm-to-accounting": "crm_to_acct", "accounting-to-crm": "acct_to_crm", "off": "off"}
DIRECTION_WORDS = {v: k for k, v in DIRECTIONS.items()}
INVOICE_DIRECTIONS = {"both": "both", "on": "both", "off": "off"}
RULES = {"crm": "crm", "accounting": "accounting", "recent": "recent", "ask": "ask"}
SCHEDULE_DEFAULTS = {"realtime_minutes": 2, "batch_hour": 2, "reconcile_day": 1, "paused": False}


def parse_direction(text: str) -> dict[str, str]:
    """``both`` (customers) or ``customer=…,invoice=on|off``: the keys of settings["direction"]."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        obj, _, value = part.rpartition("=")
        obj = (obj or "customer").strip().lower().removesuffix("s")
        value = value.strip().lower()
        if obj == "customer" and value in DIRECTIONS:
            out["customer"] = DIRECTIONS[value]
        elif obj == "invoice" and value in INVOICE_DIRECTIONS:
            out["invoice"] = INVOICE_DIRECTIONS[value]
        else:
            raise UserError(f"'{part}' is not a direction. Use both, crm-to-accounting, accounting-to-crm or off "
                            "(customers), or invoice=on|off.")
    if not out:
        raise UserError("Say which direction, e.g. --direction crm-to-accounting.")
    return out


def parse_rule(text: str) -> tuple[str, str]:
    """``FIELD=crm|accounting|recent|ask``: who wins when a field changed on both sides."""
    field, sep, rule = text.partition("=")
    field = field.strip().lower().replace(" ", "_").replace("-", "_")
    if not sep or field not in PARTY_FIELDS or rule.strip().lower() not in RULES:
        raise UserError(f"'{text}' is not a rule. Write FIELD=crm|accounting|recent|ask, where FIELD is one of "
                        f"{', '.join(PARTY_FIELDS)}.")
    return field, RULES[rule.strip().lower()]


def parse_cadence(text: str) -> dict[str, Any]:
    """``realtime=2m,batch=02:00,reconcile=1,paused=no`` (``sweep=1d`` is the daily batch)."""
    out: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, _, value = part.partition("=")
        key, value = key.strip().lower(), value.strip().lower()
        if key == "realtime" and (m := re.fullmatch(r"(\d+)\s*(m|min|h)?", value)):
            minutes = int(m[1]) * (60 if m[2] == "h" else 1)
            if not 1 <= minutes <= 24 * 60:
                raise UserError("The real-time cadence is between 1 minute and 24 hours, e.g. realtime=2m.")
            out["realtime_minutes"] = minutes
        elif key in ("batch", "sweep") and (m := re.fullmatch(r"(\d{1,2})(?::00)?|1d|daily", value)):
            if m[1] is not None:
                if int(m[1]) > 23:
                    raise UserError("The nightly batch runs at an hour from 00:00 to 23:00, e.g. batch=02:00.")
                out["batch_hour"] = int(m[1])
        elif key == "reconcile" and value.isdigit() and 1 <= int(value) <= 28:
            out["reconcile_day"] = int(value)
        elif key == "paused" and value in ("yes", "no", "true", "false", "on", "off"):
            out["paused"] = value in ("yes", "true", "on")
        else:
            raise UserError(f"'{part}' is not a cadence. Use realtime=2m, batch=02:00 (or sweep=1d), "
                            "reconcile=DAY (1-28) or paused=yes|no, separated by commas.")
    if not out and not text.strip():
        raise UserError("Say which cadence, e.g. --cadence realtime=5m,batch=02:00.")
    return out


def apply_settings(store: Store, name: str, *, direction: str | None = None, rules: list[str] | None = None,
                   cadence: str | None = None) -> dict[str, Any]:
    """Check every value first, then save them together; returns the workspace's settings as shown."""
    ws = get_workspace(store, name)
    settings = dict(ws.settings or {})
    changes: dict[str, Any] = {}
    if direction is not None:
        changes["direction"] = {**(settings.get("direction") or {}), **parse_direction(direction)}
    if rules:
        parsed = dict(parse_rule(r) for r in rules)
        changes["rules"] = {**(settings.get("rules") or {}), **parsed}
    if cadence is not None:
        changes["schedule"] = {**(settings.get("schedule") or {}), **parse_cadence(cadence)}
    if changes:
        update_settings(store, ws.name, **changes)
    return describe(store, ws.name)


def describe(store: Store, name: str) -> dict[str, Any]:
    """`workspace show --json`: the settings a script may read back (stable keys)."""
    from app.sync.planner import DEFAULT_RULES

    ws = get_workspace(store, name)
    s = ws.settings or {}
    direction = s.get("direction") or {}
    schedule = {**SCHEDULE_DEFAULTS, **(s.get("schedule") or {})}
    return {
        "name": ws.name, "crm": ws.crm, "accounting": ws.accounting,
        "direction": {"customer": DIRECTION_WORDS.get(direction.get("customer", "both"), "both"),
                      "invoice": "off" if direction.get("invoice") == "off" else "on"},
        "field_direction": {f: DIRECTION_WORDS.get(d, d) for f, d in (s.get("field_direction") or {}).items()},
        "rules": {**DEFAULT_RULES, **(s.get("rules") or {})},
        "cadence": {"realtime_minutes": int(schedule["realtime_minutes"]), "batch_hour": int(schedule["batch_hour"]),
                    "reconcile_day": int(schedule["reconcile_day"]), "paused": bool(schedule["paused"])},
        "report_folder": s.get("report_folder"),
    }
