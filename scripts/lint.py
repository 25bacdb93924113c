"""The static checks CI runs: ruff, mypy (against its baseline) and the import-layer contracts.

    .venv/bin/python scripts/lint.py

Run from anywhere with the project's venv Python. Each check prints one line, and what it found when
it fails; the exit status is non-zero when any check fails. All three always run.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUFF_PATHS = ("app", "tests", "bench", "scripts")


def _tool(name: str) -> str | None:
    """A console script of the venv this Python runs in, else one on PATH."""
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else shutil.which(name)


def _run(cmd: list[str]) -> tuple[int, str]:
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def ruff() -> tuple[bool, str, str]:
    exe = _tool("ruff")
    if exe is None:
        return False, "ruff is not installed in this Python's venv", ""
    code, out = _run([exe, "check", "--output-format", "concise", *RUFF_PATHS])
    if code == 0:
        return True, f"ok ({', '.join(RUFF_PATHS)})", ""
    found = re.search(r"Found (\d+) errors?", out)
    return False, f"FAILED, {found[1]} problem(s)" if found else "FAILED", out


def mypy() -> tuple[bool, str, str]:
    code, out = _run([sys.executable, str(ROOT / "scripts" / "mypy_ratchet.py")])
    first, _, rest = out.partition("\n")
    return code == 0, first.removeprefix("mypy: "), rest


def imports() -> tuple[bool, str, str]:
    exe = _tool("lint-imports")
    if exe is None:
        return False, "lint-imports (import-linter) is not installed in this Python's venv", ""
    code, out = _run([exe])
    summary = re.search(r"Contracts: (\d+) kept, (\d+) broken", out)
    if code == 0 and summary:
        return True, f"ok, {summary[1]} contracts kept", ""
    head = f"FAILED, {summary[2]} of {int(summary[1]) + int(summary[2])} contracts broken" if summary else "FAILED"
    _, found, broken = out.partition("Broken contracts")
    return False, head, (found + broken).strip() if found else out


CHECKS: list[tuple[str, Callable[[], tuple[bool, str, str]]]] = [
    ("ruff", ruff),
    ("mypy", mypy),
    ("import layers", imports),
]


def main() -> int:
    failed = []
    for name, check in CHECKS:
        ok, line, details = check()
        print(f"{name}: {line}", flush=True)
        if not ok:
            failed.append(name)
            if details:
                print("\n".join(f"    {d}" for d in details.splitlines()), flush=True)
    if failed:
        print(f"lint: {len(failed)} of {len(CHECKS)} checks failed ({', '.join(failed)})")
        return 1
    print(f"lint: all {len(CHECKS)} checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
