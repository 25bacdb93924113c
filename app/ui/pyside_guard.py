"""A guard against a binary bug in the PySide6 wheel on CPython 3.11.

PySide6 6.12.0 (abi3 wheel) returns ``None``/``True`` from void and bool calls without taking a
reference, as if they were immortal (they are from Python 3.12 on). On 3.11 every such call, a
``label.setText`` or a ``signal.emit`` alike, drops one reference, and after a few thousand calls
Python aborts with "deallocating None". The guard measures the leak and, only if it is there,
lifts the three singletons' counts far out of reach, which is what 3.12 does for every object
of that kind. It changes nothing on a build without the bug.
"""

from __future__ import annotations

import ctypes
import sys

_HEADROOM = 1 << 40
_applied = False


def _leak_per_call() -> int:
    from PySide6.QtCore import QObject

    probe = QObject()
    probe.setObjectName("warm-up")  # the first call loads signatures, which holds references of its own
    calls = 16
    before = sys.getrefcount(None)
    for _ in range(calls):
        probe.setObjectName("probe")
    return (before - sys.getrefcount(None)) // calls


def apply() -> bool:
    """Make None, True and False immortal if this PySide6 build leaks them; True if it did."""
    global _applied
    if _applied:
        return True
    if sys.version_info >= (3, 12) or sys.implementation.name != "cpython" or hasattr(sys, "gettotalrefcount"):
        return False  # immortal already, or a build whose object header is laid out differently
    if _leak_per_call() <= 0:
        return False
    for singleton in (None, True, False):
        before = sys.getrefcount(singleton)
        ctypes.c_ssize_t.from_address(id(singleton)).value += _HEADROOM  # ob_refcnt is the first field
        if abs(sys.getrefcount(singleton) - before - _HEADROOM) > 1000:  # not the layout we expected: undo
            ctypes.c_ssize_t.from_address(id(singleton)).value -= _HEADROOM
            return False
    _applied = True
    return True
