#!/usr/bin/env python3
"""Bootstrap and run Crossledger from a clone, with nothing but Python 3.11+.

    python3 scripts/dev.py demo      # set up, then open the app on the embedded demo
    python3 scripts/dev.py test      # set up, then run the whole test suite (on every core)
    python3 scripts/dev.py lint      # ruff, the mypy ratchet and the import-linter contracts
    python3 scripts/dev.py run ARGS  # any crossledger command

`test` takes pytest's own arguments too (`test tests/test_cli.py -x`); `--update-screenshots`
writes the GUI tests' screenshots into docs/screenshots instead of a temporary folder, and
CROSSLEDGER_TEST_WORKERS sets how many test processes run side by side.

It finds uv (or installs it into a private bootstrap venv), installs the locked dependencies
into .venv with the Python running this script, and runs the command there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def find_uv() -> str:
    found = shutil.which("uv")
    if found:
        return found
    boot = ROOT / ".venv-bootstrap"
    exe = boot / ("Scripts" if os.name == "nt" else "bin") / ("uv.exe" if os.name == "nt" else "uv")
    if not exe.exists():
        print("Installing uv into .venv-bootstrap …", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(boot)
        py = boot / ("Scripts" if os.name == "nt" else "bin") / "python"
        subprocess.run([str(py), "-m", "pip", "install", "--quiet", "uv"], check=True)
    return str(exe)


def test_args(rest: list[str], env: dict[str, str]) -> list[str]:
    """The whole suite on two workers a core plus one (most tests spend part of their time waiting on
    sockets, child processes and Qt's event loop, so one worker a core leaves a core idle a quarter of the
    time), the 15 slowest tests listed at the end."""
    if "--update-screenshots" in rest:
        rest = [a for a in rest if a != "--update-screenshots"]
        env["CROSSLEDGER_UPDATE_SCREENSHOTS"] = "1"
    # Many tests start `python -m app` as a child process. With PYTHONDONTWRITEBYTECODE (set in many
    # container images) no bytecode is ever cached, and every child compiles the app and its libraries
    # from source again: about 1.5 s of CPU each, minutes over the suite. The caches go to __pycache__.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    workers = env.get("CROSSLEDGER_TEST_WORKERS") or str(min(9, 2 * (os.cpu_count() or 1) + 1))
    extra = [] if any(a == "-n" or a.startswith(("-n", "--numprocesses")) for a in rest) else ["-n", workers]
    if not any(a.startswith("--durations") for a in rest):
        extra.append("--durations=15")
    return [*extra, *rest]


def main(argv: list[str]) -> int:
    if sys.version_info < (3, 11):  # noqa: UP036 - this script is what tells an old Python so
        print("Crossledger needs Python 3.11 or newer.", file=sys.stderr)
        return 2
    if not argv or argv[0] not in {"demo", "test", "lint", "run"}:
        print(__doc__)
        return 2
    uv = find_uv()
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": os.environ.get("UV_PYTHON_DOWNLOADS", "never")}
    subprocess.run([uv, "sync", "--frozen", "--quiet", "--python", sys.executable], cwd=ROOT, env=env, check=True)
    cmd, rest = argv[0], argv[1:]
    if cmd == "demo":
        args = ["crossledger", "demo", *rest]
    elif cmd == "test":
        args = ["pytest", *test_args(rest, env)]
    elif cmd == "lint":
        args = ["python", str(ROOT / "scripts" / "lint.py"), *rest]
    else:
        args = ["crossledger", *rest]
    return subprocess.run([uv, "run", "--frozen", "--no-sync", *args], cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
