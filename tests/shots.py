"""Where GUI tests save their screenshots.

A normal run writes them to a temporary folder, so a clean checkout stays clean after the tests.
``CROSSLEDGER_UPDATE_SCREENSHOTS=1 python3 scripts/dev.py test tests/test_activity_ui.py`` (or
``scripts/dev.py test --update-screenshots``) writes them into docs/screenshots on purpose.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

DOCS_SHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


def screenshot_dir() -> Path:
    if os.environ.get("CROSSLEDGER_UPDATE_SCREENSHOTS") == "1":
        return DOCS_SHOTS
    folder = Path(tempfile.gettempdir()) / f"crossledger-test-screenshots-{os.getpid()}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
