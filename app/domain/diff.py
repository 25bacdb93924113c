"""What differs between two values, for the side-by-side diff view (pure; the UI only paints it)."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Literal

Op = Literal["equal", "delete", "insert", "gap"]  # gap: where the other side has text this one lacks
_TOKENS = re.compile(r"\s+|\w+|[^\w\s]")


@dataclass(frozen=True, slots=True)
class Span:
    op: Op
    text: str


def _tokens(text: str) -> list[str]:
    return _TOKENS.findall(text)


def diff_spans(left: str | None, right: str | None) -> tuple[list[Span], list[Span]]:
    """Spans for the left and right value: words that differ, and inside a changed word the characters.

    Left carries 'equal' and 'delete' spans; right carries 'equal' and 'insert' spans. Where one side
    has text the other lacks, the other side gets an empty 'gap' span at that spot, so the eye finds
    the place on both sides (a value that is empty altogether gets none: it reads as empty).
    """
    a, b = left or "", right or ""
    lt, rt = _tokens(a), _tokens(b)
    out_l: list[Span] = []
    out_r: list[Span] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=lt, b=rt, autojunk=False).get_opcodes():
        ltxt, rtxt = "".join(lt[i1:i2]), "".join(rt[j1:j2])
        if tag == "equal":
            out_l.append(Span("equal", ltxt))
            out_r.append(Span("equal", rtxt))
        elif tag == "replace" and i2 - i1 == 1 and j2 - j1 == 1:
            cl, cr = _char_spans(ltxt, rtxt)
            out_l += cl
            out_r += cr
        else:
            _pair(out_l, out_r, ltxt, rtxt)
    left_spans, right_spans = _merge(out_l), _merge(out_r)
    return (left_spans if a else []), (right_spans if b else [])


def _pair(out_l: list[Span], out_r: list[Span], ltxt: str, rtxt: str) -> None:
    """A changed stretch: what the left has marked deleted, what the right has marked inserted, and a
    gap on the side that has nothing there."""
    out_l.append(Span("delete", ltxt) if ltxt else Span("gap", ""))
    out_r.append(Span("insert", rtxt) if rtxt else Span("gap", ""))


def _char_spans(a: str, b: str) -> tuple[list[Span], list[Span]]:
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    if matcher.ratio() < 0.5:  # mostly different: mark the whole word, it reads better
        return [Span("delete", a)], [Span("insert", b)]
    out_l: list[Span] = []
    out_r: list[Span] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            out_l.append(Span("equal", a[i1:i2]))
            out_r.append(Span("equal", b[j1:j2]))
        else:
            _pair(out_l, out_r, a[i1:i2], b[j1:j2])
    return out_l, out_r


def _merge(spans: list[Span]) -> list[Span]:
    merged: list[Span] = []
    for span in spans:
        if span.op == "gap":
            if not (merged and merged[-1].op in ("gap", "delete", "insert")):
                merged.append(span)  # one marker per spot, none next to a marked change
        elif merged and merged[-1].op == "gap" and span.op != "equal":
            merged[-1] = span
        elif merged and merged[-1].op == span.op:
            merged[-1] = Span(span.op, merged[-1].text + span.text)
        elif span.text:
            merged.append(span)
    return merged
