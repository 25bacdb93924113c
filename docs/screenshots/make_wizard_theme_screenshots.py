"""Regenerate wizard-{mapping,migration}-<page>-<light|dark>.png: every page of the mapping and migration
wizards at the default 1280×800, in both palettes.

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/screenshots/make_wizard_theme_screenshots.py

The mapping wizard runs on HubSpot and QuickBooks sandboxes served over HTTP (as tests/test_wizards_ui.py);
the migration wizard on in-process sandboxes seeded like the demo, with three possible matches added
(as tests/test_migration_wizard.py). The apply page is caught half-way, while it counts.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

OUT = ROOT / "docs" / "screenshots"
SIZE = (1280, 800)


def _pump(until: Callable[[], bool], timeout: float = 120.0) -> None:
    from PySide6.QtCore import QCoreApplication

    end = time.monotonic() + timeout
    while not until() and time.monotonic() < end:
        QCoreApplication.processEvents()
        time.sleep(0.02)
    QCoreApplication.processEvents()


def _save(widget, name: str, tone: str) -> Path:
    path = OUT / f"wizard-{name}-{tone}.png"
    widget.grab().save(str(path))
    return path


def mapping(tone: str, folder: Path) -> list[Path]:
    from app.connectors.tokens import MemoryTokenStore
    from app.store.db import Store
    from app.ui.mapping_wizard import MappingWizard
    from tests.test_wizards_ui import _connected

    home = folder / f"mapping-{tone}"
    home.mkdir()
    store = Store(f"sqlite:///{home / 'crossledger.db'}")
    tokens = MemoryTokenStore()
    _connected(store, tokens, home, "Maple Bakery Ltd")
    m = MappingWizard(store, tokens, "Maple Bakery Ltd")
    m.resize(*SIZE)
    m.show()
    _pump(lambda: m.currentPage().isComplete())
    saved = [_save(m, "mapping-1-objects", tone)]
    m.next()
    fields = m.currentPage()
    fields.tables["company"].set_combo("phone", 2, "phone")
    fields.tables["company"].set_combo("email", 3, "ask")
    _pump(lambda: True)
    saved.append(_save(m, "mapping-2-fields", tone))
    m.next()
    _pump(lambda: m.currentPage().isComplete())
    saved.append(_save(m, "mapping-3-preview", tone))
    m.next()
    _pump(lambda: True)
    saved.append(_save(m, "mapping-4-save", tone))
    m.reject()
    store.dispose()
    return saved


def migration(tone: str, folder: Path) -> list[Path]:
    from app.ui.migration_wizard import MigrationWizard
    from tests.test_migration_wizard import LINK, Sides

    home = folder / f"migration-{tone}"
    home.mkdir()
    sides = Sides(home)
    sides.add_near_matches()
    w = MigrationWizard(sides.store, None, sides.name, connectors=sides.connectors)
    w.resize(*SIZE)
    w.show()
    _pump(lambda: w.currentPage().step_id == "plan")
    plan = w.currentPage()
    link = next(r for r in w.mf.rows("link") if "same" in r.why)
    plan.select_row(link.id)
    _pump(lambda: True)
    saved = [_save(w, "migration-1-plan", tone)]
    w.next()
    saved.append(_save(w, "migration-2-invalid", tone))
    w.next()
    review = w.currentPage()
    review.choose(review.rows[0].id, LINK)
    _pump(lambda: True)
    saved.append(_save(w, "migration-3-review", tone))
    w.next()
    saved.append(_save(w, "migration-4-start", tone))
    apply = w.page_for("apply")
    shot: list[Path] = []

    def grab(_stage: str, done: int, total: int) -> None:
        if not shot and total > 1 and done >= total // 3:
            apply._redraw()
            shot.append(_save(w, "migration-5-apply", tone))

    apply.progressed.connect(grab)
    w.next()
    _pump(lambda: w.currentPage().step_id == "done", timeout=600)
    saved += shot
    saved.append(_save(w, "migration-6-done", tone))
    w.accept()
    sides.store.dispose()
    return saved


def main() -> None:
    from PySide6.QtCore import QThreadPool

    from app.ops import sandboxes
    from app.ui.app import make_application
    from app.ui.theme import apply_theme

    app = make_application()
    with tempfile.TemporaryDirectory(prefix="crossledger-wizard-shots-") as tmp:
        for dark in (False, True):
            apply_theme(app, dark=dark)
            tone = "dark" if dark else "light"
            for path in mapping(tone, Path(tmp)) + migration(tone, Path(tmp)):
                print(f"saved {path}")
        QThreadPool.globalInstance().waitForDone(20000)
        sandboxes.stop_all()


if __name__ == "__main__":
    main()
