"""Pretty-printing: a form as readable, indented text that reads back as the same form.

``printer.pr_str`` writes one line (what the runtime puts into prefixes); people reading a
long program, a value or an effect result want structure. A form that fits in ``width``
stays on one line; a longer list keeps its head (and, for binding forms, the first argument)
on the first line and indents the rest by two; vectors, maps and sets put one element (one
key/value pair) per line, aligned after the opening bracket; atoms share a line while they fit.
"""

from __future__ import annotations

from typing import Any

from .data import List, Map, Set, Symbol, Vector
from .printer import pr_str

# Heads whose first argument belongs on the first line: (def NAME ...), (fn [args] ...), ...
_KEEP_FIRST = frozenset({"def", "defn", "defmacro", "fn", "fn*", "let", "loop", "binding",
                         "if", "when", "when-not", "if-let", "when-let", "quine", "persist",
                         "doseq", "dotimes", "for", "catch"})


def pformat(form: Any, width: int = 80) -> str:
    """``form`` as indented text at most ``width`` columns wide where its atoms allow."""
    return _fmt(form, 0, width)


def _fmt(x: Any, col: int, width: int) -> str:
    flat = pr_str(x)
    if col + len(flat) <= width or not _is_coll(x) or len(x) == 0:
        return flat
    if type(x) is List or (isinstance(x, List) and not isinstance(x, Vector)):
        return _fmt_list(x, col, width)
    if isinstance(x, Vector):
        if getattr(x, "first_line", None) is not None:
            return flat
        return _fmt_items("[", list(x), "]", col, width)
    if isinstance(x, Map):
        return _fmt_pairs(x, col, width)
    return _fmt_items("#{", list(x), "}", col, width)


def _is_coll(x: Any) -> bool:
    return isinstance(x, (List, Vector, Map, Set))


def _fmt_list(x: List, col: int, width: int) -> str:
    items = list(x)
    head = pr_str(items[0])
    keep = 2 if (isinstance(items[0], Symbol) and items[0].name in _KEEP_FIRST and len(items) > 2) else 1
    first = "(" + head
    if keep == 2:
        first += " " + _fmt(items[1], col + len(first) + 1, width)
    rest = _packed(items[keep:], col + 2, width)
    return first + "\n" + " " * (col + 2) + rest + ")" if rest else first + ")"


def _fmt_items(open_: str, items: list, close: str, col: int, width: int) -> str:
    return open_ + _packed(items, col + len(open_), width) + close


def _packed(items: list, inner: int, width: int) -> str:
    """Items from column ``inner``: atoms share a line while they fit, anything printed on
    several lines stands on lines of its own."""
    lines: list[str] = []
    for item in items:
        text = _fmt(item, inner, width)
        if (lines and "\n" not in text and "\n" not in lines[-1] and not _is_coll(item)
                and inner + len(lines[-1]) + 1 + len(text) <= width):
            lines[-1] += " " + text
        else:
            lines.append(text)
    return ("\n" + " " * inner).join(lines)


def _fmt_pairs(m: Map, col: int, width: int) -> str:
    inner = col + 1
    lines = []
    for k, v in m.items():
        key = pr_str(k)
        lines.append(key + " " + _fmt(v, inner + len(key) + 1, width))
    return "{" + ("\n" + " " * inner).join(lines) + "}"
