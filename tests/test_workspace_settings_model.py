"""A workspace's settings as one typed, versioned object: read from any stored shape so far, written back
in the current one, with nothing the user set ever dropped and a bad value told in plain words."""

from __future__ import annotations

import json

import pytest

from app.domain.settings import (
    VERSION,
    Directions,
    InvoiceOptions,
    MappingVersion,
    Safety,
    Schedule,
    SettingsError,
    WorkspaceSettings,
    settings_of,
    stored_with,
    upgrade,
)
from app.ops import workspace_settings
from app.ops.workspaces import UserError, add_workspace, get_workspace, update_settings
from app.store.db import Store

MAPPING = {"company": {"name": "name", "email": "email|lower"}, "person": {"email": "email"}}

# Every key the code has ever written, as it wrote it (version 0: no "version" key).
STORED_V0 = {
    "mapping": MAPPING,
    "rules": {"city": "ask", "email": "crm"},
    "field_direction": {"name": "off"},
    "customers_from": "companies",
    "direction": {"customer": "crm_to_acct", "invoice": "both"},
    "schedule": {"realtime_minutes": 15, "batch_hour": 3, "reconcile_day": 2, "paused": False},
    "notifications": False,
    "report_folder": "/home/bk/Reports",
    "safety": {"mass_change_percent": 50, "mass_change_records": 200},
    "invoices": {"payment_terms_days": 14, "default_item": "7", "tax_codes": {"SKU-1": "TAX"},
                 "edited_deal": "flag"},
    "pinned_matches": {"company:42": {"acct_id": "9"}},
    "deal_fields": {"crossledger_invoice_number": "cl_invoice_number"},
    "mapping_versions": [{"version": 1, "saved_at": "2026-03-01T10:00:00+00:00", "summary": "Saved",
                          "settings": {"mapping": MAPPING, "customers_from": "both"}}],
}


def test_every_stored_key_is_typed_and_written_back_as_it_was():
    s = WorkspaceSettings.from_json(STORED_V0)
    assert s.version == VERSION
    assert s.mapping == MAPPING and s.customers_from == "companies"
    assert s.direction == Directions("crm_to_acct", "both") and not s.notifications
    assert s.schedule == Schedule(15, 3, 2, False)
    assert s.safety == Safety(50, 200)
    assert s.safety.mass_change_limit(100) == 50 and s.safety.mass_change_limit(1000) == 200
    assert s.invoices == InvoiceOptions(14, "7", {"SKU-1": "TAX"}, "flag")
    assert s.mapping_versions == (MappingVersion(1, "2026-03-01T10:00:00+00:00", "Saved",
                                                 {"mapping": MAPPING, "customers_from": "both"}),)
    assert s.effective_rules["city"] == "ask" and s.effective_rules["phone"] == "crm"
    assert s.to_json() == {"version": VERSION, **STORED_V0}
    assert WorkspaceSettings.from_json(s.to_json()) == s
    assert json.loads(json.dumps(s.to_json())) == s.to_json()  # plain JSON, as the store keeps it


def test_nothing_stored_means_the_defaults_and_round_trips():
    empty = WorkspaceSettings.from_json({})
    assert empty == WorkspaceSettings() == settings_of(None)
    assert empty.schedule == Schedule(2, 2, 1, False) and empty.notifications and empty.report_folder is None
    assert empty.mapping is None and empty.mapping_or(MAPPING) == MAPPING
    assert empty.safety.mass_change_limit(100) == 20 and empty.safety.mass_change_limit(10) == 3
    assert empty.invoices.payment_terms_days == 30 and empty.invoices.edited_deal == "update_draft"
    assert WorkspaceSettings.from_json(empty.to_json()) == empty


def test_partly_stored_sections_take_the_defaults_for_the_rest():
    s = WorkspaceSettings.from_json({"schedule": {"realtime_minutes": 7}, "invoices": {"edited_deal": "flag"},
                                     "direction": {"invoice": "off"}})
    assert s.schedule == Schedule(realtime_minutes=7)
    assert s.invoices == InvoiceOptions(edited_deal="flag")
    assert s.direction == Directions("both", "off") and not s.direction.invoices_on


def test_version_0_words_and_text_numbers_are_upgraded():
    old = {"direction": {"customer": "crm-to-accounting", "invoice": "on"},
           "field_direction": {"email": "accounting-to-crm"},
           "schedule": {"realtime_minutes": "15", "batch_hour": "3"}, "safety": {"mass_change_percent": "40"},
           "invoices": {"payment_terms_days": "14"}, "report_folder": ""}
    s = WorkspaceSettings.from_json(old)
    assert s.direction == Directions("crm_to_acct", "both")
    assert s.field_direction == {"email": "acct_to_crm"}
    assert (s.schedule.realtime_minutes, s.schedule.batch_hour) == (15, 3)
    assert s.safety.mass_change_percent == 40 and s.invoices.payment_terms_days == 14
    assert s.report_folder is None
    up = upgrade(old)
    assert up["version"] == VERSION and up["direction"] == {"customer": "crm_to_acct", "invoice": "both"}
    assert old["direction"]["customer"] == "crm-to-accounting"  # the stored dict itself is not changed
    assert WorkspaceSettings.from_json({"schedule": {"realtime_minutes": 0}}).schedule.realtime_minutes == 1


def test_keys_it_does_not_know_are_kept_at_every_level():
    stored = {"version": 1, "theme": "dark", "schedule": {"realtime_minutes": 5, "quiet_hours": [22, 6]},
              "direction": {"customer": "both", "invoice": "off", "payment": "both"},
              "invoices": {"rounding": "half-up"}, "safety": {"mass_change_records": 10, "ask_first": True},
              "mapping_versions": [{"version": 2, "settings": {}, "author": "ann"}]}
    s = WorkspaceSettings.from_json(stored)
    assert s.extra == {"theme": "dark"}
    out = s.to_json()
    assert out["theme"] == "dark" and out["schedule"]["quiet_hours"] == [22, 6]
    assert out["direction"]["payment"] == "both" and out["invoices"]["rounding"] == "half-up"
    assert out["safety"]["ask_first"] is True and out["mapping_versions"][0]["author"] == "ann"
    assert WorkspaceSettings.from_json(out) == s


@pytest.mark.parametrize(("stored", "words"), [
    ({"schedule": {"realtime_minutes": "soon"}}, "minutes between real-time syncs is saved as 'soon'"),
    ({"schedule": {"batch_hour": 25}}, "hour of the nightly full sync is saved as 25"),
    ({"schedule": {"paused": "maybe"}}, "pause of the scheduled syncs"),
    ({"direction": {"customer": "sideways"}}, "customers' sync direction is saved as 'sideways'"),
    ({"rules": {"city": "whoever"}}, "rule for city is saved as 'whoever'"),
    ({"customers_from": "everyone"}, "choice of CRM records"),
    ({"safety": {"mass_change_percent": 150}}, "safety limit in percent is saved as 150"),
    ({"report_folder": 7}, "report folder is saved as 7"),
    ({"mapping_versions": "v1"}, "mapping history"),
    ({"version": 99}, "saved by a newer Crossledger"),
    ([], "not as settings Crossledger can read"),
])
def test_a_bad_stored_value_is_named_in_plain_words(stored, words):
    with pytest.raises(SettingsError) as caught:
        WorkspaceSettings.from_json(stored)
    message = str(caught.value)
    assert words in message, message
    assert "Traceback" not in message and "Error" not in message


def test_settings_of_reads_a_row_an_info_or_the_dict(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/s.db")
    add_workspace(store, "Acme", "hubspot", "xero")
    update_settings(store, "Acme", schedule={"realtime_minutes": 9})
    info = get_workspace(store, "Acme")
    typed = settings_of(info)
    assert typed.schedule.realtime_minutes == 9
    assert settings_of(info.settings) == typed == settings_of(typed)
    store.dispose()


def test_save_writes_only_what_changed_in_the_current_shape_and_keeps_the_rest(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/s.db")
    add_workspace(store, "Acme", "hubspot", "xero")
    update_settings(store, "Acme", theme="dark", direction={"customer": "crm-to-accounting"},
                    safety={"mass_change_percent": 40})
    loaded = workspace_settings.load(store, "Acme")
    workspace_settings.save(store, "Acme", schedule=Schedule(realtime_minutes=5), report_folder=None)
    raw = get_workspace(store, "Acme").settings
    assert raw["version"] == VERSION and raw["theme"] == "dark"
    assert raw["direction"] == {"customer": "crm_to_acct"}  # upgraded in place, not filled in
    assert raw["safety"] == {"mass_change_percent": 40}  # untouched: a later default still applies
    assert raw["schedule"] == {"realtime_minutes": 5, "batch_hour": 2, "reconcile_day": 1, "paused": False}
    assert workspace_settings.load(store, "Acme") == WorkspaceSettings(
        direction=loaded.direction, safety=loaded.safety, schedule=Schedule(realtime_minutes=5),
        extra={"theme": "dark"})
    with pytest.raises(UserError, match="rule for city is saved as 'whoever'"):
        workspace_settings.save(store, "Acme", rules={"city": "whoever"})
    assert "rules" not in get_workspace(store, "Acme").settings  # a refused value writes nothing
    store.dispose()


def test_a_bad_stored_value_can_be_put_right(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/s.db")
    add_workspace(store, "Acme", "hubspot", "xero")
    update_settings(store, "Acme", schedule={"realtime_minutes": "soon"})
    with pytest.raises(UserError, match="'Acme': This workspace's minutes between real-time syncs"):
        workspace_settings.load(store, "Acme")
    assert workspace_settings.readable_settings(store)["Acme"] == WorkspaceSettings()  # the tray still shows it
    workspace_settings.save(store, "Acme", schedule=Schedule(realtime_minutes=4))
    assert workspace_settings.load(store, "Acme").schedule.realtime_minutes == 4
    store.dispose()


def test_stored_with_is_one_call_for_code_that_writes_the_row_itself():
    raw = {"direction": {"customer": "crm-to-accounting"}, "invoices": {"edited_deal": "flag"}, "theme": "dark"}
    out = stored_with(raw, deal_fields={"crossledger_invoice_number": "cl_invoice_number"})
    assert out == {"version": VERSION, "direction": {"customer": "crm_to_acct"}, "invoices": {"edited_deal": "flag"},
                   "theme": "dark", "deal_fields": {"crossledger_invoice_number": "cl_invoice_number"}}
    assert stored_with({"schedule": {"batch_hour": "late"}}, report_folder=None)["schedule"] == {"batch_hour": "late"}
    with pytest.raises(SettingsError, match="sync direction of email"):
        stored_with(raw, field_direction={"email": "sideways"})
    with pytest.raises(TypeError):
        stored_with(raw, colour="red")


def test_a_workspace_is_found_by_its_name_in_any_case_as_names_are_unique_in_any_case(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/s.db")
    add_workspace(store, "Harbour Books", "hubspot", "xero")
    add_workspace(store, "harbour", "hubspot", "xero")
    assert get_workspace(store, "HARBOUR BOOKS").name == "Harbour Books"
    assert get_workspace(store, "Harbour").name == "harbour"  # the exact name wins; there is only one anyway
    with pytest.raises(UserError) as caught:
        get_workspace(store, "Harbor")
    assert "no workspace called 'Harbor' (workspaces: Harbour Books, harbour)" in str(caught.value)
    store.dispose()
