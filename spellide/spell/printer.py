"""Printing Spell values as source text.

The printed text is what the next model turn sees (the prefix is re-printed from forms each
turn), so it must read back to an equal value, be identical for identical values across
processes, and be cheap on large programs. The whitespace policy is fixed, so conformance
tests can compare prefixes as strings:

* one space between elements, no commas, no line breaks: ``(a b)``, ``[1 2]``,
  ``{:a 1 :b 2}``, ``#{1 2}``;
* ``(quote x)`` stays a list (never ``'x``), as the reference's Clojure printer does;
* strings escape ``\\"``, ``\\\\``, ``\\n``, ``\\t``, ``\\r``, ``\\b``, ``\\f``; other control
  characters and lone UTF-16 surrogates as ``\\uXXXX`` (so the text always encodes as UTF-8);
* floats as Clojure prints doubles: ``1.0``, ``1.5E-7``, ``1.0E10``, ``##Inf``, ``##NaN``;
* ratios ``1/2``, decimals ``1.25M``, characters ``\\a``, ``\\newline``, ``\\space``;
* a vector with a ``first_line`` attribute prints as ``(first-line N [...])``;
* function values print as their source ``(fn [params] body...)``; builtins and macros as
  their name (a symbol that evaluates back to them); stored values as ``(stored "id")``;
  objects with a ``spell_pr()`` method print as it returns; anything else as
  ``#object["repr"]``, which reads back as the list ``(object ["repr"])``.

Both printers use an explicit stack, so arbitrarily deep structures print without
RecursionError.
"""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction
from itertools import chain
from typing import Any, Callable

from .data import (Builtin, Char, Keyword, List, Map, Regex, Set, SpellFn, SpellMacro,
                   StoredRef, Symbol, Vector)

__all__ = ["pr_str", "to_str", "print_float", "print_string"]

_ESCAPES = {i: f"\\u{i:04X}" for i in [*range(0x20), *range(0xD800, 0xE000)]}
_ESCAPES.update({ord('"'): '\\"', ord("\\"): "\\\\", ord("\n"): "\\n", ord("\t"): "\\t",
                 ord("\r"): "\\r", ord("\b"): "\\b", ord("\f"): "\\f"})
_NEEDS_ESCAPE = frozenset(chr(c) for c in _ESCAPES)

_CHAR_NAMES = {"\n": "newline", " ": "space", "\t": "tab", "\b": "backspace",
               "\f": "formfeed", "\r": "return"}


def print_string(s: str) -> str:
    """A string literal: escaped so that the reader gives back exactly ``s``."""
    if _NEEDS_ESCAPE.isdisjoint(s):
        return '"' + s + '"'
    return '"' + s.translate(_ESCAPES) + '"'


def print_float(x: float) -> str:
    """Java's ``Double.toString`` layout (what Clojure prints), with Python's shortest digits:
    positional between 1e-3 and 1e7, otherwise ``d.dddEn``."""
    if x != x:
        return "##NaN"
    if x == math.inf:
        return "##Inf"
    if x == -math.inf:
        return "##-Inf"
    r = repr(x)
    a = abs(x)
    if 1e-3 <= a < 1e7 or a == 0.0:
        return r  # Python is positional here too (it switches below 1e-4 and from 1e16)
    sign, digits, exp = Decimal(r).as_tuple()
    ds = "".join(map(str, digits)).rstrip("0") or "0"
    sci = len(digits) - 1 + int(exp)
    return ("-" if sign else "") + ds[0] + "." + (ds[1:] or "0") + "E" + str(sci)


def _print_int(x: int) -> str:
    try:
        return str(x)
    except ValueError:  # more than 4300 digits: CPython's guard, not a Spell limit
        return str(Decimal(x))


def _print_decimal(x: Decimal) -> str:
    if not x.is_finite():
        return "##NaN" if x.is_nan() else ("##Inf" if x > 0 else "##-Inf")
    return str(x) + "M"


def _print_char(ch: Char) -> str:
    c = ch.c
    name = _CHAR_NAMES.get(c)
    if name is not None:
        return "\\" + name
    if len(c) == 1 and (ord(c) < 0x20 or 0xD800 <= ord(c) <= 0xDFFF or ord(c) == 0x7F
                        or c.isspace()):
        return f"\\u{ord(c):04X}"
    return "\\" + c


def _print_regex(r: Regex) -> str:
    p = r.pattern
    if '"' not in p:
        return '#"' + p + '"'
    out = []
    i, n = 0, len(p)
    while i < n:
        ch = p[i]
        if ch == "\\" and i + 1 < n:
            out.append(p[i:i + 2])
            i += 2
            continue
        out.append('\\"' if ch == '"' else ch)
        i += 1
    return '#"' + "".join(out) + '"'


def _print_keyword(k: Keyword) -> str:
    return ":" + k.name if k.ns is None else ":" + k.ns + "/" + k.name


def _print_symbol(s: Symbol) -> str:
    return s.name if s.ns is None else s.ns + "/" + s.name


def _print_bool(b: bool) -> str:
    return "true" if b else "false"


_SCALARS: dict[type, Callable[[Any], str]] = {
    str: print_string,
    int: _print_int,
    bool: _print_bool,
    float: print_float,
    Fraction: lambda f: _print_int(f.numerator) + "/" + _print_int(f.denominator),
    Decimal: _print_decimal,
    Keyword: _print_keyword,
    Symbol: _print_symbol,
    Char: _print_char,
    Regex: _print_regex,
    type(None): lambda _: "nil",
    Builtin: lambda b: b.name,
    StoredRef: lambda r: "(stored " + print_string(r.id) + ")",
}

_FN = Symbol("fn")


def _fn_form(f: SpellFn) -> Any:
    """The source of a function value, rebuilt when it was not kept."""
    if f.form is not None:
        return f.form
    head: list = [_FN]
    if f.name is not None:
        head.append(f.name)
    if isinstance(f.params, tuple) and not isinstance(f.params, Vector):
        return List(head + [List((p, *b)) for p, b in f.params])
    return List(head + [f.params, *f.body])


def _expand(x: Any) -> Any:
    """Values that print as some other form; None when ``x`` has no rule at all."""
    if isinstance(x, SpellFn):
        return _fn_form(x)
    if isinstance(x, SpellMacro):
        return Symbol.parse(x.name) if x.name else None
    return None


def pr_str(x: Any) -> str:
    """Readable text for ``x``: ``read_one(pr_str(x))`` is equal to ``x``."""
    f = _SCALARS.get(type(x))
    if f is not None:
        return f(x)
    out: list[str] = []
    _emit(x, out)
    return "".join(out)


def to_str(x: Any) -> str:
    """Clojure ``str`` of one value: strings and characters raw, nil empty, numbers without
    their reader suffix (``1.25M`` gives ``1.25``), regexes as their pattern. Collections
    print their contents readably, as in Clojure."""
    t = type(x)
    if t is str:
        return x
    if x is None:
        return ""
    if t is Char:
        return x.c
    if t is float:
        if x != x:
            return "NaN"
        if x in (math.inf, -math.inf):
            return "Infinity" if x > 0 else "-Infinity"
        return print_float(x)
    if t is Decimal:
        return str(x)
    if t is Regex:
        return x.pattern
    return pr_str(x)


def _emit(x: Any, out: list) -> None:
    """Print ``x`` into ``out`` without recursion: a stack of (iterator, closer) frames."""
    append = out.append
    scalars = _SCALARS
    # Each frame: [iterator over children, closing text, count printed so far]
    stack: list = []
    item = x
    opens = _CHECK_EVERY   # collections to open before the next size check
    while True:
        f = scalars.get(type(item))
        if f is not None:
            append(f(item))
        else:
            opened = _open(item)
            if opened is None:
                append(_other(item))
            else:
                opener, children, closer = opened
                append(opener)
                stack.append([iter(children), closer, 0])
                opens -= 1
                if not opens:   # shared parts print many times over: check the size
                    opens = _check_printed(out)
        # next item to print: pop finished frames
        while stack:
            fr = stack[-1]
            nxt = next(fr[0], _END)
            if nxt is _END:
                append(fr[1])
                stack.pop()
                continue
            if fr[2]:
                append(" ")
            fr[2] += 1
            item = nxt
            break
        else:
            return


_END = object()
_CHECK_EVERY = 1 << 15


def _check_printed(out: list) -> int:
    """The run's memory limit while a big printed form grows (``limits.check_size``): a value
    whose parts are shared prints far bigger than it is. Each piece printed so far is taken
    at 64 bytes (a pointer to it and a small string: big strings meet the process's limit
    soon enough); and the evaluation's deadline. Returns how many collections to open before the next check."""
    from .limits import check_size, remaining
    check_size(64 * len(out), "printing a value")
    remaining()   # and the evaluation's time limit: printing runs inside one builtin
    return _CHECK_EVERY


def _open(x: Any) -> Any:
    t = type(x)
    if t is List:
        return "(", x, ")"
    if t is Vector:
        first = getattr(x, "first_line", None)
        if type(first) is int:
            return "(first-line " + str(first) + " [", x, "])"
        return "[", x, "]"
    if t is Map:
        return "{", chain.from_iterable(x.items()), "}"
    if t is Set:
        return "#{", x, "}"
    if isinstance(x, List):
        return "(", x, ")"
    if isinstance(x, Vector):
        return "[", x, "]"
    if isinstance(x, Map):
        return "{", chain.from_iterable(x.items()), "}"
    if isinstance(x, Set):
        return "#{", x, "}"
    if isinstance(x, bool):  # bool subclasses are not a thing, but keep the order safe
        return None
    form = _expand(x)
    if form is not None:
        return "", (form,), ""
    return None


def _other(x: Any) -> str:
    for t, f in _SCALARS.items():
        if isinstance(x, t) and not (t is int and isinstance(x, bool)):
            return f(x)
    if isinstance(x, bool):
        return _print_bool(x)
    spell_pr = getattr(x, "spell_pr", None)
    if callable(spell_pr):
        try:
            text = spell_pr()
        except Exception:  # a broken hook must not break printing a whole program
            text = None
        if isinstance(text, str):
            return text
    try:
        r = repr(x)
    except Exception:
        r = type(x).__name__
    return "#object[" + print_string(r) + "]"
