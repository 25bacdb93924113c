"""What an undo is made of: its steps, refusals and result, and how values are compared and shown.

Shared by the planning (``app.ops.undo``) and the applying (``app.ops.undo_apply``) of an undo.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from app.connectors import registry

Progress = Callable[[str, int, int], None]


class UndoError(Exception):
    """The run cannot be undone at all; ``message`` says why in plain words."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class UndoStep:
    kind: str  # "restore_field" | "deactivate_customer" | "void_invoice" | "unlink"
    side: str  # "crm" | "accounting" | "local"
    record_type: str  # "company" | "person" | "deal" | "customer" | "invoice" | "link"
    record_id: str
    label: str
    field: str | None
    current: str | None
    restore_to: str | None
    description: str


@dataclass(frozen=True)
class UndoRefusal:
    record_type: str
    record_id: str
    label: str
    field: str | None
    reason: str


@dataclass(frozen=True)
class UndoPlan:
    workspace: str
    run_id: int
    run_summary: str
    steps: list[UndoStep]
    refusals: list[UndoRefusal]
    already_done: int = 0  # steps a crashed earlier attempt finished (found done on the target)

    def to_json(self) -> dict[str, Any]:
        return {"workspace": self.workspace, "run_id": self.run_id, "summary": self.run_summary,
                "steps": [s.__dict__ for s in self.steps], "refusals": [r.__dict__ for r in self.refusals],
                "already_done": self.already_done}


@dataclass(frozen=True)
class UndoResult:
    undo_run_id: int | None
    status: str  # "ok" | "partial" | "failed" | "cancelled"
    done: int
    refused: int
    failed: int
    message: str
    errors: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"undo_run_id": self.undo_run_id, "status": self.status, "done": self.done,
                "refused": self.refused, "failed": self.failed, "message": self.message, "errors": self.errors}


# -- internal plan ------------------------------------------------------------------------------
@dataclass
class Action:
    step: UndoStep
    key: str
    do: dict[str, Any]  # what to send: kind-specific
    after: str | None = None  # key of the action that must succeed first
    settled: bool = False  # a crashed earlier attempt already did it: mark done, write nothing


@dataclass
class PlannedUndo:
    ws_id: int
    ws_name: str
    run_id: int
    summary: str
    actions: list[Action]
    refusals: list[UndoRefusal]

    def public(self) -> UndoPlan:
        return UndoPlan(self.ws_name, self.run_id, self.summary, [a.step for a in self.actions if not a.settled],
                        list(self.refusals), sum(1 for a in self.actions if a.settled))


def as_text(value: Any) -> str | None:
    return None if value is None else str(value)


def same_value(a: str | None, b: str | None) -> bool:
    """Values as read back equal what was written: blanks alike, numbers by value (0 and 0.00)."""
    a, b = (a or None), (b or None)
    if a == b:
        return True
    if a is None or b is None or not (NUMBER.match(a) and NUMBER.match(b)):
        return False
    try:
        return Decimal(a) == Decimal(b)
    except (InvalidOperation, ValueError):
        return False


NUMBER = re.compile(r"^-?(0|[1-9]\d*)(\.\d+)?$")  # amounts; not phone numbers or postal codes


provider_label = registry.label

def day_text(value: dt.datetime) -> str:
    return f"{value.day} {value:%b %Y}"
