"""Packaging inputs: the PyInstaller spec, the app icons, the .desktop file, the scripts, the About box.

The PyInstaller build itself is too slow for the test suite: packaging/build_linux.sh runs it and
smoke-tests the bundle. Here the spec is executed with PyInstaller's build steps stubbed out, so
what it would bundle can be checked in milliseconds (PyInstaller need not be installed).
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import configparser
import shutil
import struct
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

import app

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "packaging" / "crossledger.spec"
ICONS = ROOT / "resources" / "icons" / "app"
DESKTOP = ROOT / "resources" / "crossledger.desktop"
SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


class _Step:
    """Stands in for Analysis, PYZ, EXE, COLLECT and BUNDLE, recording what the spec passes."""

    calls: dict[str, list[_Step]]

    def __init__(self, kind: str, *args: Any, **kw: Any) -> None:
        self.kind, self.args, self.kw = kind, args, kw
        self.calls.setdefault(kind, []).append(self)
        self.scripts = self.pure = self.binaries = self.datas = []


def run_spec(monkeypatch: pytest.MonkeyPatch, platform: str = "linux") -> dict[str, list[_Step]]:
    calls: dict[str, list[_Step]] = {}
    hooks = types.ModuleType("PyInstaller.utils.hooks")
    hooks.collect_submodules = lambda name, filter=None: [f"<all of {name}>"]
    hooks.collect_data_files = lambda name, **kw: [(f"<data of {name}>", name)]
    hooks.copy_metadata = lambda name, **kw: [(f"<metadata of {name}>", f"{name}.dist-info")]
    versioninfo = types.ModuleType("PyInstaller.utils.win32.versioninfo")
    for cls in ("FixedFileInfo", "StringFileInfo", "StringStruct", "StringTable", "VarFileInfo", "VarStruct",
                "VSVersionInfo"):
        setattr(versioninfo, cls, lambda *a, _cls=cls, **kw: (_cls, a, kw))
    for name, module in {"PyInstaller": types.ModuleType("PyInstaller"),
                         "PyInstaller.utils": types.ModuleType("PyInstaller.utils"),
                         "PyInstaller.utils.hooks": hooks,
                         "PyInstaller.utils.win32": types.ModuleType("PyInstaller.utils.win32"),
                         "PyInstaller.utils.win32.versioninfo": versioninfo}.items():
        monkeypatch.setitem(sys.modules, name, module)
    step = type("Step", (_Step,), {"calls": calls})
    namespace = {"SPECPATH": str(SPEC.parent), "__file__": str(SPEC)}
    namespace.update({kind: (lambda *a, _k=kind, **kw: step(_k, *a, **kw))
                      for kind in ("Analysis", "PYZ", "EXE", "COLLECT", "BUNDLE")})
    monkeypatch.setattr(sys, "platform", platform)
    exec(compile(SPEC.read_text(encoding="utf-8"), str(SPEC), "exec"), namespace)
    monkeypatch.undo()
    return calls


@pytest.fixture
def spec(monkeypatch) -> dict[str, list[_Step]]:
    return run_spec(monkeypatch)


def _bundled(calls: dict[str, list[_Step]]) -> set[str]:
    """Files the spec bundles from the repository, as their path in the bundle."""
    out = set()
    for src, dest in calls["Analysis"][0].kw["datas"]:
        if not src.startswith("<"):
            out.add((Path(dest) / Path(src).name).as_posix())
    return out


def test_the_spec_bundles_every_migration_where_alembic_looks_for_it(spec):
    bundled = _bundled(spec)
    migrations = ROOT / "app" / "store" / "migrations"
    wanted = {p.relative_to(ROOT).as_posix() for p in migrations.rglob("*")
              if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}
    assert {"app/store/migrations/env.py", "app/store/migrations/script.py.mako"} <= wanted
    assert any(w.startswith("app/store/migrations/versions/0001") for w in wanted)
    assert wanted <= bundled, f"missing: {sorted(wanted - bundled)}"
    # app/store/migrate.py finds them next to itself: MIGRATIONS = Path(__file__).with_name("migrations").
    from app.store import migrate

    assert migrate.MIGRATIONS.relative_to(ROOT).as_posix() == "app/store/migrations"


def test_the_spec_bundles_every_resource(spec):
    bundled = _bundled(spec)
    wanted = {p.relative_to(ROOT).as_posix() for p in (ROOT / "resources").rglob("*") if p.is_file()}
    assert {"resources/style.qss", "resources/crossledger.desktop", "resources/icons/crossledger.svg",
            "resources/icons/app/crossledger-256.png"} <= wanted
    assert wanted <= bundled, f"missing: {sorted(wanted - bundled)}"


def test_the_spec_names_the_dynamic_imports(spec):
    analysis = spec["Analysis"][0]
    hidden = set(analysis.kw["hiddenimports"])
    # Connectors and sandboxes are imported by name from app.connectors.registry.
    for provider, module in __import__("app.connectors.registry", fromlist=["x"]).PROVIDER_MODULES.items():
        if (ROOT / Path(*module.split("."))).with_suffix(".py").exists():
            assert module in hidden, provider
    for path in (ROOT / "app" / "sandbox").glob("*.py"):
        name = "app.sandbox" if path.stem == "__init__" else f"app.sandbox.{path.stem}"
        assert name in hidden
    assert not any(h.startswith("app.store.migrations") for h in hidden), "Alembic loads those from files"
    assert {"keyring.backends.SecretService", "keyring.backends.Windows", "keyring.backends.macOS",
            "secretstorage", "jeepney", "sqlalchemy.dialects.sqlite", "alembic.ddl.sqlite",
            "apscheduler.jobstores.sqlalchemy", "<all of stdnum>", "<all of keyring.backends>",
            "<all of apscheduler.triggers>", "<all of email_validator>"} <= hidden
    metadata = {dest for src, dest in analysis.kw["datas"] if src.startswith("<metadata")}
    assert {"keyring.dist-info", "APScheduler.dist-info"} <= metadata
    assert (ROOT / "packaging" / "hooks" / "hook-phonenumbers.py").exists()
    assert (ROOT / "packaging" / "hooks" / "hook-pycountry.py").exists()
    assert Path(analysis.args[0][0]).exists()  # the entry script


def test_the_executable_and_folder_are_called_crossledger(spec):
    assert spec["EXE"][0].kw["name"] == "crossledger"
    assert spec["EXE"][0].kw["console"] is True
    assert spec["COLLECT"][0].kw["name"] == "crossledger"
    assert "BUNDLE" not in spec


def test_on_macos_the_spec_makes_a_versioned_app_bundle(monkeypatch):
    calls = run_spec(monkeypatch, "darwin")
    (bundle,) = calls["BUNDLE"]
    assert bundle.kw["name"] == "Crossledger.app"
    assert bundle.kw["version"] == app.__version__
    assert bundle.kw["info_plist"]["CFBundleShortVersionString"] == app.__version__
    assert Path(bundle.kw["icon"]).name == "crossledger.icns" and Path(bundle.kw["icon"]).exists()
    assert Path(calls["EXE"][0].kw["entitlements_file"]).exists()


def test_on_windows_the_exe_carries_the_version_and_icon(monkeypatch):
    calls = run_spec(monkeypatch, "win32")
    exe = calls["EXE"][0].kw
    assert Path(exe["icon"]).name == "crossledger.ico" and Path(exe["icon"]).exists()
    assert exe["hide_console"] == "hide-early"
    assert f"StringStruct', ('ProductVersion', '{app.__version__}')" in repr(exe["version"])


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", f"{path.name} is not a PNG"
    return struct.unpack(">II", data[16:24])


@pytest.mark.parametrize("size", SIZES)
def test_the_app_icon_exists_at_each_size(size):
    path = ICONS / f"crossledger-{size}.png"
    assert path.exists(), "run packaging/render_icons.py"
    assert _png_size(path) == (size, size)
    from PySide6.QtGui import QImage

    image = QImage(str(path))
    assert image.width() == size and image.hasAlphaChannel()
    assert image.pixelColor(size // 2, size // 2).alpha() == 255  # drawn, not blank
    assert image.pixelColor(0, 0).alpha() < 128  # the rounded corner stays transparent


def test_the_windows_and_macos_icon_files_hold_every_size():
    data = (ICONS / "crossledger.ico").read_bytes()
    reserved, kind, count = struct.unpack("<HHH", data[:6])
    assert (reserved, kind) == (0, 1)
    sizes = []
    for i in range(count):
        width, _h, _c, _r, _planes, _bits, length, offset = struct.unpack("<BBBBHHII", data[6 + 16 * i:22 + 16 * i])
        assert data[offset:offset + 8] == b"\x89PNG\r\n\x1a\n" and offset + length <= len(data)
        sizes.append(width or 256)
    assert sizes == [16, 24, 32, 48, 64, 128, 256]
    icns = (ICONS / "crossledger.icns").read_bytes()
    assert icns[:4] == b"icns" and struct.unpack(">I", icns[4:8])[0] == len(icns)
    assert b"ic09" in icns and b"icp4" in icns  # 512 and 16


def _desktop_entry() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # keys are case-sensitive
    parser.read_string(DESKTOP.read_text(encoding="utf-8"))
    return parser["Desktop Entry"]


def test_the_desktop_file_is_valid():
    entry = _desktop_entry()
    assert entry["Type"] == "Application"
    assert entry["Name"] == "Crossledger"
    assert entry["Exec"].split()[0] == "crossledger"
    assert entry["Icon"] == "crossledger"  # installed as hicolor/<N>x<N>/apps/crossledger.png
    assert (ICONS / f"{entry['Icon']}-256.png").exists()
    categories = entry["Categories"]
    assert categories.endswith(";") and {"Office", "Finance"} <= set(categories.strip(";").split(";"))
    assert entry.get("Terminal") == "false"
    if shutil.which("desktop-file-validate"):
        out = subprocess.run(["desktop-file-validate", str(DESKTOP)], capture_output=True, text=True)
        assert out.returncode == 0 and not out.stdout.strip(), out.stdout + out.stderr


@pytest.mark.parametrize("script", ["build_linux.sh", "smoke_test.sh"])
def test_the_shell_scripts_parse(script):
    path = ROOT / "packaging" / script
    assert os.access(path, os.X_OK), f"{script} should be executable"
    out = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    if shutil.which("shellcheck"):
        out = subprocess.run(["shellcheck", "-S", "warning", str(path)], capture_output=True, text=True)
        assert out.returncode == 0, out.stdout


def test_the_windows_installer_script_uses_the_bundle_and_icon():
    iss = (ROOT / "packaging" / "windows" / "crossledger.iss").read_text(encoding="utf-8")
    assert r'"..\..\dist\crossledger"' in iss and '"crossledger.exe"' in iss
    assert r"SetupIconFile=..\..\resources\icons\app\crossledger.ico" in iss
    assert (SPEC.parent / "windows" / r"..\..\resources\icons\app\crossledger.ico".replace("\\", "/")).exists()


def test_the_about_box_names_every_version_a_bug_report_needs(qtbot):
    import PySide6
    from PySide6.QtCore import qVersion
    from PySide6.QtGui import QGuiApplication

    from app.ui.about import AboutDialog

    dialog = AboutDialog()
    qtbot.addWidget(dialog)
    labels = {name: label.text() for name, label in dialog.version_labels.items()}
    assert labels["Crossledger"].startswith(app.__version__)
    assert labels["Qt"] == qVersion() and labels["PySide6"] == PySide6.__version__
    assert labels["Python"].startswith(f"{sys.version_info.major}.{sys.version_info.minor}.")
    for library in ("httpx", "SQLAlchemy", "APScheduler", "openpyxl", "keyring"):
        assert labels[library][0].isdigit(), (library, labels[library])
    dialog.copy_button.click()
    copied = QGuiApplication.clipboard().text()
    assert f"Crossledger: {app.__version__}" in copied and f"keyring: {labels['keyring']}" in copied
