"""The settings page: loads a workspace's cadence, saves it on Save only, and the scheduler follows."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from app.ops import autostart
from app.ops.workspaces import add_workspace, list_workspaces, remove_workspace, update_settings
from app.sched import jobs
from app.sched.service import Scheduler, job_id
from app.store.db import Store
from app.ui.settings_page import SettingsPage, WorkspaceForm, local_clock

NOW = dt.datetime(2026, 3, 14, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def setup(tmp_path: Path, qapp, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    store = Store(f"sqlite:///{tmp_path}/s.db")
    add_workspace(store, "Acme", "hubspot", "xero")
    add_workspace(store, "Birch", "hubspot", "xero")
    update_settings(store, "Birch", schedule={"realtime_minutes": 9, "batch_hour": 4, "reconcile_day": 3},
                    notifications=False)
    scheduler = Scheduler(store, jobs.Context(store, None))
    scheduler.start(paused=True)
    yield store, scheduler
    scheduler.shutdown()


def _settings(store: Store, name: str) -> dict:
    return next(w.settings for w in list_workspaces(store) if w.name == name)


def test_it_loads_each_workspace(setup, qtbot):
    store, scheduler = setup
    page = SettingsPage(store, scheduler, now=lambda: NOW, autostart_command=["/usr/bin/crossledger"])
    qtbot.addWidget(page)
    assert page.current_workspace() == "Acme"
    assert page.form() == WorkspaceForm(2, 2, 1, False, True)  # the scheduler's defaults
    page.select("Birch")
    assert page.form() == WorkspaceForm(9, 4, 3, False, False)
    assert page.batch_hour.currentText() == local_clock(4, NOW.date())
    assert not page.save_button.isEnabled() and not page.is_dirty()
    assert page.realtime.minimum() == 1 and page.realtime.maximum() == 60


def test_save_writes_settings_and_the_scheduler_follows(setup, qtbot):
    store, scheduler = setup
    page = SettingsPage(store, scheduler, now=lambda: NOW, autostart_command=["/usr/bin/crossledger"])
    qtbot.addWidget(page)
    page.show()
    qtbot.waitExposed(page)
    page.realtime.setValue(15)
    page.batch_hour.setCurrentIndex(page.batch_hour.findData(23))
    page.reconcile_day.setValue(5)
    qtbot.mouseClick(page.paused, Qt.MouseButton.LeftButton)
    page.notifications.setChecked(False)
    assert page.is_dirty() and page.save_button.isEnabled()
    assert not page.workspace.isEnabled()  # one workspace's edits at a time
    assert _settings(store, "Acme").get("schedule") is None  # nothing written before Save

    with qtbot.waitSignal(page.saved) as saved:
        qtbot.mouseClick(page.save_button, Qt.MouseButton.LeftButton)
    assert saved.args == ["Acme"]
    settings = _settings(store, "Acme")
    assert settings["schedule"] == {"realtime_minutes": 15, "batch_hour": 23, "reconcile_day": 5, "paused": True}
    assert settings["notifications"] is False
    realtime = scheduler.scheduler.get_job(job_id("realtime", 1))
    assert realtime.trigger.interval == dt.timedelta(minutes=15)
    assert realtime.next_run_time is None  # paused
    assert str(scheduler.scheduler.get_job(job_id("batch", 1)).trigger.fields[5]) == "23"  # hour field
    assert page.message.text() == "Saved." and page.workspace.isEnabled()


def test_discard_restores_what_was_loaded(setup, qtbot):
    store, scheduler = setup
    page = SettingsPage(store, scheduler, now=lambda: NOW, autostart_command=["/usr/bin/crossledger"])
    qtbot.addWidget(page)
    page.realtime.setValue(30)
    page.start_at_login.setChecked(True)
    qtbot.mouseClick(page.discard_button, Qt.MouseButton.LeftButton)
    assert page.form().realtime_minutes == 2 and not page.start_at_login.isChecked()
    assert not page.is_dirty()


def test_start_at_login_writes_and_removes_the_autostart_entry(setup, qtbot):
    store, scheduler = setup
    page = SettingsPage(store, scheduler, now=lambda: NOW,
                        autostart_command=lambda: ["/opt/crossledger/crossledger", "gui"])
    qtbot.addWidget(page)
    page.start_at_login.setChecked(True)
    assert page.save()
    assert autostart.is_enabled()
    assert "Exec=/opt/crossledger/crossledger gui" in autostart.desktop_path().read_text()
    page.reload()
    assert page.start_at_login.isChecked()
    page.start_at_login.setChecked(False)
    assert page.save()
    assert not autostart.is_enabled()


def test_a_workspace_removed_meanwhile_is_said_plainly(setup, qtbot):
    store, scheduler = setup
    page = SettingsPage(store, scheduler, now=lambda: NOW, autostart_command=["/usr/bin/crossledger"])
    qtbot.addWidget(page)
    page.realtime.setValue(20)

    class NoTokens:
        def delete(self, _cid: str) -> None:
            pass

    remove_workspace(store, NoTokens(), "Acme")
    assert page.save() is False
    assert page.message.text() == "The workspace 'Acme' no longer exists, so its settings were not saved."


def test_with_no_workspace_the_page_says_so(tmp_path, qtbot):
    store = Store(f"sqlite:///{tmp_path}/empty.db")
    page = SettingsPage(store, None, now=lambda: NOW)
    qtbot.addWidget(page)
    assert not page.empty.isHidden() and not page.ws_card.isEnabled()
    assert page.current_workspace() is None


def test_the_reports_folder_is_chosen_checked_and_saved(setup, qtbot, tmp_path):
    store, scheduler = setup
    page = SettingsPage(store, scheduler, now=lambda: NOW, autostart_command=["/usr/bin/crossledger"])
    qtbot.addWidget(page)
    assert page.report_folder.text() == "" and "reports" in page.report_folder.placeholderText()
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    page.report_folder.setText(str(blocker / "books"))
    assert page.save() is False
    assert "cannot write to the reports folder" in page.message.text()
    assert "report_folder" not in _settings(store, "Acme")  # nothing saved, the text stays for fixing
    assert page.report_folder.text() == str(blocker / "books")
    page.report_folder.setText(str(tmp_path / "Reports" / "Acme"))
    assert page.save()
    assert _settings(store, "Acme")["report_folder"] == str(tmp_path / "Reports" / "Acme")
    assert (tmp_path / "Reports" / "Acme").is_dir()
    page.report_folder.clear()  # back to the default
    assert page.save()
    assert _settings(store, "Acme")["report_folder"] is None


def test_the_cli_sets_the_reports_folder(tmp_path):
    from tests.test_cli import cli

    home = tmp_path / "home"
    cli(home, "workspace", "add", "Acme", "--crm", "hubspot", "--accounting", "xero")
    out = cli(home, "workspace", "set", "Acme", "--report-folder", str(tmp_path / "Books")).stdout
    assert f"now go to {tmp_path / 'Books'}" in out
    bad = cli(home, "workspace", "set", "Acme", "--report-folder", "relative/dir", check=False)
    assert bad.returncode == 2 and "not a full folder path" in bad.stderr
    out = cli(home, "workspace", "set", "Acme", "--report-folder", "").stdout
    assert f"now go to {home / 'reports'}" in out


def test_a_setting_that_cannot_be_read_is_said_and_save_puts_it_right(setup, qtbot):
    store, scheduler = setup
    update_settings(store, "Acme", schedule={"realtime_minutes": 9, "batch_hour": "late"}, theme="dark")
    page = SettingsPage(store, scheduler, now=lambda: NOW, autostart_command=["/usr/bin/crossledger"])
    qtbot.addWidget(page)
    assert "hour of the nightly full sync is saved as 'late'" in page.message.text()
    assert page.form() == WorkspaceForm(2, 2, 1, False, True)  # what Save would write, shown
    page.batch_hour.setCurrentIndex(page.batch_hour.findData(5))
    assert page.save()
    settings = _settings(store, "Acme")
    assert settings["schedule"] == {"realtime_minutes": 2, "batch_hour": 5, "reconcile_day": 1, "paused": False}
    assert settings["theme"] == "dark"  # a key this version does not know is kept

    update_settings(store, "Birch", safety={"mass_change_percent": "lots"})  # not on this page: its own keys load
    page.select("Birch")
    assert page.form() == WorkspaceForm(9, 4, 3, False, False)
    assert "safety limit in percent is saved as 'lots'" in page.message.text()


def test_a_pipedrive_workspace_gives_its_plan_and_sees_its_daily_token_budget(setup, qtbot):
    from app.ops.budget import pipedrive_plan
    from app.ops.workspaces import new_connection, save_connection

    store, scheduler = setup
    ws = add_workspace(store, "Crane", "pipedrive", "xero")
    conn = new_connection(ws, "pipedrive", "http://pipedrive.test")
    conn.extra["seats"] = 3  # counted from Pipedrive's active users when it was connected
    save_connection(store, ws, conn)
    page = SettingsPage(store, scheduler, now=lambda: NOW, autostart_command=["/usr/bin/crossledger"])
    qtbot.addWidget(page)
    page.show()
    qtbot.waitExposed(page)
    assert not page.plan.isVisible()  # Acme's CRM is HubSpot: no plan to give
    page.select("Crane")
    assert page.plan.isVisible() and page.plan.currentText() == "Not sure (Lite assumed)"
    assert page.plan_hint.text() == "3 seats · 90,000 API tokens a day"
    page.plan.setCurrentIndex(page.plan.findData("premium"))
    assert page.plan_hint.text() == "3 seats · 450,000 API tokens a day"
    assert page.is_dirty() and page.save_button.isEnabled()
    with qtbot.waitSignal(page.saved):
        qtbot.mouseClick(page.save_button, Qt.MouseButton.LeftButton)
    assert pipedrive_plan(store, "Crane") == ("premium", 3, 450_000)
    page.select("Crane")
    assert page.plan.currentData() == "premium" and not page.is_dirty()
    if (shots := __import__("os").environ.get("CROSSLEDGER_SHOTS")):
        page.resize(900, 640)
        page.grab().save(f"{shots}/settings_pipedrive_plan.png")
