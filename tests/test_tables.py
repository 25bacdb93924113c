"""Tables fill their width: the Fill columns share the spare room in proportion to their minimums."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtGui import QStandardItemModel

from app.ui.app import make_application
from app.ui.tables import Fill, make_table


def _table(widths, columns: int, width: int, qtbot, hidden: int | None = None):
    make_application()
    model = QStandardItemModel(3, columns)
    table = make_table(model, widths)
    if hidden is not None:
        table.setColumnHidden(hidden, True)
    qtbot.addWidget(table)
    table.resize(width, 200)
    table.show()
    qtbot.waitUntil(lambda: table.viewport().width() > 0)
    table.viewport().resize(table.viewport().size())  # the fitter follows the viewport's size
    return table


def test_fill_columns_fill_the_viewport_exactly_and_never_scroll_sideways(qtbot):
    # the Review list: a long name column and a short one, beside a hidden date column
    table = _table((Fill(150), Fill(75), 0), 3, 262, qtbot, hidden=2)
    header = table.horizontalHeader()
    qtbot.waitUntil(lambda: header.sectionSize(0) + header.sectionSize(1) == table.viewport().width())
    assert header.sectionSize(0) > header.sectionSize(1) >= 75  # in proportion: the name keeps the room
    assert table.horizontalScrollBar().maximum() == 0


def test_below_the_minimums_the_columns_keep_them_and_the_table_scrolls(qtbot):
    table = _table((100, Fill(200), Fill(100)), 3, 250, qtbot)
    header = table.horizontalHeader()
    qtbot.waitUntil(lambda: header.sectionSize(1) == 200)
    assert (header.sectionSize(0), header.sectionSize(2)) == (100, 100)
