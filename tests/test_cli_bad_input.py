"""Every command, given bad values, answers with one plain line on stderr and exit code 2; no traceback.

The cases are in tests/cli_cases.py. They run in this process first (fast, and a failure names the
case), then in child processes under LC_ALL=C, a UTF-8 locale and PYTHONIOENCODING=ascii, where the
output streams are what a terminal in that locale gives Crossledger.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import cli_cases

ROOT = Path(__file__).resolve().parents[1]


def _problems(results: list[dict]) -> list[str]:
    found = []
    for r in results:
        err = r["stderr"]
        one_line = err.endswith("\n") and err.count("\n") == 1 and len(err.strip()) > 10
        if r["code"] != 2 or not one_line or "Traceback" in err or "Traceback" in r["stdout"]:
            found.append(f"{r['argv'][2:]!r}: exit {r['code']}, stderr {err!r}")
    return found


def test_there_are_at_least_a_hundred_cases_covering_every_command():
    assert len(cli_cases.CASES) >= 100
    commands = {a for case in cli_cases.CASES for a in case if not a.startswith(("-", "{"))}
    parser_commands = {"gui", "demo", "workspace", "connect", "sync", "status", "reconcile", "doctor", "backup",
                       "restore", "migrate", "history", "undo", "release", "sandbox", "conflicts", "resolve",
                       "service"}
    assert parser_commands <= commands


def test_every_bad_command_line_gets_one_line_and_exit_2(tmp_path, monkeypatch):
    monkeypatch.delenv("CROSSLEDGER_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cases").mkdir()
    report = cli_cases.run_all(tmp_path / "cases")
    assert _problems(report["results"]) == []
    assert report["files_untouched"]  # --db and restore never wrote over a file that is not ours
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cases"]  # nothing made in the current folder
    by_args = {tuple(r["argv"][2:]): r["stderr"] for r in report["results"]}
    world = report["world"]
    assert "already a workspace called 'Acme'" in by_args[("workspace", "add", "ACME", "--crm", "hubspot",
                                                           "--accounting", "xero")]
    assert "will not write over it" in by_args[("--db", f"sqlite:///{world['notdb']}", "status")]
    assert "could not reach" in by_args[("connect", "hubspot", "--workspace", "Acme", "--base-url",
                                         f"http://127.0.0.1:{world['closed']}")]
    assert "There is no run 12345678901234567890123" in by_args[("undo", "12345678901234567890123")]


def _utf8_locale() -> str:
    names = subprocess.run(["locale", "-a"], capture_output=True, text=True).stdout.split()
    return next((n for n in names if n.lower().replace("-", "") in ("c.utf8", "en_us.utf8")), "C.UTF-8")


@pytest.mark.parametrize("env", [{"LC_ALL": "C"}, {"LC_ALL": "utf8"}, {"PYTHONIOENCODING": "ascii"},
                                 {"LC_ALL": "C", "PYTHONIOENCODING": "ascii"}],
                         ids=["LC_ALL=C", "UTF-8 locale", "PYTHONIOENCODING=ascii", "C and ascii"])
def test_the_same_in_every_locale(tmp_path, env):
    env = {k: (_utf8_locale() if v == "utf8" else v) for k, v in env.items()}
    clean = {k: v for k, v in os.environ.items()
             if k not in ("LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "PYTHONIOENCODING", "PYTHONUTF8",
                          "CROSSLEDGER_HOME")}
    out = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, "-m", "tests.cli_cases", str(out)], cwd=ROOT, timeout=600,
                          env={**clean, **env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    if "PYTHONIOENCODING" in env:
        assert report["encoding"] == "ascii"  # the streams really were ASCII-only
    assert _problems(report["results"]) == []
    assert report["files_untouched"] and report["cwd_left_clean"]


def test_status_lists_accented_names_under_lc_all_c_and_ascii(tmp_path):
    home = tmp_path / "h"
    clean = {k: v for k, v in os.environ.items() if k not in ("LANG", "LC_ALL", "LC_CTYPE", "PYTHONIOENCODING")}
    for env in ({"LC_ALL": "C"}, {"LC_ALL": "C", "PYTHONIOENCODING": "ascii"}):
        add = subprocess.run([sys.executable, "-m", "app", "--home", str(home), "workspace", "add", "Zürich Ltd",
                              "--crm", "hubspot", "--accounting", "xero"], cwd=ROOT, capture_output=True,
                             env={**clean, **env}, timeout=120)
        assert add.returncode in (0, 2) and b"Traceback" not in add.stderr
        for args in (["status"], ["status", "--json"], ["workspace", "list"]):
            proc = subprocess.run([sys.executable, "-m", "app", "--home", str(home), *args], cwd=ROOT,
                                  capture_output=True, env={**clean, **env}, timeout=120)
            assert proc.returncode == 0 and proc.stderr == b"", (env, args, proc.stderr)
            assert b"Z" in proc.stdout and b"rich Ltd" in proc.stdout
