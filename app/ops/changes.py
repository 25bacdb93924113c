"""What an operation changed, told in one typed record: which workspace, which kinds of record.

Every operation that writes (a sync run, an undo, a migration, a chosen conflict, a released record, a
settings or connection change, a reconciliation) ends with ``announce(store, workspace_id, *kinds)``,
after its writes are committed. Whoever shows the store listens with ``listen(store, fn)``: the window
re-reads only what the kinds say, whether the change came from a click, a scheduled job or the CLI
in the same process. ``fn`` is called on the announcing thread, so a window passes it on to its own
thread (app/ui/changes.py).
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("crossledger.changes")

CUSTOMERS, INVOICES, CONFLICTS, QUARANTINE = "customers", "invoices", "conflicts", "quarantine"
RUNS, SETTINGS, CONNECTIONS, RECONCILIATIONS = "runs", "settings", "connections", "reconciliations"
WORKSPACES = "workspaces"  # added, renamed or removed: the list itself
KINDS = frozenset({CUSTOMERS, INVOICES, CONFLICTS, QUARANTINE, RUNS, SETTINGS, CONNECTIONS, RECONCILIATIONS,
                   WORKSPACES})

# What each operation may change (an operation that changed less still names these: the window re-reads
# a little more than needed, never less).
SYNC = (CUSTOMERS, INVOICES, CONFLICTS, QUARANTINE, RUNS)
DRY_RUN = (RUNS,)
UNDO = (CUSTOMERS, INVOICES, CONFLICTS, QUARANTINE, RUNS)
MIGRATION = (CUSTOMERS, QUARANTINE, RUNS)
RESOLVE = (CONFLICTS,)
RELEASE = (QUARANTINE,)
PICK_MATCH = (CONFLICTS, QUARANTINE, SETTINGS)


@dataclass(frozen=True, slots=True)
class Changed:
    """``workspace_id`` None: which workspace is not known (or several): the listener re-reads them all."""

    workspace_id: int | None
    kinds: frozenset[str]

    def __post_init__(self) -> None:
        unknown = self.kinds - KINDS
        if unknown:
            raise ValueError(f"unknown kinds of change: {', '.join(sorted(unknown))}")

    def touches(self, *kinds: str) -> bool:
        return bool(self.kinds.intersection(kinds))

    def __or__(self, other: Changed) -> Changed:
        """Two announcements as one (a listener that batches them)."""
        same = self.workspace_id == other.workspace_id
        return Changed(self.workspace_id if same else None, self.kinds | other.kinds)


Listener = Callable[[Changed], None]

_lock = threading.Lock()
_listeners: weakref.WeakKeyDictionary[Any, list[Listener]] = weakref.WeakKeyDictionary()


def listen(store: Any, fn: Listener) -> Callable[[], None]:
    """Call ``fn`` with each change announced on ``store``; returns the function that stops it."""
    with _lock:
        _listeners.setdefault(store, []).append(fn)

    def stop() -> None:
        with _lock:
            fns = _listeners.get(store, [])
            if fn in fns:
                fns.remove(fn)

    return stop


def announce(store: Any, workspace_id: int | None, *kinds: str | Iterable[str]) -> Changed:
    """Tell every listener of ``store`` what changed; a listener's failure never fails the operation."""
    flat: set[str] = set()
    for k in kinds:
        flat.update((k,) if isinstance(k, str) else k)
    changed = Changed(workspace_id, frozenset(flat))
    with _lock:
        fns = list(_listeners.get(store, []))
    for fn in fns:
        try:
            fn(changed)
        except Exception:  # the operation has succeeded; only the telling failed
            log.warning("a listener of %s failed", changed, exc_info=True)
    return changed
