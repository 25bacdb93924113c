"""Regenerate reconcile-page.png and reconcile-workbook.png from the real demo, one discrepancy of each kind planted.

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/screenshots/make_reconcile_screenshots.py

The page is the Reconcile tab after a real run over the demo's sandboxes (September 2026). The workbook is
the one Export to Excel writes, rendered by LibreOffice (``soffice --convert-to pdf``) and rasterised with
poppler's ``pdftoppm``; its Summary and Discrepancies pages are stacked into one picture.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.reconcile_seed import planted_demo  # noqa: E402

NOW = dt.datetime(2026, 11, 27, 9, 30, tzinfo=dt.UTC)


def _settle(app: object, seconds: float = 0.3) -> None:
    from PySide6.QtCore import QCoreApplication

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QCoreApplication.processEvents()
        time.sleep(0.02)


def page_shot(out: Path, tmp: Path) -> Path:
    from PySide6.QtCore import QCoreApplication, QDate

    from app.ui.app import make_application
    from app.ui.main_window import MainWindow
    from app.ui.models import RowRole

    app = make_application()
    with planted_demo(tmp / "demo") as demo:
        window = MainWindow(demo.store, demo.tokens, now=lambda: NOW)
        window.resize(1360, 900)
        window.show()
        page = window.page
        page.tabs.setCurrentWidget(page.reconcile)
        rec = page.reconcile
        rec.month.setDate(QDate(2026, 9, 1))  # the month the planted discrepancies are in
        rec.start()
        deadline = time.monotonic() + 120
        while rec.running and time.monotonic() < deadline:
            QCoreApplication.processEvents()
            time.sleep(0.02)
        rec.set_severity(None)
        # Show the most serious rows, and select the amount difference so both Open buttons are live.
        for r in range(rec.proxy.rowCount()):
            if rec.proxy.data(rec.proxy.index(r, 0), RowRole).kind == "amount_mismatch":
                rec.table.selectRow(r)
        rec.table.scrollToTop()
        _settle(app)
        window.grab().save(str(out / "reconcile-page.png"))
        workbook = rec.result.write(tmp / "demo-reconciliation-2026-09.xlsx")
        window.close()
        rec.shutdown()
    del app
    return workbook


def workbook_shot(workbook: Path, out: Path, tmp: Path) -> None:
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    pdftoppm = shutil.which("pdftoppm")
    if not soffice or not pdftoppm:
        sys.exit("reconcile-workbook.png needs LibreOffice (soffice) and poppler-utils (pdftoppm).")
    subprocess.run([soffice, "--headless", f"-env:UserInstallation=file://{tmp}/lo-profile", "--convert-to", "pdf",
                    "--outdir", str(tmp), str(workbook)], check=True, capture_output=True, timeout=180)
    pdf = tmp / (workbook.stem + ".pdf")
    subprocess.run([pdftoppm, "-png", "-r", "150", "-f", "1", "-l", "2", str(pdf), str(tmp / "page")],
                   check=True, capture_output=True, timeout=120)
    pages = sorted(tmp.glob("page-*.png"))
    _stack(pages, out / "reconcile-workbook.png")


def _stack(pages: list[Path], target: Path) -> None:
    """The PDF pages one above the other, trimmed of their empty lower part, on white."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter, QPen

    app = QGuiApplication.instance() or QGuiApplication([])
    images = [_trim(QImage(str(p))) for p in pages]
    gap = 24
    width = max(i.width() for i in images)
    height = sum(i.height() for i in images) + gap * (len(images) - 1)
    canvas = QImage(width, height, QImage.Format.Format_RGB32)
    canvas.fill(Qt.GlobalColor.white)
    painter = QPainter(canvas)
    y = 0
    for n, image in enumerate(images):
        painter.drawImage(0, y, image)
        y += image.height()
        if n < len(images) - 1:
            painter.setPen(QPen(Qt.GlobalColor.lightGray, 2, Qt.PenStyle.DashLine))
            painter.drawLine(0, y + gap // 2, width, y + gap // 2)
            y += gap
    painter.end()
    canvas.save(str(target))
    del app


def _trim(image: object) -> object:
    """Crop a page to what is printed on it, keeping a white margin."""
    from PySide6.QtGui import QColor

    white = QColor("white").rgb()
    w, h = image.width(), image.height()
    rows = [y for y in range(0, h, 2) if any(image.pixel(x, y) != white for x in range(0, w, 3))]
    cols = [x for x in range(0, w, 2) if any(image.pixel(x, y) != white for y in range(rows[0], rows[-1], 3))]
    margin = 36
    left, top = max(0, cols[0] - margin), max(0, rows[0] - margin)
    return image.copy(left, top, min(w, cols[-1] + margin) - left, min(h, rows[-1] + margin) - top)


def main() -> None:
    out = Path(__file__).resolve().parent
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        workbook = page_shot(out, tmp)
        workbook_shot(workbook, out, tmp)


if __name__ == "__main__":
    main()
