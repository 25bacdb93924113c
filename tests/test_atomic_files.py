"""A file Crossledger rewrites is whole before and whole after: a kill in between leaves the old one.

The writer runs in a child process that stops at the one dangerous moment (new content complete,
not yet renamed into place) and tells the test so; the test kills it there with SIGKILL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from openpyxl import load_workbook

from app.domain import files

ROOT = Path(__file__).resolve().parents[1]

WRITERS = {
    "reconciliation workbook": """
        from app.reconcile.engine import MonthData, reconcile
        from app.reconcile.workbook import write_workbook
        report = reconcile(MonthData(month="2026-01", deals=[], invoices=[], payments=[], customers={}))
        write_workbook(report, target, workspace=label, crm_label="HubSpot", ledger_label="Xero")
    """,
    "activity workbook": """
        from app.ops.history_export import Activity, write_workbook
        write_workbook(Activity(label), target)
    """,
    "sandbox state": """
        from app.sandbox.registry import sandbox_class
        app = sandbox_class("hubspot")(state_file=str(target))
        app.seed("empty")
        app.state["label"] = label
        app.persist()
    """,
}


def _script(writer: str, target: Path, label: str, ready: Path | None) -> str:
    hook = ""
    if ready is not None:
        hook = f"""
            import time
            from app.domain import files
            def _stop_here(tmp):
                open({str(ready)!r}, "w").write(str(tmp))
                time.sleep(600)
            files.before_replace = _stop_here
        """
    return (textwrap.dedent(hook) + f"from pathlib import Path\ntarget = Path({str(target)!r})\nlabel = {label!r}\n"
            + textwrap.dedent(writer))


def _run(code: str) -> None:
    exec(compile(code, "<writer>", "exec"), {})  # the saves around the killed one run in the test itself


def _label_of(kind: str, path: Path) -> str:
    if kind == "sandbox state":
        import json

        return json.loads(path.read_text())["label"]
    wb = load_workbook(path)
    try:
        return str(wb["Summary"]["A2"].value if "Summary" in wb.sheetnames else wb.properties.title)
    finally:
        wb.close()


@pytest.mark.parametrize("kind", list(WRITERS))
def test_a_kill_between_write_and_rename_leaves_the_previous_file(tmp_path: Path, kind: str) -> None:
    target = tmp_path / ("state.json" if kind == "sandbox state" else "Acme-2026-01.xlsx")
    _run(_script(WRITERS[kind], target, "Old Client", None))
    before = target.read_bytes()
    assert "Old Client" in _label_of(kind, target)

    ready = tmp_path / "ready"
    child = subprocess.Popen([sys.executable, "-c", _script(WRITERS[kind], target, "New Client", ready)], cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():  # the child says when the new file is complete but not yet in place
            assert child.poll() is None, "the writer ended before reaching the rename"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        tmp = Path(ready.read_text())
        assert tmp.parent == target.parent and tmp.stat().st_size > 0  # written beside it, not over it
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL
    assert target.read_bytes() == before  # the previous file, untouched
    assert "Old Client" in _label_of(kind, target)

    _run(_script(WRITERS[kind], target, "New Client", None))  # the next save replaces it whole
    assert "New Client" in _label_of(kind, target)


def test_a_kill_before_the_first_save_leaves_no_file(tmp_path: Path) -> None:
    target = tmp_path / "new.xlsx"
    ready = tmp_path / "ready"
    child = subprocess.Popen([sys.executable, "-c", _script(WRITERS["activity workbook"], target, "X", ready)],
                             cwd=ROOT)
    try:
        while not ready.exists():
            assert child.poll() is None
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert not target.exists()


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "settings.json"
    files.write_text(target, '{"a": 1}')
    target.chmod(0o640)

    def half_then_fail() -> None:
        with files.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        half_then_fail()
    assert target.read_text() == '{"a": 1}'
    files.write_text(target, '{"a": 2}')
    assert target.read_text() == '{"a": 2}'
    assert oct(target.stat().st_mode & 0o777) == oct(0o640)  # a rewrite keeps the file's permissions
    assert sorted(p.name for p in tmp_path.iterdir()) == ["settings.json"]


def test_private_files_are_the_owners_only(tmp_path: Path) -> None:
    path = files.write_bytes(tmp_path / "backup.db", b"x", private=True)
    assert path.stat().st_mode & 0o077 == 0


def test_what_a_killed_writer_left_is_swept_by_the_next_write_once_it_is_old(tmp_path: Path):
    target = tmp_path / "report.xlsx"
    old = tmp_path / ".report.xlsx.dead0001.tmp"  # a writer killed an hour and more ago
    fresh = tmp_path / ".report.xlsx.live0002.tmp"  # perhaps another process writing right now
    other = tmp_path / ".notes.txt.dead0003.tmp"  # another file's: not ours to judge
    for f in (old, fresh, other):
        f.write_bytes(b"half")
    an_hour_ago = time.time() - files.STALE_AFTER - 5
    os.utime(old, (an_hour_ago, an_hour_ago))
    os.utime(other, (an_hour_ago, an_hour_ago))
    files.write_text(target, "whole")
    assert target.read_text() == "whole"
    assert not old.exists() and fresh.exists() and other.exists()
