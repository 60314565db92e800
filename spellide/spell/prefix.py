"""Checking a prefix *as a prefix*: text the model will continue.

A prefix is open by nature (it ends inside forms the model's completion closes), so "does it
read" is the wrong question: the reader says incomplete for an open paren and for an open
string alike. But a prefix that ends inside a string, a comment or a character literal is
broken in a way the model cannot repair: its whole completion would become part of the string
or the comment (the model writes code, not the rest of a string). ``check_prefix`` refuses
those, and malformed text, with the line and column to mark; it accepts text that ends inside
forms, or in the middle of a token.

The scanner here only tracks what decides that (strings, regexes, comments, character
literals, delimiters); reading proper is left to ``reader``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from .errors import ReadError

__all__ = ["check_prefix", "scan_prefix", "PrefixState"]

_OPEN = {"(": ")", "[": "]", "{": "}"}
_CLOSE = {")", "]", "}"}
_C_COMMENTS = ("//", "/*", "*/")


@dataclass
class PrefixState:
    """Where a text ends, as the start of a longer text."""

    closers: list[str] = field(default_factory=list)   # what closes its open forms, outermost first
    ends_in: Optional[str] = None                       # "string" | "regex" | "comment" | "character"
    at: int = 0                                         # where that string/comment/character starts


def _line_start_comment(text: str, i: int) -> bool:
    """A C-style marker the reader treats as a comment: at the start of a line, after
    indentation only."""
    if not text.startswith(_C_COMMENTS, i):
        return False
    j = i - 1
    while j >= 0 and text[j] in " \t\r\f\v":
        j -= 1
    return j < 0 or text[j] == "\n"


def scan_prefix(text: str) -> PrefixState:
    """Open delimiters and the construct (if any) that ``text`` ends inside."""
    st = PrefixState()
    stack: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"' or (c == "#" and text.startswith('#"', i)):
            start = i
            i += 2 if c == "#" else 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            if i >= n:
                return PrefixState(stack, "regex" if c == "#" else "string", start)
            i += 1
            continue
        if c == ";" or text.startswith("#!", i) or (c in "/*" and _line_start_comment(text, i)):
            start = i
            nl = text.find("\n", i)
            if nl == -1:
                return PrefixState(stack, "comment", start)
            i = nl + 1
            continue
        if c == "\\":
            if i + 1 >= n:
                return PrefixState(stack, "character", i)
            i += 2
            continue
        if c in _OPEN:
            stack.append(_OPEN[c])
        elif c in _CLOSE and stack and stack[-1] == c:
            stack.pop()
        i += 1
    st.closers = stack
    return st


_WHAT = {
    "string": "the prefix ends inside a string (opened here): the model's completion would be part of the string",
    "regex": "the prefix ends inside a regex literal (opened here): the model's completion would be part of it",
    "comment": "the prefix ends inside a comment: the model's completion would be commented out",
    "character": "the prefix ends inside a character literal",
}


def _position(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def check_prefix(text: str) -> Optional[ReadError]:
    """None when ``text`` can be continued by a model: it may end inside forms or in a token,
    but not inside a string, a regex, a comment or a character literal, and what it has must
    read. Otherwise the ``ReadError`` to show, with line and column (``offset`` too)."""
    from .reader import read_all

    st = scan_prefix(text)
    if st.ends_in is not None:
        line, col = _position(text, st.at)
        err = ReadError(_WHAT[st.ends_in], line=line, col=col)
        err.offset = st.at  # type: ignore[attr-defined]
        return err
    closed = text + "".join(reversed(st.closers))
    try:
        read_all(closed)
    except ReadError as e:
        off = getattr(e, "offset", None)
        if off is not None and off >= len(text.rstrip()):
            return None   # the text stops where a form is still expected ('x, #_, ^m ...)
        return e
    return None
