"""Activity: every run of a workspace, the field changes each made, their export, a record's history, and undo.

The reading is ``app.ops.history_export.load_activity`` and the undo is ``app.ops.undo``; both run off the
UI thread through ``BackgroundJob``. The page (``page``, with its filters in ``filtering``) filters what was
read and draws it with the tables in ``models``; the undo and a record's history open in ``dialogs``.
"""

from __future__ import annotations

from app.ui.activity.dialogs import RecordHistoryDialog, StoreUndo, UndoActions, UndoDialog, notice_for_undo_error
from app.ui.activity.models import ChangeModel, Filters, RunModel
from app.ui.activity.page import ActivityPage

__all__ = ["ActivityPage", "ChangeModel", "Filters", "RecordHistoryDialog", "RunModel", "StoreUndo", "UndoActions",
           "UndoDialog", "notice_for_undo_error"]
