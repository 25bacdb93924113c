"""A small step machine, shared by the connect and mapping wizards.

Each step names its next step (a function of the collected data), checks the values a page
hands it, and says what accepting them does to the data. Pages load from ``flow.data`` and
submit to ``flow.submit``; nothing is committed until the last step is accepted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Data = dict[str, Any]
Problems = dict[str, str]  # field -> what is wrong, in words a bookkeeper acts on


@dataclass(slots=True)
class Step:
    id: str
    title: str
    subtitle: str = ""
    next: Callable[[Data], str | None] = lambda _d: None
    validate: Callable[[Data, Data], Problems] = lambda _d, _v: {}
    accept: Callable[[Data, Data], None] | None = None  # effect of accepted values on the data

    def is_last(self, data: Data) -> bool:
        return self.next(data) is None


@dataclass(slots=True)
class Flow:
    steps: dict[str, Step]
    start: str
    data: Data = field(default_factory=dict)
    history: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.history:
            self.history.append(self.start)

    @property
    def current(self) -> Step:
        return self.steps[self.history[-1]]

    def step(self, step_id: str) -> Step:
        return self.steps[step_id]

    def check(self, values: Data, step_id: str | None = None) -> Problems:
        """What is wrong with ``values`` for a step (the current one by default), without accepting them."""
        return self.steps[step_id or self.history[-1]].validate(self.data, values)

    def submit(self, values: Data | None = None, step_id: str | None = None) -> Problems:
        """Accept a step's values (the current step's by default) and move on; on problems nothing changes."""
        values = dict(values or {})
        if step_id is not None and step_id != self.history[-1]:
            self.go(step_id)
        step = self.current
        problems = step.validate(self.data, values)
        if problems:
            return problems
        if step.accept is not None:
            step.accept(self.data, values)
        else:
            self.data.update(values)
        nxt = step.next(self.data)
        if nxt is not None:
            if nxt not in self.steps:
                raise KeyError(f"step {step.id!r} names an unknown next step {nxt!r}")
            self.history.append(nxt)
        return {}

    def back(self) -> None:
        if len(self.history) > 1:
            self.history.pop()

    def go(self, step_id: str) -> None:
        """Jump back to an earlier step (a way forward after a failure), dropping the steps after it."""
        if step_id in self.history:
            del self.history[self.history.index(step_id) + 1:]
        else:
            self.history.append(step_id)

    def path(self) -> list[str]:
        """The steps still ahead if nothing changes, from the current one (for a page counter)."""
        out, seen = [self.history[-1]], set()
        while (nxt := self.steps[out[-1]].next(self.data)) is not None and nxt not in seen:
            seen.add(nxt)
            out.append(nxt)
        return out

    def position(self, step_id: str, data: Data | None = None) -> tuple[int, int]:
        """Where a step stands for a "Step 2 of 4" indicator: its number along the steps taken to
        reach it, and that plus the steps still ahead of it (which the data decide)."""
        before = self.history[: self.history.index(step_id)] if step_id in self.history else list(self.history)
        ahead, seen = [step_id], {*before, step_id}
        d = self.data if data is None else data
        while (nxt := self.steps[ahead[-1]].next(d)) is not None and nxt not in seen:
            seen.add(nxt)
            ahead.append(nxt)
        return len(before) + 1, len(before) + len(ahead)
