"""Regenerate counts-agree.png: one workspace whose header, tabs and list show the same numbers as
`crossledger status` and the tray (tests/test_counts.py seeds it).

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/screenshots/make_counts_screenshot.py
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from PySide6.QtCore import QCoreApplication  # noqa: E402

from app.connectors.tokens import MemoryTokenStore  # noqa: E402
from app.store.db import Store  # noqa: E402
from app.ui.app import make_application  # noqa: E402
from app.ui.main_window import MainWindow  # noqa: E402
from tests.test_counts import NOW, seed  # noqa: E402


def main() -> None:
    make_application()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{tmp}/counts.db")
        seed(store)
        window = MainWindow(store, MemoryTokenStore(), now=lambda: NOW)
        window.resize(1280, 800)
        window.show()
        for _ in range(5):
            QCoreApplication.processEvents()
        window.grab().save(str(Path(__file__).resolve().parent / "counts-agree.png"))
        window.shutdown()
        window.close()
        store.dispose()


if __name__ == "__main__":
    main()
