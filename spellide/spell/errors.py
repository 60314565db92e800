"""Errors of the Spell runtime.

Evaluation errors are values in Spell (``try``/``catch`` sees them as maps); inside the
Python evaluator they travel as ``SpellError`` and are turned into results at the public
boundary, so no Python traceback ever reaches a user.
"""

from __future__ import annotations

from typing import Any, Optional

from .data import Span


class SpellError(Exception):
    """An error a Spell program can see: ``message`` is what the user reads.

    ``kind`` is a short machine-readable type (``"eval"``, ``"read"``, ``"depth-exceeded"``,
    ``"budget-exceeded"``, ``"multiple-top-level-forms"``, ...). Typed errors other than
    ``"eval"``/``"read"`` are never recovered by the turn machine.
    """

    def __init__(self, message: str, *, kind: str = "eval", form: Any = None,
                 containing_form: Any = None, thrown: Any = None, span: Optional[Span] = None):
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.form = form
        self.containing_form = containing_form
        self.thrown = thrown  # the value given to (throw v), if any
        self.span = span

    def __str__(self) -> str:
        return self.message


class ReadError(SpellError):
    """Text that cannot be read. ``incomplete`` tells input that ended too early (more text
    could fix it) from input that is malformed whatever follows."""

    def __init__(self, message: str, *, line: int, col: int, incomplete: bool = False):
        where = f"{line}:{col}"
        super().__init__(f"{message} at {where}", kind="read")
        self.reason = message
        self.line = line
        self.col = col
        self.incomplete = incomplete


class TypedError(SpellError):
    """Limits and policy errors (depth, budget, capacity, divergence): never recovered."""
