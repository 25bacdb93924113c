"""The store's change records (app/ops/changes.py), delivered on the UI thread as one signal.

Operations announce on whatever thread they ran (a worker, the scheduler's thread); the hub hands each
record to the UI thread and folds a burst of them (one per chosen conflict, say) into one per workspace,
so the window re-reads once.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Qt, QTimer, Signal

from app.ops import changes
from app.ops.changes import Changed


class ChangeHub(QObject):
    changed = Signal(object)  # Changed, on the UI thread
    _arrived = Signal(object)  # emitted on the announcing thread, queued to the hub's

    def __init__(self, store: Any, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pending: dict[int | None, Changed] = {}
        self._arrived.connect(self._collect, Qt.ConnectionType.QueuedConnection)
        self._stop = changes.listen(store, self._arrived.emit)
        self.destroyed.connect(lambda *_a, stop=self._stop: stop())

    def stop(self) -> None:
        """No more records (the window is closing)."""
        self._stop()

    def tell(self, changed: Changed) -> None:
        """A change the window learnt of another way (a run's or a scheduled job's end), told at once, with
        what was announced for the same workspace and not yet told."""
        before = self._pending.pop(changed.workspace_id, None)
        self.changed.emit(changed if before is None else before | changed)

    def _collect(self, changed: Changed) -> None:
        if not self._pending:
            QTimer.singleShot(0, self._flush)
        before = self._pending.get(changed.workspace_id)
        self._pending[changed.workspace_id] = changed if before is None else before | changed

    def _flush(self) -> None:
        pending, self._pending = self._pending, {}
        for changed in pending.values():
            self.changed.emit(changed)
