"""Start at login: the XDG autostart entry written and removed for real; the macOS plist and the
Windows Run value checked as content (and written through a stand-in registry)."""

from __future__ import annotations

import configparser
import plistlib
import subprocess
import sys
from pathlib import Path

import pytest

from app.ops import autostart

CMD = ["/opt/Cross Ledger/bin/python3", "-m", "app", "--home", "/home/ann/Client $books", "gui"]


@pytest.fixture
def xdg(tmp_path, monkeypatch) -> Path:
    config = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    return config


def _read_entry(path: Path) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # keys are case-sensitive in desktop entries
    parser.read_string(path.read_text(encoding="utf-8"))
    return parser["Desktop Entry"]


def _unescape_exec(value: str) -> list[str]:
    """Read an Exec value as the Desktop Entry Specification says: undo the string escapes first,
    then split on spaces, honouring double quotes and the four characters escaped inside them."""
    text, i = [], 0
    while i < len(value):
        if value[i] == "\\" and i + 1 < len(value):
            text.append({"s": " ", "n": "\n", "t": "\t", "r": "\r", "\\": "\\"}.get(value[i + 1], value[i:i + 2]))
            i += 2
        else:
            text.append(value[i])
            i += 1
    line = "".join(text)
    args: list[str] = []
    current: list[str] = []
    quoted = started = False
    i = 0
    while i < len(line):
        ch = line[i]
        if quoted and ch == "\\" and i + 1 < len(line) and line[i + 1] in '"`$\\':
            current.append(line[i + 1])
            i += 1
        elif ch == '"':
            quoted, started = not quoted, True
        elif ch == " " and not quoted:
            if current or started:
                args.append("".join(current))
            current, started = [], False
        else:
            current.append(ch)
        i += 1
    if current or started:
        args.append("".join(current))
    return [a.replace("%%", "%") for a in args]


def test_enable_writes_an_xdg_autostart_entry_and_disable_removes_it(xdg):
    assert not autostart.is_enabled(platform="linux")
    path = autostart.enable(CMD, platform="linux")
    assert path == xdg / "autostart" / "crossledger.desktop"
    assert autostart.is_enabled(platform="linux")
    entry = _read_entry(path)
    assert entry["Type"] == "Application"
    assert entry["Name"] == "Crossledger"
    assert entry["Terminal"] == "false"
    assert entry["X-GNOME-Autostart-enabled"] == "true"
    assert _unescape_exec(entry["Exec"]) == CMD
    assert not list(path.parent.glob("*.tmp"))

    autostart.enable(CMD[:3], platform="linux")  # enabling again replaces the entry
    assert _unescape_exec(_read_entry(path)["Exec"]) == CMD[:3]
    autostart.disable(platform="linux")
    assert not path.exists() and not autostart.is_enabled(platform="linux")
    autostart.disable(platform="linux")  # twice is harmless


def test_the_exec_line_quotes_what_the_spec_reserves():
    assert autostart.exec_line(["/usr/bin/crossledger", "gui"]) == "/usr/bin/crossledger gui"
    assert autostart.exec_line(["/a b/c", "100%", 'say "hi"', "$HOME"]) == \
        '"/a b/c" 100%% "say \\"hi\\"" "\\$HOME"'
    assert _unescape_exec(autostart.desktop_entry(["C:\\x y\\app.exe"]).split("Exec=")[1].splitlines()[0]) == \
        ["C:\\x y\\app.exe"]


def test_an_entry_switched_off_by_the_desktop_counts_as_off(xdg):
    path = autostart.enable(["/usr/bin/crossledger"], platform="linux")
    path.write_text(path.read_text() + "Hidden=true\n")
    assert not autostart.is_enabled(platform="linux")
    path.write_text(path.read_text().replace("Hidden=true\n", "").replace(
        "X-GNOME-Autostart-enabled=true", "X-GNOME-Autostart-enabled=false"))
    assert not autostart.is_enabled(platform="linux")


def test_xdg_config_home_must_be_absolute(tmp_path, monkeypatch):
    assert autostart.xdg_config_home({"XDG_CONFIG_HOME": "relative/dir"}) == Path.home() / ".config"
    assert autostart.xdg_config_home({}) == Path.home() / ".config"
    assert autostart.xdg_config_home({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path


def test_the_launch_agent_plist(tmp_path, monkeypatch):
    data = plistlib.loads(autostart.launch_agent_plist(CMD))
    assert data["Label"] == "app.crossledger.Crossledger"
    assert data["ProgramArguments"] == CMD  # a list: no quoting to get wrong
    assert data["RunAtLoad"] is True and data["KeepAlive"] is False
    assert data["LimitLoadToSessionType"] == "Aqua"

    monkeypatch.setenv("HOME", str(tmp_path))
    path = autostart.enable(CMD, platform="darwin")
    assert path == tmp_path / "Library" / "LaunchAgents" / "app.crossledger.Crossledger.plist"
    assert autostart.is_enabled(platform="darwin")
    assert plistlib.loads(path.read_bytes())["ProgramArguments"] == CMD
    autostart.disable(platform="darwin")
    assert not autostart.is_enabled(platform="darwin")


class FakeRegistry:
    """The few winreg calls the Windows writer makes, over a dict."""

    HKEY_CURRENT_USER = "HKCU"
    KEY_SET_VALUE, KEY_READ, REG_SZ = 2, 1, 1

    def __init__(self) -> None:
        self.keys: dict[str, dict[str, tuple[object, int]]] = {}

    def CreateKeyEx(self, root, sub, reserved=0, access=0):
        return self.keys.setdefault(f"{root}\\{sub}", {})

    def OpenKey(self, root, sub, reserved=0, access=0):
        try:
            return self.keys[f"{root}\\{sub}"]
        except KeyError:
            raise FileNotFoundError(sub) from None

    def SetValueEx(self, key, name, reserved, kind, value):
        key[name] = (value, kind)

    def QueryValueEx(self, key, name):
        try:
            return key[name]
        except KeyError:
            raise FileNotFoundError(name) from None

    def DeleteValue(self, key, name):
        try:
            del key[name]
        except KeyError:
            raise FileNotFoundError(name) from None

    def CloseKey(self, key):
        pass


def test_the_windows_run_value():
    name, value = autostart.run_key_value([r"C:\Program Files\Crossledger\crossledger.exe", "gui"])
    assert name == "Crossledger"
    assert value == r'"C:\Program Files\Crossledger\crossledger.exe" gui'

    reg = FakeRegistry()
    assert not autostart.is_enabled(platform="win32", registry=reg)
    where = autostart.enable([r"C:\Program Files\Crossledger\crossledger.exe"], platform="win32", registry=reg)
    assert where == r"HKEY_CURRENT_USER\Software\Microsoft\Windows\CurrentVersion\Run\Crossledger"
    run = reg.keys[r"HKCU\Software\Microsoft\Windows\CurrentVersion\Run"]
    assert run["Crossledger"] == (r'"C:\Program Files\Crossledger\crossledger.exe"', reg.REG_SZ)
    assert autostart.is_enabled(platform="win32", registry=reg)
    autostart.disable(platform="win32", registry=reg)
    assert not autostart.is_enabled(platform="win32", registry=reg)
    autostart.disable(platform="win32", registry=reg)


def test_the_default_command_starts_this_installation(tmp_path):
    cmd = autostart.default_command(tmp_path / "books")
    assert cmd[:3] == [sys.executable, "-m", "app"]
    assert cmd[3:] == ["--home", str((tmp_path / "books").resolve()), "gui"]
    # It really starts Crossledger (asked for its version here, not the window).
    out = subprocess.run([*cmd[:3], "--version"], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parent.parent)
    assert out.returncode == 0 and out.stdout.startswith("crossledger ")


def test_an_empty_command_is_refused(xdg):
    with pytest.raises(ValueError, match="program"):
        autostart.enable([], platform="linux")
