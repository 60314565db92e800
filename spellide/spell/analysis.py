"""The shape of a program, for tools that show or compare programs (the IDE's tree and diff).

A Spell agent's program is normally ``(quine NAME (eval (do f1 f2 ...)))``: the forms that
matter turn by turn are the ``do`` body's, and the quine's other arguments rarely change.
These helpers say where those parts are, so no tool outside the core re-derives the wrapper.
"""

from __future__ import annotations

from itertools import islice
from typing import Any, Optional

from .assembly import paren_balance
from .data import List, Symbol


def head_name(form: Any) -> Optional[str]:
    """The unqualified head symbol's name of a list form (``(prune 2)`` -> ``"prune"``)."""
    if isinstance(form, List) and form and isinstance(form[0], Symbol) and form[0].ns is None:
        return form[0].name
    return None


def is_quine_program(form: Any) -> bool:
    """True for the standard wrapper ``(quine NAME ... (eval (do ...)))``."""
    return (head_name(form) == "quine" and len(form) >= 3 and head_name(form[-1]) == "eval"
            and len(form[-1]) == 2 and head_name(form[-1][1]) == "do")


def _child_spans(form: Any, n: int) -> list:
    spans = getattr(form, "spans", None) or ()
    if len(spans) == n:   # the usual case: one copy (a long body is copied at every step)
        return list(spans)
    return (list(spans) + [None] * n)[:n]


def split_program(form: Any) -> tuple[list, list, list, list]:
    """(quine args, their spans, body forms, their spans) of a program form.

    For the standard wrapper the body is the ``do`` inside ``(eval (do ...))`` and the quine
    args are the others (normally just the name); a bare ``(do ...)`` has only a body; any
    other program is a single body form. Spans are ``None`` where the form was not read from
    text."""
    if is_quine_program(form):
        spans = _child_spans(form, len(form))
        tail = form[-1][1]
        body_spans = _child_spans(tail, len(tail))
        del body_spans[0]
        return (list(form[1:-1]), spans[1:-1], list(islice(tail, 1, None)), body_spans)
    if head_name(form) == "do":
        return [], [], list(form[1:]), _child_spans(form, len(form))[1:]
    return [], [], [form], [getattr(form, "span", None)]


def balance_open(text: str) -> tuple[str, int]:
    """An open prefix closed so it can be read, and how many ``)`` were added (parens are
    counted by the reader's lexical rules, as ``assembly`` counts them)."""
    n = paren_balance(text)
    return (text + ")" * n, n) if n > 0 else (text, 0)
