"""The Spell reader: text to forms, with source spans.

Spell programs are written by language models, so the reader sees a lot of text that is
wrong, cut off, or decorated with prose. It therefore has three jobs besides parsing:

* every form read from source knows where it came from (``span`` on collections, symbols,
  characters and regexes; ``spans`` on collections for their children, including the
  Python primitives that cannot carry attributes), so errors and the IDE can point at text;
* every failure is a ``ReadError`` that says whether more text could fix it
  (``incomplete=True``: the input ended inside a form or string) or not (malformed input),
  because the turn machine and the editor treat the two differently;
* nothing else ever escapes: no IndexError, ValueError or RecursionError, whatever the input.
  Nesting is handled with an explicit stack, and capped at ``MAX_DEPTH`` so that the
  structures handed to the (recursive) evaluator and to hashing stay shallow enough.

It follows the Clojure reader (what the reference implementation uses), with the reference's
two repairs built in: unknown string escapes keep their backslash (``"a \\equiv b"``), and
C-style comment markers ``//``, ``/*``, ``*/`` at the start of a line (after optional
indentation) start a comment. Choices where Clojure's behaviour could not be reproduced
or was deliberately relaxed:

* `` `x `` reads as ``(quote x)`` (no namespace qualification); ``~x`` / ``~@x`` read as
  ``(unquote x)`` / ``(unquote-splicing x)``, ``@x`` as ``(deref x)``, ``#'x`` as ``(var x)``.
* ``#(...)`` reads as ``(fn* [%1 %2 & %&] (...))``: parameters are named ``%1``..``%n`` (and
  ``%&`` after ``&``), and ``%`` in the body is rewritten to ``%1``.
* ``^meta form`` drops the metadata, except ``^{:spell/first-line N} [...]``, which sets the
  vector's ``first_line`` attribute (the reference's only use of metadata).
* ``#inst "..."`` and ``#uuid "..."`` read as their string; any other ``#tag form`` reads as
  the list ``(tag form)`` so nothing is lost (``#object[...]`` from Clojure's printer, say).
* ``#:ns{...}`` namespaced maps are supported; ``::kw`` reads as ``:kw`` (no current namespace).
* ``\\uXXXX`` escapes that form a UTF-16 surrogate pair are combined into one character.
  ``\\u`` not followed by four hex digits, and octal escapes above ``\\377``, are not escapes
  and keep their backslash (Clojure would fail).
* Regex literals are compiled with Python's ``re``; a pattern Python rejects is a read error.

This module is the reader. When ``./dev setup`` could build it, a C fast path
(``_speedups/_reader.c``) reads whole texts made of the common shapes (lists, vectors, maps,
plain symbols, integers, keywords, strings, quotes, comments; other atoms through ``_atom``
here) into the same objects with the same spans, about four times as fast as the loop below;
anything else, and every error, it hands back to this module, so messages and positions are
this module's. ``SPELLIDE_PURE_PYTHON=1`` turns it off.
"""

from __future__ import annotations

import gc
import os
import re
import warnings
from itertools import chain
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any, Callable, Optional, Sequence

from .data import (SPAN_SETTERS, Char, Keyword, List, Map, Regex, Set, SourceLines, Span, Symbol,
                   Vector, normalize_ratio)
from .errors import ReadError

__all__ = ["read_all", "read_all_spans", "read_all_spans_python", "read_continuation",
           "read_one", "read_string", "reader_fast_path", "MAX_DEPTH"]

#: Deepest nesting accepted (collections and reader macros together). Deeper input is a
#: ReadError rather than a structure that later code would overflow the stack on.
MAX_DEPTH = 2000

# Characters that end a token (Clojure: whitespace, commas and terminating macro chars).
_TERM = r'\s,";@^`~()\[\]{}\\'

_SYM_START = r"(?:[^\W\d]|[*!?<>=&$.\-+])"
_SYM_CHAR = r"[\w*!?<>=&$.\-+'#%]"
_END_OF_TOKEN = r'(?![^' + _TERM + r'])'

# Skipped text: whitespace, commas, ; and #! comments, and C-style comment markers at the
# start of a line (after indentation), which comment out the rest of the line.
# Runs of blanks are taken whole, but never across a newline: each line's start must begin
# an iteration so that the comment-marker alternative (tried first) sees it.
_SKIP = r'(?:^[^\S\n]*+(?://|/\*|\*/)[^\n]*+|[^\S\n]++|,|\n|;[^\n]*+|#![^\n]*+)*+'
_ATOM_CHAR = r'[^' + _TERM + r']'

# One alternative per token kind; the common shapes (plain symbols, integers, keywords)
# get their own groups so that classifying them costs nothing in Python. Every position
# matches some alternative (group 15 catches the errors), so finditer never skips text.
_TOKEN_RE = re.compile(
    _SKIP + r'(?:'
    r'(?![+-][0-9])(' + _SYM_START + _SYM_CHAR + r'*+)' + _END_OF_TOKEN +  # 1 plain symbol
    r'|([()\[\]{}])'                                              # 2 delimiter
    r'|([-+]?(?:0|[1-9][0-9]*+))' + _END_OF_TOKEN +              # 3 plain integer
    r'|"([^"\\]*+(?:\\.[^"\\]*+)*+)"'                             # 4 string body
    r'|:(' + _SYM_CHAR + r'++)' + _END_OF_TOKEN +                # 5 plain keyword
    r'|([^' + _TERM + r"#'" + r']' + _ATOM_CHAR + r'*+)'         # 6 any other atom
    r"|(')"                                                       # 7 quote
    r'|(~@|[~@`^])'                                               # 8 prefix macros
    r"|(#[{(_'^])"                                                # 9 dispatch macros
    r'|\\(.' + _ATOM_CHAR + r'*+)'                                # 10 character literal
    r'|##(' + _ATOM_CHAR + r'*+)'                                 # 11 symbolic value
    r'|#"([^"\\]*+(?:\\.[^"\\]*+)*+)"'                            # 12 regex
    r'|#:(' + _ATOM_CHAR + r'*+)[\s,]*+\{'                       # 13 namespaced map
    r'|#((?:[^\W\d_])' + _ATOM_CHAR + r'*+)'                      # 14 tagged literal
    r'|(#.?|["\\])'                                               # 15 errors
    r'|(\Z)'                                                      # 16 end of input
    r')', re.S | re.M)
_NS_MAP_EOF_RE = re.compile(r'#:' + _ATOM_CHAR + r'*+[\s,]*+\Z')

_DISPATCH_LEN = {11: 2, 12: 2, 13: 2, 14: 1, 15: 0}  # text before the group's content

_STR_ESC_RE = re.compile(r'\\(?:([tbnrf"\\])|u([0-9a-fA-F]{4})|([0-3][0-7]{0,2}|[4-7][0-7]?))')
_SIMPLE_ESC = {"t": "\t", "b": "\b", "n": "\n", "r": "\r", "f": "\f", '"': '"', "\\": "\\"}
_SURROGATE_RE = re.compile("[\ud800-\udfff]")

_INT_RE = re.compile(
    r'([-+]?)(?:(0)|([1-9][0-9]*)|0[xX]([0-9A-Fa-f]+)|0([0-7]+)|([1-9][0-9]?)[rR]([0-9A-Za-z]+)'
    r'|(0[0-9]+))(N)?\Z')
_FLOAT_RE = re.compile(r'([-+]?[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?)(M)?\Z')
_RATIO_RE = re.compile(r'([-+]?[0-9]+)/([0-9]+)\Z')

_CHAR_NAMES = {"newline": "\n", "space": " ", "tab": "\t", "backspace": "\b",
               "formfeed": "\f", "return": "\r"}
_CONSTANTS = {"nil": None, "true": True, "false": False}
_SYMBOLIC = {"Inf": float("inf"), "-Inf": float("-inf"), "NaN": float("nan")}

# Frame kinds: collections, then the top level (all take forms as they come), then reader
# macros waiting for forms, then the top level of read_string (stops after one form).
_LIST, _VEC, _MAP, _SET, _FNLIT, _TOP = 0, 1, 2, 3, 4, 5
_WRAP, _DISCARD, _META, _TAG, _TOPN = 6, 7, 8, 9, 10
_OPEN_KIND = {"(": _LIST, "[": _VEC, "{": _MAP}
_CLOSER = {_LIST: ")", _VEC: "]", _MAP: "}", _SET: "}", _FNLIT: ")"}
_KIND_NAME = {_LIST: "list", _VEC: "vector", _MAP: "map", _SET: "set", _FNLIT: "fn literal",
              _WRAP: "reader macro", _DISCARD: "#_ discard", _META: "metadata",
              _TAG: "tagged literal", _TOP: "input", _TOPN: "input"}
_PREFIX_SYM = {"'": "quote", "`": "quote", "~": "unquote", "~@": "unquote-splicing",
               "@": "deref", "#'": "var"}
_NOTHING = object()
_FIRST_LINE = Keyword("first-line", "spell")
_TAG_READERS = {"inst", "uuid"}
_KW_CACHE: dict = {}  # plain keyword names (no "/"): Keyword interns them anyway


def _error(text: str, message: str, off: int, incomplete: bool = False) -> ReadError:
    line, col = SourceLines(text).line_col(off)
    err = ReadError(message, line=line, col=col, incomplete=incomplete)
    err.offset = off  # type: ignore[attr-defined]  # assembly needs it for the stray-closer rule
    return err


def _unescape(body: str) -> str:
    def repl(m: re.Match) -> str:
        simple, hexa, octal = m.groups()
        if simple is not None:
            return _SIMPLE_ESC[simple]
        if hexa is not None:
            return chr(int(hexa, 16))
        return chr(int(octal, 8))

    s = _STR_ESC_RE.sub(repl, body)
    if _SURROGATE_RE.search(s):
        # \uD83D\uDE00 is one character in Clojure (Java strings are UTF-16); lone halves stay.
        s = s.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
    return s


def _number(tok: str) -> Any:
    """Interpret a token that starts like a number; None if it is not a valid number."""
    m = _INT_RE.match(tok)
    if m:
        sign, zero, dec, hexa, octal, radix, rdigits, bad, _big = m.groups()
        if bad is not None:
            return None
        if zero is not None:
            v = 0
        elif dec is not None:
            v = _big_int(dec)
        elif hexa is not None:
            v = int(hexa, 16)
        elif octal is not None:
            v = int(octal, 8)
        else:
            base = int(radix)
            if not 2 <= base <= 36:
                return None
            try:
                v = int(rdigits, base)
            except ValueError:
                return None
        return -v if sign == "-" else v
    m = _FLOAT_RE.match(tok)
    if m:
        if m.group(2):
            try:
                return Decimal(m.group(1))
            except InvalidOperation:
                return None
        return float(m.group(1))
    m = _RATIO_RE.match(tok)
    if m:
        den = _big_int(m.group(2))
        if den == 0:
            return None
        return normalize_ratio(Fraction(_big_int(m.group(1)), den))
    return None


def _big_int(digits: str) -> int:
    """int() refuses more than 4300 digits (a CPython DoS guard); Clojure reads any size."""
    if len(digits) <= 4000:
        return int(digits)
    return int(Decimal(digits))


def _symbol_ok(tok: str) -> bool:
    """Clojure's symbol rules, minus the ones that cannot matter here: no leading ``/``
    (except ``/`` itself), no empty name, no trailing ``:`` and no ``::``; ``ns//`` is the
    symbol named ``/``."""
    if tok == "/":
        return True
    if tok.endswith(":") or "::" in tok:
        return False
    if "/" in tok:
        if tok.startswith("/"):
            return False
        name = tok.partition("/")[2]
        if name != "/" and (not name or name.startswith("/") or name.endswith("/")):
            return False
    return True


def read_all(text: str, *, tolerate_trailing_closer: bool = False) -> list:
    """All top-level forms of ``text``.

    ``tolerate_trailing_closer`` accepts one unmatched closing delimiter if it is the last
    non-whitespace character, as the reference's program reader does for model output that
    closes one paren too many.
    """
    return _read(text, None, tolerate_trailing_closer)[0]


def read_all_spans(text: str, *, tolerate_trailing_closer: bool = False) -> tuple[list, list]:
    """Top-level forms and their spans (primitives cannot carry a span themselves)."""
    return _read(text, None, tolerate_trailing_closer)


def read_all_spans_python(text: str) -> tuple[list, list]:
    """``read_all_spans`` by this module's reader alone, never the C fast path: the reference
    the fast path is held to, and the figure where it is not built (bench/reader_bench.py)."""
    return _read(text, None, False, _scan)


def reader_fast_path() -> bool:
    """True when the C fast path was built and is in use in this process."""
    return _c_scan is not None


def read_one(text: str) -> Any:
    """Exactly one form: anything else is an error, so callers never silently drop text."""
    forms, spans = _read(text, None, False)
    if not forms:
        raise _error(text, "EOF: no form to read", len(text), incomplete=True)
    if len(forms) > 1:
        raise _error(text, f"Expected exactly one form, got {len(forms)}", spans[1].start)
    return forms[0]


def read_string(text: str) -> Any:
    """The first form, ignoring whatever follows (Clojure ``read-string``)."""
    forms, _ = _read(text, 1, False)
    if not forms:
        raise _error(text, "EOF while reading", len(text), incomplete=True)
    return forms[0]


def read_continuation(text: str, start: int, open_lists: Sequence[tuple], *,
                      tolerate_trailing_closer: bool = False) -> tuple[list, list]:
    """``read_all_spans(text)`` when the reader's state at offset ``start`` is already known:
    ``open_lists`` are the round-paren lists open there, outermost first, each as (the forms
    read into it so far, their spans, the offset of its ``(``[, attributes to set on the list
    when it closes: what the caller knows about those forms]), and no form is open at top
    level (a span's line and column depend only on the text before it, so spans made on the
    prefix alone serve). Only ``text[start:]`` is scanned, so a program that is a known prefix
    plus new text costs what the new text costs; the result, spans and errors (positions in
    ``text``) are those of reading the whole text. ``start`` must be a token boundary outside
    any string or comment (the caller vouches for the prefix; this does not re-check it)."""
    if not isinstance(text, str):
        raise ReadError(f"Cannot read a {type(text).__name__}", line=1, col=1)
    return _scan(text, None, tolerate_trailing_closer, start, open_lists)


def _read(text: str, max_forms: Optional[int], tolerate: bool,
          scan: Optional[Callable[[str, Optional[int], bool], tuple[list, list]]] = None
          ) -> tuple[list, list]:
    """Read forms (with ``_scan_fast`` unless told) with the GC paused: reading allocates many
    small containers and no cycles, and generational collections triggered by them cost as
    much as the reading."""
    if not isinstance(text, str):
        raise ReadError(f"Cannot read a {type(text).__name__}", line=1, col=1)
    scan = scan or _scan_fast
    if len(text) < 20000 or not gc.isenabled():
        return scan(text, max_forms, tolerate)
    gc.disable()
    try:
        return scan(text, max_forms, tolerate)
    finally:
        gc.enable()


def _scan_fast(text: str, max_forms: Optional[int], tolerate: bool) -> tuple[list, list]:
    """``_scan``, through the C fast path when it is built and the text is of the shapes it
    reads (it returns None otherwise, errors included, and this module reads the text)."""
    if _c_scan is not None and max_forms is None:
        got = _c_scan(text, SourceLines(text))
        if got is not None:
            return got
    return _scan(text, max_forms, tolerate)


def _scan(text: str, max_forms: Optional[int], tolerate: bool, start: int = 0,
          open_lists: Sequence[tuple] = ()) -> tuple[list, list]:
    forms: list = []
    form_spans: list = []
    n = len(text)
    lines = SourceLines(text)
    # The innermost open frame is kept in locals (cur, kind, ia, sa); outer ones on `stack`.
    # A frame: [kind, items, spans, start offset, extra]
    cur: list = [_TOP if max_forms is None else _TOPN, forms, form_spans, 0, None]
    stack: list = []
    for carried in open_lists:
        # the carried forms are kept apart (cur[4]) and joined with the new ones once, when
        # the list closes: a long carried body is then copied once, not at every step twice
        stack.append(cur)
        cur = [_LIST, [], [], carried[2], carried]
    kind = cur[0]
    ia = cur[1].append
    sa = cur[2].append
    fn_frame: Optional[list] = None
    new = object.__new__
    span_cls = Span
    set_start, set_end, set_at = SPAN_SETTERS
    symbol = Symbol
    kwcache = _KW_CACHE
    constants = _CONSTANTS
    closer_of = _CLOSER

    def err(message: str, off: int, incomplete: bool = False) -> ReadError:
        return _error(text, message, off, incomplete)

    for m in _TOKEN_RE.finditer(text, start):
        g = m.lastindex

        if g == 2:  # delimiter
            d = m.group(2)
            s = m.end() - 1
            k = _OPEN_KIND.get(d)
            if k is not None:
                if len(stack) >= MAX_DEPTH:
                    raise err(f"Nesting too deep (more than {MAX_DEPTH} levels)", s)
                stack.append(cur)
                cur = [k, [], [], s, None]
                kind = k
                ia = cur[1].append
                sa = cur[2].append
                continue
            if closer_of.get(kind) != d:
                if tolerate and not stack and not text[s + 1:].strip():
                    break
                raise err(f"Unmatched delimiter: {d}", s)
            items = cur[1]
            span = Span.of(lines, cur[3], s + 1)
            if kind == _LIST:
                carried = cur[4]
                if carried is None:
                    value = List(items)
                    value.span = span
                    value.spans = tuple(cur[2])
                else:  # a list open in a carried prefix: its forms, then what was read now
                    value = List(chain(carried[0], items))
                    value.span = span
                    value.spans = tuple(chain(carried[1], cur[2]))
                    if len(carried) > 3:
                        value.__dict__.update(carried[3])
            elif kind == _VEC:
                value = Vector(items)
                value.span = span
                value.spans = tuple(cur[2])
            elif kind == _MAP:
                value = _make_map(text, items, cur[2], span, cur[4])
            elif kind == _SET:
                value = Set(items)
                if len(value) != len(items):
                    _duplicate(text, items, cur[2], "Duplicate key")
                value.span = span
                value.spans = tuple(cur[2])
            else:  # fn literal
                fn_frame = None
                value = _make_fnlit(items, cur[2], span, cur[4])
            cur = stack.pop()
            kind = cur[0]
            if kind <= _TOP:
                ia = cur[1].append
                sa = cur[2].append

        elif g <= 6:  # the atoms: one span from the token's offsets
            e = m.end()
            s = m.start(g) - (g == 4 or g == 5)   # a string's opening quote, a keyword's colon
            span = new(span_cls)
            set_start(span, s)
            set_end(span, e)
            set_at(span, lines)
            if g == 1:  # plain symbol
                tok = m.group(1)
                value = constants.get(tok, _NOTHING)
                if value is _NOTHING:
                    value = symbol(tok, None, span)
            elif g == 3:  # plain integer
                tok = m.group(3)
                value = int(tok) if len(tok) < 4000 else _big_int(tok)
            elif g == 4:  # string
                body = m.group(4)
                value = _unescape(body) if "\\" in body else body
            elif g == 5:  # plain keyword
                tok = m.group(5)
                value = kwcache.get(tok)
                if value is None:
                    value = kwcache[tok] = Keyword(tok)
            else:  # any other atom
                try:
                    value = _atom(m.group(6), span, fn_frame)
                except _InvalidAtom as ex:
                    raise err(str(ex), s) from None

        elif g == 16:  # end of input
            if stack:
                fr = cur
                for f in (cur, *reversed(stack)):
                    if f[0] < _TOP:
                        fr = f
                        break
                line, col = lines.line_col(fr[3])
                raise err(f"EOF while reading {_KIND_NAME[fr[0]]} started at {line}:{col}",
                          n, incomplete=True)
            break

        elif g == 7 or g == 8 or g == 9:  # prefix macros and #{ #( #_ #' #^
            mac = m.group(g)
            e = m.end()
            s = e - len(mac)
            if len(stack) >= MAX_DEPTH:
                raise err(f"Nesting too deep (more than {MAX_DEPTH} levels)", s)
            stack.append(cur)
            if mac == "#{":
                cur = [_SET, [], [], s, None]
                ia = cur[1].append
                sa = cur[2].append
            elif mac == "#(":
                if fn_frame is not None:
                    raise err("Nested #()s are not allowed", s)
                cur = fn_frame = [_FNLIT, [], [], s, {"max": 0, "rest": False}]
                ia = cur[1].append
                sa = cur[2].append
            elif mac == "#_":
                cur = [_DISCARD, None, None, s, None]
            elif mac == "^" or mac == "#^":
                cur = [_META, None, None, s, _NOTHING]
            else:
                cur = [_WRAP, None, None, s, (_PREFIX_SYM[mac], Span.of(lines, s, e))]
            kind = cur[0]
            continue

        elif g == 10:  # character literal
            body = m.group(10)
            e = m.end()
            s = e - len(body) - 1
            value = _char(body)
            if value is None:
                raise err(f"Unsupported character: \\{body}", s)
            span = value.span = Span.of(lines, s, e)

        else:  # the rarer dispatch forms and the errors
            s = m.start(g) - _DISPATCH_LEN[g]
            e = m.end()
            if g == 11:  # ##Inf ##-Inf ##NaN
                name = m.group(11)
                if name not in _SYMBOLIC:
                    raise err(f"Unknown symbolic value: ##{name}", s)
                value = _SYMBOLIC[name]
                span = Span.of(lines, s, e)
            elif g == 12:  # regex
                try:
                    value = Regex(m.group(12))
                except (re.error, ValueError, TypeError, OverflowError, RecursionError) as ex:
                    raise err(f"Invalid regex: {ex}", s) from None
                span = value.span = Span.of(lines, s, e)
            elif g == 13 or g == 14:  # #:ns{ namespaced map, #tag form
                if len(stack) >= MAX_DEPTH:
                    raise err(f"Nesting too deep (more than {MAX_DEPTH} levels)", s)
                stack.append(cur)
                if g == 13:
                    ns = m.group(13)
                    if ns.startswith(":"):
                        ns = ns[1:]  # #::{...}: no current namespace to resolve against
                    if "/" in ns or ":" in ns:
                        raise err("Namespaced map must specify a valid namespace", s)
                    cur = [_MAP, [], [], s, ns or None]
                    ia = cur[1].append
                    sa = cur[2].append
                else:
                    cur = [_TAG, None, None, s, m.group(14)]
                kind = cur[0]
                continue
            else:  # g == 15: what is left is an error
                bad = m.group(15)
                line, c = lines.line_col(s)
                if bad == '"':
                    raise err(f"EOF while reading string started at {line}:{c}", n,
                              incomplete=True)
                if bad == "\\":
                    raise err("EOF while reading character", n, incomplete=True)
                if bad == "#":
                    raise err("EOF while reading dispatch macro", n, incomplete=True)
                d = bad[1]
                if d == '"':
                    raise err(f"EOF while reading regex started at {line}:{c}", n,
                              incomplete=True)
                if d == ":":
                    if _NS_MAP_EOF_RE.match(text, s):
                        raise err("EOF while reading namespaced map", n, incomplete=True)
                    raise err("Namespaced map must specify a namespace and a map", s)
                if d == "?":
                    raise err("Reader conditionals (#?) are not supported", s)
                if d == "=":
                    raise err("Read-eval (#=) is not supported", s)
                if d == "<":
                    raise err("Unreadable form", s)
                raise err(f"No dispatch macro for: {d}", s)

        # A complete form: hand it to the innermost frame, resolving reader macros.
        while True:
            if kind <= _TOP:
                ia(value)
                sa(span)
                break
            if kind == _TOPN:
                forms.append(value)
                form_spans.append(span)
                if len(forms) >= max_forms:  # type: ignore[operator]
                    return forms, form_spans
                break
            fr = cur
            if kind == _META and fr[4] is _NOTHING:
                fr[4] = value
                break
            cur = stack.pop()
            kind = cur[0]
            if kind <= _TOP:
                ia = cur[1].append
                sa = cur[2].append
            fk = fr[0]
            if fk == _DISCARD:
                break
            if fk == _META:
                meta = fr[4]
                if isinstance(value, Vector) and isinstance(meta, Map):
                    first = meta.get(_FIRST_LINE)
                    if isinstance(first, int) and not isinstance(first, bool):
                        value.first_line = first  # type: ignore[attr-defined]
                continue
            wspan = Span.of(lines, fr[3], span.end)
            if fk == _WRAP:
                name, mspan = fr[4]
                value = List((symbol(name, None, mspan), value))
                value.span = wspan
                value.spans = (mspan, span)
            else:  # tagged literal
                tag = fr[4]
                if tag in _TAG_READERS:
                    if not isinstance(value, str):
                        raise err(f"#{tag} expects a string", fr[3])
                else:
                    tspan = Span.of(lines, fr[3] + 1, fr[3] + 1 + len(tag))
                    value = List((Symbol.parse(tag, tspan), value))
                    value.span = wspan
                    value.spans = (tspan, span)
            span = wspan
    return forms, form_spans


class _InvalidAtom(Exception):
    """An atom that is not a valid token; the message is the ReadError's, minus position."""


def _atom(tok: str, span: Span, fn_frame: Optional[list] = None) -> Any:
    """The value of an atom that is not of the plain shapes the token regex classifies itself
    (numbers other than plain integers, ``ns/name`` symbols and keywords, ``%`` arguments,
    odd symbols). Raises ``_InvalidAtom``. The C fast path calls it too (with no fn literal
    open: it leaves ``#(`` to this module)."""
    ch = tok[0]
    if ch in "0123456789" or (ch in "+-" and len(tok) > 1 and tok[1] in "0123456789"):
        value = _number(tok)
        if value is None:
            raise _InvalidAtom(f"Invalid number: {tok}")
        return value
    if ch == ":":
        name = tok[2:] if tok.startswith("::") else tok[1:]
        if (not name or name.endswith(":") or name.startswith(":") or "::" in name
                or (name.endswith("/") and name != "/")
                or (name.startswith("/") and name != "/")):
            raise _InvalidAtom(f"Invalid token: {tok}")
        return Keyword.of(name)
    if ch == "%" and fn_frame is not None:
        value = _fn_arg(tok, fn_frame, span)
        if value is None:
            raise _InvalidAtom(f"Invalid arg literal: {tok} (use %, %& or %integer)")
        return value
    value = _CONSTANTS.get(tok, _NOTHING)
    if value is _NOTHING:
        if not _symbol_ok(tok):
            raise _InvalidAtom(f"Invalid token: {tok}")
        value = Symbol.parse(tok, span)
    return value


def _char(body: str) -> Optional[Char]:
    if len(body) == 1:
        return Char(body)
    named = _CHAR_NAMES.get(body)
    if named is not None:
        return Char(named)
    if body[0] == "u" and len(body) == 5:
        try:
            code = int(body[1:], 16)
        except ValueError:
            return None
        if 0xD800 <= code <= 0xDFFF or not body[1:].isascii():
            return None
        return Char(chr(code))
    if body[0] == "o" and 2 <= len(body) <= 4 and all(ch in "01234567" for ch in body[1:]):
        code = int(body[1:], 8)
        if code <= 0o377:
            return Char(chr(code))
    return None


def _fn_arg(tok: str, fr: list, span: Span) -> Optional[Symbol]:
    info = fr[4]
    if tok == "%":
        info["max"] = max(info["max"], 1)
        return Symbol("%1", None, span)
    if tok == "%&":
        info["rest"] = True
        return Symbol("%&", None, span)
    digits = tok[1:]
    if digits.isdigit() and digits.isascii() and len(digits) < 4 and int(digits) >= 1:
        n = int(digits)
        info["max"] = max(info["max"], n)
        return Symbol("%" + str(n), None, span)
    return None


def _make_fnlit(items: list, spans: list, span: Span, info: dict) -> List:
    head = span.sub(span.start, span.start + 2)
    params: list = [Symbol(f"%{i}", None, head) for i in range(1, info["max"] + 1)]
    if info["rest"]:
        params += [Symbol("&", None, head), Symbol("%&", None, head)]
    pvec = Vector(params).with_spans(head, (head,) * len(params))
    body_span = span.sub(span.start + 1, span.end)
    body = List(items).with_spans(body_span, tuple(spans))
    return List((Symbol("fn*", None, head), pvec, body)).with_spans(span, (head, head, body_span))


def _make_map(text: str, items: list, spans: list, span: Span, ns: Optional[str]) -> Map:
    if len(items) % 2:
        raise _error(text, "Map literal must contain an even number of forms", span.start)
    if ns is not None:
        items = list(items)
        for i in range(0, len(items), 2):
            k = items[i]
            if isinstance(k, Keyword) and k.ns is None:
                items[i] = Keyword(k.name, ns)
            elif isinstance(k, Keyword) and k.ns == "_":
                items[i] = Keyword(k.name)
            elif isinstance(k, Symbol) and k.ns is None:
                items[i] = Symbol(k.name, ns, k.span)
            elif isinstance(k, Symbol) and k.ns == "_":
                items[i] = Symbol(k.name, None, k.span)
    m = Map()
    for i in range(0, len(items), 2):
        dict.__setitem__(m, items[i], items[i + 1])
    if 2 * len(m) != len(items):
        _duplicate(text, items[0::2], spans[0::2], "Duplicate key")
    m.span = span
    m.spans = tuple(zip(spans[0::2], spans[1::2]))
    return m


def _duplicate(text: str, keys: list, spans: list, what: str) -> None:
    from .printer import pr_str  # late: the printer is not needed on the fast path

    seen: dict = {}
    for k, sp in zip(keys, spans):
        if k in seen:
            raise _error(text, f"{what}: {pr_str(k)}", sp.start)
        seen[k] = sp
    raise _error(text, f"{what}", spans[0].start if spans else 0)  # pragma: no cover


def _load_speedup() -> Any:
    """The C fast path's ``scan``, configured with this module's classes and helpers; None
    when it is not built or ``SPELLIDE_PURE_PYTHON`` is set (the Python reader then reads
    everything, with the same results)."""
    if os.environ.get("SPELLIDE_PURE_PYTHON"):
        return None
    try:
        from ._speedups import _reader
    except ImportError:   # not built here (or for another Python)
        return None
    if (Span.__slots__ != ("start", "end", "_at")
            or Symbol.__slots__ != ("ns", "name", "span", "_hash")):
        warnings.warn("the C reader is not used: Span or Symbol has other slots than it fills",
                      RuntimeWarning, stacklevel=2)
        return None
    try:
        _reader.configure(Span, Symbol, List, Vector, Map, Keyword, _KW_CACHE, _unescape, _atom)
    except TypeError as e:   # built against other classes than these: rebuild (./dev setup)
        warnings.warn(f"the C reader is not used: {e}", RuntimeWarning, stacklevel=2)
        return None
    return _reader.scan


_c_scan = _load_speedup()
