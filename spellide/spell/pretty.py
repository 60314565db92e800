"""Pretty-printing Spell: programs laid out on lines of a given width, Clojure style.

The runtime prints programs on one line (``printer``: the prefix the model sees must be
stable), which makes a long program unreadable for a person. This module lays the same
forms out for reading:

* a form that fits in the remaining width stays on one line;
* ``let``/``loop``/``def``/``defn``/``fn``/``if``/``when``/``do``/``quine``/... keep their
  head and first special arguments (name, params, bindings, test) on the first line and
  indent their body two spaces;
* binding vectors put one ``name value`` pair per line; ``cond``/``case`` clauses go in
  pairs; maps put one entry per line when they do not fit;
* other calls align their arguments under the first one; vectors of atoms are filled.

Only whitespace between tokens is ever changed, so the text reads back to equal forms (the
property tests check ``read(pretty(x)) == x``). Two entry points:

* ``pretty_str(value)`` prints a value (atoms as ``printer.pr_str`` prints them);
* ``pretty_text(text)`` re-lays out source text, keeping every token's own text (and any
  comments) verbatim and returning an offset map, so the IDE can carry provenance segments
  and selections over from the compact text to the laid-out one.

Nesting deeper than ``MAX_LAYOUT_DEPTH`` is left on one line (laying it out would recurse).
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from .data import List, Map, Set, Vector
from .printer import _expand, pr_str

__all__ = ["pretty_str", "pretty_forms", "pretty_text", "Layout", "DEFAULT_WIDTH"]

DEFAULT_WIDTH = 80
MAX_LAYOUT_DEPTH = 200     # deeper subtrees print on one line
_INF = float("inf")

# Forms whose first N arguments stay on the head's line, the rest being a body indented two
# spaces. ``None``: the head only (every argument is body).
_BODY_ARGS = {
    "do": 0, "eval": 0, "try": 0, "finally": 0, "cond": 0, "comment": 0,
    "quine": 1, "def": 1, "defonce": 1, "persist": 1, "ns": 1, "if": 1, "if-not": 1,
    "when": 1, "when-not": 1, "when-let": 1, "if-let": 1, "when-some": 1, "if-some": 1,
    "when-first": 1, "let": 1, "loop": 1, "binding": 1, "with-open": 1, "with-redefs": 1,
    "doseq": 1, "dotimes": 1, "for": 1, "letfn": 1, "case": 1, "condp": 2, "while": 1,
    "rethink": 1, "think": 0, "catch": 2, "defn": 1, "defn-": 1, "defmacro": 1, "fn": 0,
    "fn*": 0, "locking": 1,
}
# Forms whose binding vector (at this argument index) is laid out in pairs.
_BINDINGS = {"let": 0, "loop": 0, "binding": 0, "with-open": 0, "with-redefs": 0,
             "doseq": 0, "dotimes": 0, "for": 0, "when-let": 0, "if-let": 0,
             "when-some": 0, "if-some": 0, "when-first": 0}
# Forms whose body (after the special arguments) is test/expression pairs.
_PAIRED_BODY = {"cond", "case", "condp"}
_FN_LIKE = {"fn", "fn*", "defn", "defn-", "defmacro"}
# Tokens that start a comment at the start of a line (the reader's C-style markers): such a
# token must never be moved to the start of a line.
_LINE_COMMENT_STARTS = ("//", "/*", "*/")


class _Node:
    """One token or collection to lay out. ``src`` are original offsets (``pretty_text``).
    Defaults live on the class: a program has many thousand tokens and most set only
    ``text``, ``src`` and ``flat``."""

    text: Optional[str] = None       # a token printed as it is
    src: Optional[int] = None
    open = close = ""
    open_src: Optional[int] = None
    close_src: Optional[int] = None
    kids: Sequence["_Node"] = ()
    head: Optional[str] = None       # the head symbol's bare name, for lists
    kind = ""                        # list | vector | map | set
    flat: float = 0                  # one-line width, _INF when it cannot be one line
    pre: Sequence[tuple[str, Optional[int]]] = ()    # comment lines before this node
    post: Sequence[tuple[str, Optional[int]]] = ()   # comment lines before the closer


def _leaf(text: str, src: Optional[int] = None) -> _Node:
    n = _Node()
    n.text, n.src = text, src
    n.flat = _INF if "\n" in text else len(text)
    return n


def _finish(n: _Node) -> _Node:
    flat = len(n.open) + len(n.close) + max(0, len(n.kids) - 1)
    for k in n.kids:
        flat += k.flat + (_INF if k.pre else 0)
    n.flat = _INF if n.post else flat
    if n.kind == "list" and n.kids and n.kids[0].text is not None and not n.kids[0].pre:
        head = n.kids[0].text
        n.head = head.rsplit("/", 1)[-1] if "/" in head[1:] else head
    return n


# --- values -> nodes ---------------------------------------------------------------------------
def _value_node(x: Any, depth: int = 0) -> _Node:
    if depth > MAX_LAYOUT_DEPTH:
        return _leaf(pr_str(x))
    t = type(x)
    n = _Node()
    if isinstance(x, List):
        n.open, n.close, n.kind, items = "(", ")", "list", list(x)
    elif isinstance(x, Vector):
        first = getattr(x, "first_line", None)
        if type(first) is int:   # printed as (first-line N [...]), as pr_str does
            inner = _Node()
            inner.open, inner.close, inner.kind = "[", "]", "vector"
            inner.kids = [_value_node(v, depth + 2) for v in x]
            n.open, n.close, n.kind = "(", ")", "list"
            n.kids = [_leaf("first-line"), _leaf(str(first)), _finish(inner)]
            return _finish(n)
        n.open, n.close, n.kind, items = "[", "]", "vector", list(x)
    elif isinstance(x, Map):
        n.open, n.close, n.kind = "{", "}", "map"
        items = [y for kv in x.items() for y in kv]
    elif isinstance(x, Set):
        n.open, n.close, n.kind, items = "#{", "}", "set", list(x)
    elif t in (str, int, float, bool) or x is None:
        return _leaf(pr_str(x))
    else:
        form = _expand(x)
        return _value_node(form, depth + 1) if form is not None else _leaf(pr_str(x))
    n.kids = [_value_node(v, depth + 1) for v in items]
    return _finish(n)


# --- source text -> nodes ------------------------------------------------------------------------
_OPENERS = {List: "(", Vector: "[", Map: "{", Set: "#{"}
_CLOSERS = {"(": ")", "[": "]", "{": "}", "#{": "}"}
_KINDS = {List: "list", Vector: "vector", Map: "map", Set: "set"}
_COLLECTIONS = (List, Vector, Map, Set)


def _gap_lines(text: str, start: int, end: int) -> Sequence[tuple[str, Optional[int]]]:
    """The comments (and ``#_`` discards) in the text between two tokens, one entry per
    non-blank line with its offset; plain whitespace and commas give nothing."""
    if not text[start:end].strip(" \n\t\r\f\v,"):
        return ()
    out: list[tuple[str, Optional[int]]] = []
    pos = start
    while pos < end:
        nl = text.find("\n", pos, end)
        stop = end if nl == -1 else nl
        line = text[pos:stop]
        stripped = line.strip(" \t\r\f\v,")
        if stripped:
            out.append((stripped, pos + line.index(stripped)))
        pos = stop + 1
    return out


class _SourceBuilder:
    def __init__(self, text: str):
        self.text = text

    def node(self, form: Any, span: Any, depth: int) -> _Node:
        text = self.text
        opener = _OPENERS.get(type(form))
        if opener is None and not isinstance(form, _COLLECTIONS):
            return _leaf(text[span.start:span.end], span.start)
        if opener is None:
            for cls, op in _OPENERS.items():
                if isinstance(form, cls):
                    opener = op
                    break
        spans = getattr(form, "spans", None)
        if isinstance(form, Map) and spans is not None:
            spans = [s for kv in spans for s in kv]
        if (opener is None or depth > MAX_LAYOUT_DEPTH or spans is None
                or not text.startswith(opener, span.start) or text[span.end - 1] != _CLOSERS[opener]
                or len(spans) != (2 * len(form) if isinstance(form, Map) else len(form))
                or None in spans):
            # a token, a reader macro ('x, #(...), @x, ^meta) or a form read oddly: verbatim
            return _leaf(text[span.start:span.end], span.start)
        n = _Node()
        n.open, n.close = opener, _CLOSERS[opener]
        n.kind = _KINDS.get(type(form)) or next(k for c, k in _KINDS.items() if isinstance(form, c))
        n.open_src, n.close_src = span.start, span.end - 1
        n.kids = []
        items = list(form) if not isinstance(form, Map) else [y for kv in form.items() for y in kv]
        pos = span.start + len(opener)
        for item, s in zip(items, spans):
            kid = self.node(item, s, depth + 1)
            kid.pre = _gap_lines(text, pos, s.start)
            n.kids.append(kid)
            pos = s.end
        n.post = _gap_lines(text, pos, span.end - 1)
        return _finish(n)


# --- layout --------------------------------------------------------------------------------------
class _Out:
    """The text being written, the column, and where each original token went."""

    def __init__(self, width: int):
        self.width = width
        self.parts: list[str] = []
        self.col = 0
        self.pos = 0
        self.moves: list[tuple[int, int, int]] = []   # (original offset, new offset, length)

    def put(self, s: str, src: Optional[int] = None) -> None:
        if src is not None:
            self.moves.append((src, self.pos, len(s)))
        self.parts.append(s)
        self.pos += len(s)
        nl = s.rfind("\n")
        self.col = self.col + len(s) if nl == -1 else len(s) - nl - 1

    def newline(self, indent: int) -> None:
        self.put("\n" + " " * indent)

    def comments(self, lines: Sequence[tuple[str, Optional[int]]], indent: int) -> None:
        """Comment lines, each followed by a line break (a comment runs to the line's end)."""
        for s, src in lines:
            self.put(s, src)
            self.newline(indent)


def _may_start_line(n: _Node) -> bool:
    return not (n.text is not None and n.text.startswith(_LINE_COMMENT_STARTS))


def _flat(n: _Node, out: _Out) -> None:
    if n.text is not None:
        out.put(n.text, n.src)
        return
    out.put(n.open, n.open_src)
    for i, k in enumerate(n.kids):
        if i:
            out.put(" ")
        _flat(k, out)
    out.put(n.close, n.close_src)


def _fits(n: _Node, out: _Out, reserve: int = 0) -> bool:
    return n.flat + reserve <= out.width - out.col


def _layout(n: _Node, out: _Out, reserve: int = 0) -> None:
    """Write ``n`` starting at the current column; ``reserve`` is room for closers after it."""
    if n.text is not None or _fits(n, out, reserve):
        _flat(n, out)
        return
    col = out.col
    out.put(n.open, n.open_src)
    kids = n.kids
    if n.kind == "list" and n.head is not None:
        _layout_call(n, out, col, reserve)   # closes it too (comments before the closer indent as the body)
        return
    if n.kind == "map":
        _layout_pairs(kids, out, col + len(n.open), reserve, same_line_first=True)
    elif kids and all(k.text is not None and not k.pre for k in kids):
        _fill(kids, out, col + len(n.open))
    else:
        _one_per_line(kids, out, col + len(n.open), reserve, first_same=True)
    _close(n, out, col + len(n.open))


def _close(n: _Node, out: _Out, indent: int) -> None:
    if n.post:
        out.newline(indent)
        out.comments(n.post, indent)
    out.put(n.close, n.close_src)


def _place(k: _Node, out: _Out, indent: int, same: bool, reserve: int = 0) -> None:
    """Put ``k`` after a space on this line (``same``) or on a new line at ``indent``."""
    if k.pre or not (same or not _may_start_line(k)):
        if k.pre or _may_start_line(k):
            out.newline(indent)
            out.comments(k.pre, indent)
        else:
            out.put(" ")
    else:
        out.put(" ")
    _layout(k, out, reserve)


def _one_per_line(kids: Sequence[_Node], out: _Out, indent: int, reserve: int,
                  first_same: bool) -> None:
    for i, k in enumerate(kids):
        last = i == len(kids) - 1
        if i == 0 and first_same and not k.pre:
            _layout(k, out, reserve + 1 if last else 0)
        else:
            _place(k, out, indent, False, reserve + 1 if last else 0)


def _fill(kids: Sequence[_Node], out: _Out, indent: int) -> None:
    """Atoms packed on lines up to the width (a vector of numbers or names)."""
    for i, k in enumerate(kids):
        if i == 0:
            out.put(k.text or "", k.src)
            continue
        if out.col + 1 + k.flat + (1 if i == len(kids) - 1 else 0) > out.width and _may_start_line(k):
            out.newline(indent)
        else:
            out.put(" ")
        out.put(k.text or "", k.src)


def _layout_pairs(kids: Sequence[_Node], out: _Out, indent: int, reserve: int,
                  same_line_first: bool) -> None:
    """``k v`` pairs, one pair per line at ``indent``; a value that does not fit after its
    key goes on the next line, two further in."""
    for i in range(0, len(kids), 2):
        key = kids[i]
        last_pair = i + 2 >= len(kids)
        if i == 0 and same_line_first and not key.pre:
            _layout(key, out)
        else:
            _place(key, out, indent, False)
        if i + 1 < len(kids):
            val = kids[i + 1]
            r = reserve + 1 if last_pair else 0
            if val.pre or (not _fits(val, out, r + 1) and val.text is None
                           and out.col - indent > 20 and _may_start_line(val)):
                _place(val, out, indent + 2, False, r)
            else:
                _place(val, out, indent, True, r)


def _layout_call(n: _Node, out: _Out, col: int, reserve: int) -> None:
    head, args = n.kids[0], n.kids[1:]
    _flat(head, out)
    name = n.head or ""
    body_indent = col + 2
    if name in _BODY_ARGS:
        special = _BODY_ARGS[name]
        if name in _FN_LIKE:
            special = _fn_head_args(args)
        bind_at = _BINDINGS.get(name)
        for i, a in enumerate(args[:special]):
            last = i == len(args) - 1
            if i == bind_at and a.kind == "vector" and not _fits(a, out, 1):
                _place_bindings(a, out)
            else:
                _place(a, out, body_indent, True, reserve + 1 if last else 0)
        body = args[special:]
        if name in _PAIRED_BODY:
            _layout_pairs(body, out, body_indent, reserve, same_line_first=False)
        else:
            for i, a in enumerate(body):
                _place(a, out, body_indent, False, reserve + 1 if i == len(body) - 1 else 0)
        _close(n, out, body_indent)
        return
    # a call: arguments aligned under the first one when the head is short, else indented
    if not args:
        _close(n, out, body_indent)
        return
    align = out.col + 1
    if align - col <= 16 and not args[0].pre and (args[0].text is None or align + args[0].flat <= out.width):
        for i, a in enumerate(args):
            _place(a, out, align, i == 0, reserve + 1 if i == len(args) - 1 else 0)
    else:
        for i, a in enumerate(args):
            _place(a, out, body_indent, False, reserve + 1 if i == len(args) - 1 else 0)
    _close(n, out, body_indent)


def _fn_head_args(args: Sequence[_Node]) -> int:
    """How many arguments of ``(fn name? [params] body)`` / ``(defn name doc? [params] body)``
    stay on the head's line: up to the params vector, or for multi-arity forms up to the
    first ``([params] body)`` clause."""
    for i, a in enumerate(args):
        if a.kind == "vector":
            return i + 1
        if a.kind == "list":
            return i
    return len(args)


def _place_bindings(v: _Node, out: _Out) -> None:
    out.put(" ")
    col = out.col
    out.put(v.open, v.open_src)
    _layout_pairs(v.kids, out, col + 1, 1, same_line_first=True)
    _close(v, out, col + 1)


def _layout_top(nodes: Sequence[_Node], out: _Out, tail: Sequence[tuple[str, Optional[int]]] = ()) -> None:
    for i, n in enumerate(nodes):
        if i:
            if n.pre or _may_start_line(n):
                out.newline(0)
            else:
                out.put(" ")
        out.comments(n.pre, 0)
        _layout(n, out)
    if tail:
        if nodes:
            out.newline(0)
        for j, (s, src) in enumerate(tail):
            if j:
                out.newline(0)
            out.put(s, src)


# --- entry points --------------------------------------------------------------------------------
def pretty_str(x: Any, width: int = DEFAULT_WIDTH) -> str:
    """``x`` laid out on lines of at most ``width`` columns where it can be; reads back to a
    value equal to ``x`` (as ``pr_str`` does, on one line)."""
    out = _Out(width)
    _layout(_value_node(x), out)
    return "".join(out.parts)


def pretty_forms(forms: Sequence[Any], width: int = DEFAULT_WIDTH) -> str:
    """Top-level forms, each laid out, one after another on separate lines."""
    out = _Out(width)
    _layout_top([_value_node(f) for f in forms], out)
    return "".join(out.parts)


@dataclass
class Layout:
    """The laid-out text of a source text, and where each original offset went."""

    text: str
    moves: list[tuple[int, int, int]] = field(default_factory=list)   # sorted by original offset
    original_length: int = 0

    def offset(self, pos: int) -> int:
        """The new offset of original offset ``pos``: inside a token it moves with the token;
        in whitespace between tokens it goes to the start of the next token."""
        moves = self.moves
        i = bisect_right(moves, (pos, _INF, 0)) - 1
        if i >= 0:
            src, new, length = moves[i]
            if pos < src + length:
                return new + (pos - src)
        if i + 1 < len(moves):
            return moves[i + 1][1]
        return len(self.text)

    def end_offset(self, pos: int) -> int:
        """The new offset of an exclusive end ``pos``: just after the character before it."""
        return self.offset(pos - 1) + 1 if pos > 0 else 0

    def segments(self, segments: Sequence[dict]) -> list[dict]:
        """Provenance segments (``start``/``end`` in the original text) moved to this text."""
        return [dict(s, start=self.offset(int(s.get("start", 0))), end=self.offset(int(s.get("end", 0))))
                for s in segments]


def pretty_text(text: str, width: int = DEFAULT_WIDTH, open_prefix: bool = False) -> Layout:
    """``text`` laid out: every token (and comment) keeps its text, only the whitespace
    between them changes. An ``open_prefix`` may end inside forms: it is laid out as if
    closed and the added closers are left off again. Raises ``ReadError`` (with line and
    column) when the text cannot be read."""
    from .reader import read_all_spans

    source = text
    if open_prefix:
        source = text + "".join(reversed(_open_closers(text)))
    forms, spans = read_all_spans(source)
    b = _SourceBuilder(source)
    nodes: list[_Node] = []
    pos = 0
    for f, s in zip(forms, spans):
        n = b.node(f, s, 0)
        n.pre = _gap_lines(source, pos, s.start)
        nodes.append(n)
        pos = s.end
    out = _Out(width)
    _layout_top(nodes, out, _gap_lines(source, pos, len(source)))
    laid = "".join(out.parts)
    moves = sorted(out.moves)
    if open_prefix and len(source) > len(text):
        synthetic = [m for m in moves if m[0] >= len(text)]
        if synthetic:
            laid = laid[:min(m[1] for m in synthetic)].rstrip(" ")
        moves = [m for m in moves if m[0] < len(text)]
    return Layout(laid, moves, len(text))


def _open_closers(text: str) -> list[str]:
    """The closers an open prefix lacks, innermost last (strings, characters and comments
    skipped)."""
    from .prefix import scan_prefix
    return list(scan_prefix(text).closers)
