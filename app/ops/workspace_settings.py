"""A workspace's sync settings as the command line reads and writes them.

The window's mapping wizard and Settings page write the same keys (``direction``, ``rules``,
``schedule``), so a setting made in one place is the setting everywhere. Values are checked
before anything is saved; a bad one raises UserError naming what is accepted.

``load`` and ``save`` are the typed way in and out (``app.domain.settings.WorkspaceSettings``): a save
writes only the keys it changed, in the current shape, and keeps every other key as stored.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from typing import Any

from app.domain.models import PARTY_FIELDS
from app.domain.settings import DIRECTION_WORDS as DIRECTIONS
from app.domain.settings import SettingsError, WorkspaceSettings, settings_of, stored_with
from app.ops.workspaces import UserError, get_workspace, list_workspaces
from app.store.db import Store
from app.store.models import Workspace

DIRECTION_WORDS = {v: k for k, v in DIRECTIONS.items()}
INVOICE_DIRECTIONS = {"both": "both", "on": "both", "off": "off"}
RULES = {"crm": "crm", "accounting": "accounting", "recent": "recent", "ask": "ask"}
log = logging.getLogger("crossledger.settings")


def load(store: Store, name: str) -> WorkspaceSettings:
    """The workspace's settings, typed (UserError for an unknown workspace or a setting that cannot be used)."""
    try:
        return settings_of(get_workspace(store, name))
    except SettingsError as exc:
        raise UserError(f"'{name}': {exc}") from None


def readable_settings(store: Store) -> dict[str, WorkspaceSettings]:
    """Every workspace's settings by name, for a display that must not fail: a workspace whose stored
    settings cannot be used is shown with the defaults (and logged)."""
    out: dict[str, WorkspaceSettings] = {}
    for ws in list_workspaces(store):
        try:
            out[ws.name] = settings_of(ws)
        except SettingsError as exc:
            log.warning("the settings of %s cannot be used: %s", ws.name, exc)
            out[ws.name] = WorkspaceSettings()
    return out


def save(store: Store, name: str, **values: Any) -> None:
    """Replace some settings (``schedule=Schedule(...)``, ``report_folder=None``…) in one transaction: the
    stored settings are read and upgraded, the new values checked, and only those keys written (with the
    version), so keys this version does not know and settings written meanwhile by others are kept. A bad
    value stored under another key does not stop the save (it may be what is being put right)."""
    ws = get_workspace(store, name)
    with store.session() as s:
        row = s.get(Workspace, ws.id)
        if row is None:
            raise UserError(f"There is no workspace called '{name}'.")
        try:
            row.settings = stored_with(row.settings, **values)
        except SettingsError as exc:
            raise UserError(f"'{ws.name}': {exc}") from None


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
    settings = load(store, ws.name)
    changes: dict[str, Any] = {}
    if direction is not None:
        way, now = parse_direction(direction), settings.direction
        changes["direction"] = replace(now, customer=way.get("customer", now.customer),
                                       invoice=way.get("invoice", now.invoice))
    if rules:
        changes["rules"] = {**settings.rules, **dict(parse_rule(r) for r in rules)}
    if cadence is not None:
        changes["schedule"] = replace(settings.schedule, **parse_cadence(cadence))
    if changes:
        save(store, ws.name, **changes)
    return describe(store, ws.name)


def describe(store: Store, name: str) -> dict[str, Any]:
    """`workspace show --json`: the settings a script may read back (stable keys)."""
    ws = get_workspace(store, name)
    s = load(store, ws.name)
    schedule = s.schedule
    return {
        "name": ws.name, "crm": ws.crm, "accounting": ws.accounting,
        "direction": {"customer": DIRECTION_WORDS[s.direction.customer],
                      "invoice": "on" if s.direction.invoices_on else "off"},
        "field_direction": {f: DIRECTION_WORDS[d] for f, d in s.field_direction.items()},
        "rules": s.effective_rules,
        "cadence": {"realtime_minutes": schedule.realtime_minutes, "batch_hour": schedule.batch_hour,
                    "reconcile_day": schedule.reconcile_day, "paused": schedule.paused},
        "report_folder": s.report_folder,
    }
