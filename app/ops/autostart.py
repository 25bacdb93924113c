"""Start Crossledger when the user logs in: an XDG autostart entry on Linux and other Unix desktops,
a LaunchAgent on macOS, a value under the Run key on Windows. One API for all three.

The content of each (the .desktop file, the plist, the registry value) is made by a pure function,
so it is tested on any platform; only ``enable``/``disable``/``is_enabled`` touch the system.
"""

from __future__ import annotations

import os
import plistlib
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.domain import files

APP_NAME = "Crossledger"
DESKTOP_FILE = "crossledger.desktop"
LAUNCH_AGENT_LABEL = "app.crossledger.Crossledger"
RUN_KEY = r"Software\Microsoft\Windows\CurrentVersion\Run"
RUN_VALUE = "Crossledger"

Command = Sequence[str]


def default_command(home: Path | str | None = None, extra: Sequence[str] = ("gui",)) -> list[str]:
    """How to start this installation again: the bundle's executable, or this Python with ``-m app``."""
    if getattr(sys, "frozen", False):
        cmd = [sys.executable]
    else:
        cmd = [sys.executable, "-m", "app"]
    if home:
        cmd += ["--home", str(Path(home).expanduser().resolve())]
    return cmd + list(extra)


# -- Linux and other XDG desktops --------------------------------------------------------------

_EXEC_RESERVED = set(' \t\n"\'\\><~|&;$*?#()`')


def _exec_quote(arg: str) -> str:
    """Quote one argument for a desktop entry's Exec key (Desktop Entry Specification, 'Exec')."""
    arg = arg.replace("%", "%%")  # field codes start with %; a literal one is doubled
    if arg and not (set(arg) & _EXEC_RESERVED):
        return arg
    escaped = "".join("\\" + ch if ch in '"`$\\' else ch for ch in arg)
    return f'"{escaped}"'


def _value_escape(value: str) -> str:
    """A desktop entry string value: backslash, newline, tab and carriage return are escaped."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")


def exec_line(cmd: Command) -> str:
    return " ".join(_exec_quote(a) for a in cmd)


def desktop_entry(cmd: Command, *, name: str = APP_NAME) -> str:
    # The Exec value is escaped twice, as the spec says: quoting for the command line first, then
    # the general string escaping every value gets (so a backslash in a path becomes four).
    return "\n".join([
        "[Desktop Entry]",
        "Type=Application",
        f"Name={name}",
        "Comment=Keeps your CRM and accounting system in sync",
        f"Exec={_value_escape(exec_line(cmd))}",
        "Icon=crossledger",
        "Terminal=false",
        "Categories=Office;Finance;",
        "X-GNOME-Autostart-enabled=true",
        "",
    ])


def xdg_config_home(env: dict[str, str] | None = None) -> Path:
    """$XDG_CONFIG_HOME when it is an absolute path (the spec ignores a relative one), else ~/.config."""
    value = (env if env is not None else os.environ).get("XDG_CONFIG_HOME", "")
    if value and os.path.isabs(value):
        return Path(value)
    return Path.home() / ".config"


def desktop_path() -> Path:
    return xdg_config_home() / "autostart" / DESKTOP_FILE


def _entry_enabled(text: str) -> bool:
    """False when the entry hides itself (Hidden=true) or GNOME's switch is off."""
    in_entry = False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("["):
            in_entry = line == "[Desktop Entry]"
            continue
        if not in_entry or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key, value = key.strip(), value.strip().lower()
        if key == "Hidden" and value == "true":
            return False
        if key == "X-GNOME-Autostart-enabled" and value == "false":
            return False
    return True


# -- macOS -------------------------------------------------------------------------------------

def launch_agent_plist(cmd: Command, *, label: str = LAUNCH_AGENT_LABEL) -> bytes:
    return plistlib.dumps({
        "Label": label,
        "ProgramArguments": list(cmd),
        "RunAtLoad": True,
        "KeepAlive": False,
        "ProcessType": "Interactive",
        "LimitLoadToSessionType": "Aqua",  # the graphical login only, not ssh sessions
    })


def launch_agent_path(label: str = LAUNCH_AGENT_LABEL) -> Path:
    return Path.home() / "Library" / "LaunchAgents" / f"{label}.plist"


# -- Windows -----------------------------------------------------------------------------------

def run_key_value(cmd: Command) -> tuple[str, str]:
    """The value name and command line stored under HKCU\\...\\Run (quoted the Windows way)."""
    return RUN_VALUE, subprocess.list2cmdline(list(cmd))


def _winreg() -> Any:
    import winreg  # only on Windows

    return winreg


# -- the API -----------------------------------------------------------------------------------

def _platform(platform: str | None) -> str:
    p = platform or sys.platform
    if p.startswith("win"):
        return "windows"
    if p == "darwin":
        return "macos"
    return "xdg"


def _write_private(path: Path, data: bytes) -> None:
    files.write_bytes(path, data)  # never a half-written entry at login


def enable(exec_cmd: Command | str, *, platform: str | None = None, registry: Any = None) -> Path | str:
    """Start ``exec_cmd`` at login; returns where it was written (a file, or the registry value)."""
    cmd = [exec_cmd] if isinstance(exec_cmd, str) else list(exec_cmd)
    if not cmd or not cmd[0]:
        raise ValueError("an autostart command needs a program to run")
    kind = _platform(platform)
    if kind == "windows":
        reg = registry or _winreg()
        name, value = run_key_value(cmd)
        key = reg.CreateKeyEx(reg.HKEY_CURRENT_USER, RUN_KEY, 0, reg.KEY_SET_VALUE)
        try:
            reg.SetValueEx(key, name, 0, reg.REG_SZ, value)
        finally:
            reg.CloseKey(key)
        return f"HKEY_CURRENT_USER\\{RUN_KEY}\\{name}"
    if kind == "macos":
        path = launch_agent_path()
        _write_private(path, launch_agent_plist(cmd))
        return path
    path = desktop_path()
    _write_private(path, desktop_entry(cmd).encode("utf-8"))
    return path


def disable(*, platform: str | None = None, registry: Any = None) -> None:
    """Stop starting at login; doing it twice is harmless."""
    kind = _platform(platform)
    if kind == "windows":
        reg = registry or _winreg()
        try:
            key = reg.OpenKey(reg.HKEY_CURRENT_USER, RUN_KEY, 0, reg.KEY_SET_VALUE)
        except FileNotFoundError:
            return
        try:
            reg.DeleteValue(key, RUN_VALUE)
        except FileNotFoundError:
            pass
        finally:
            reg.CloseKey(key)
        return
    path = launch_agent_path() if kind == "macos" else desktop_path()
    path.unlink(missing_ok=True)


def is_enabled(*, platform: str | None = None, registry: Any = None) -> bool:
    kind = _platform(platform)
    if kind == "windows":
        reg = registry or _winreg()
        try:
            key = reg.OpenKey(reg.HKEY_CURRENT_USER, RUN_KEY, 0, reg.KEY_READ)
        except FileNotFoundError:
            return False
        try:
            value, _type = reg.QueryValueEx(key, RUN_VALUE)
        except FileNotFoundError:
            return False
        finally:
            reg.CloseKey(key)
        return bool(value)
    if kind == "macos":
        return launch_agent_path().is_file()
    path = desktop_path()
    try:
        return _entry_enabled(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, UnicodeDecodeError):
        return False

