"""Spell's value types.

Spell values are Clojure-like. Python primitives are used where the semantics match
(None for nil, bool, int, float, Fraction for ratios, Decimal for ``M`` numbers, str), and
small classes everywhere a distinction matters to programs or to printing (list vs vector,
symbol vs keyword vs string, characters, regexes, function values).

Collections are immutable by convention and hashable, so they can be map keys and set
members. Maps and sets keep insertion order so that printing is reproducible across
processes (Python's str hashing is randomized per process; printing a frozenset would not be).
Forms read from source carry a ``span`` (collections also keep the spans of their children
in ``spans``), so errors and the IDE can point at source text.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any, Callable, Iterable, Iterator, Optional
import re

import regex as _regex


class SourceLines:
    """Where the lines of one source text start, found on first use. The reader gives every
    token a span, but few spans are ever asked for a line and column (an error, the IDE's
    tree), so spans keep offsets and share one of these to turn them into positions."""

    __slots__ = ("text", "_starts")

    def __init__(self, text: str):
        self.text = text
        self._starts: Optional[list[int]] = None

    def line_col(self, offset: int) -> tuple[int, int]:
        starts = self._starts
        if starts is None:
            starts = self._starts = [0]
            starts += [m.end() for m in _NEWLINE.finditer(self.text)]
        i = bisect_right(starts, offset) - 1
        return i + 1, offset - starts[i] + 1


_NEWLINE = re.compile("\n")


class Span:
    """A region of source text: 1-based line/column, 0-based character offsets.

    Immutable and compared by value. ``Span(line, col, end_line, end_col, start, end)``
    states the position outright; ``Span.of(lines, start, end)`` (what the reader makes)
    works it out from a shared ``SourceLines`` when first asked."""

    __slots__ = ("start", "end", "_at")  # _at: (line, col, end_line, end_col) or SourceLines

    def __init__(self, line: int, col: int, end_line: int, end_col: int, start: int, end: int):
        set_ = object.__setattr__
        set_(self, "start", start)
        set_(self, "end", end)
        set_(self, "_at", (line, col, end_line, end_col))

    @classmethod
    def of(cls, lines: SourceLines, start: int, end: int) -> "Span":
        o = object.__new__(cls)
        _set_start(o, start)
        _set_end(o, end)
        _set_at(o, lines)
        return o

    def _pos(self) -> tuple[int, int, int, int]:
        at = self._at
        if type(at) is tuple:
            return at
        pos = (*at.line_col(self.start), *at.line_col(self.end))
        _set_at(self, pos)
        return pos

    def sub(self, start: int, end: int) -> "Span":
        """Another region of the same text (offsets), e.g. a part of this one."""
        at = self._at
        if type(at) is not tuple:
            return Span.of(at, start, end)
        line, col = at[0], at[1] + (start - self.start)   # only within this span's first line
        return Span(line, col, line, col + end - start, start, end)

    line = property(lambda self: self._pos()[0])
    col = property(lambda self: self._pos()[1])
    end_line = property(lambda self: self._pos()[2])
    end_col = property(lambda self: self._pos()[3])

    def _key(self) -> tuple:
        return (*self._pos(), self.start, self.end)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Span) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Span is immutable")

    def __reduce__(self):
        return (Span, self._key())

    def __repr__(self) -> str:
        line, col, end_line, end_col = self._pos()
        return (f"Span(line={line}, col={col}, end_line={end_line}, end_col={end_col}, "
                f"start={self.start}, end={self.end})")

    def __str__(self) -> str:
        return f"{self.line}:{self.col}"


#: The slot setters of Span (start, end, _at): what ``Span.of`` does, for the reader's hot loop
#: to do inline without a method call per token.
SPAN_SETTERS = (Span.__dict__["start"].__set__, Span.__dict__["end"].__set__,
                Span.__dict__["_at"].__set__)
_set_start, _set_end, _set_at = SPAN_SETTERS


class Symbol:
    __slots__ = ("ns", "name", "span", "_hash")

    def __init__(self, name: str, ns: Optional[str] = None, span: Optional[Span] = None):
        self.ns = ns
        self.name = name
        self.span = span
        self._hash = hash(("sym", ns, name))  # cached: symbols are the env's keys (hot path)

    @classmethod
    def parse(cls, text: str, span: Optional[Span] = None) -> "Symbol":
        """Split ``ns/name`` (deeper paths keep everything after the first ``/`` as the name)."""
        if "/" in text and text != "/" and not text.startswith("/"):
            ns, _, name = text.partition("/")
            return cls(name, ns, span)
        return cls(text, None, span)

    @property
    def full(self) -> str:
        return f"{self.ns}/{self.name}" if self.ns is not None else self.name

    def __eq__(self, other: object) -> bool:
        return self is other or (isinstance(other, Symbol) and other.name == self.name
                                 and other.ns == self.ns)

    def __hash__(self) -> int:
        return self._hash

    def __reduce__(self):
        return (Symbol, (self.name, self.ns, self.span))

    def __repr__(self) -> str:
        return f"Symbol({self.full!r})"


_keywords: dict[tuple[Optional[str], str], "Keyword"] = {}


class Keyword:
    """Interned: ``Keyword.of("a") is Keyword.of("a")``."""

    __slots__ = ("ns", "name")

    def __new__(cls, name: str, ns: Optional[str] = None) -> "Keyword":
        key = (ns, name)
        kw = _keywords.get(key)
        if kw is None:
            kw = object.__new__(cls)
            kw.ns = ns
            kw.name = name
            _keywords[key] = kw
        return kw

    @classmethod
    def of(cls, text: str) -> "Keyword":
        if "/" in text and not text.startswith("/") and text != "/":
            ns, _, name = text.partition("/")
            return cls(name, ns)
        return cls(text)

    @property
    def full(self) -> str:
        return f"{self.ns}/{self.name}" if self.ns is not None else self.name

    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return hash(("kw", self.ns, self.name))

    def __repr__(self) -> str:
        return f"Keyword({self.full!r})"

    def __reduce__(self):
        return (Keyword, (self.name, self.ns))


class Char:
    __slots__ = ("c", "span")

    def __init__(self, c: str, span: Optional[Span] = None):
        self.c = c
        self.span = span

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Char) and other.c == self.c

    def __hash__(self) -> int:
        return hash(("char", self.c))

    def __repr__(self) -> str:
        return f"Char({self.c!r})"


def compile_regex(pattern: str, flags: int = 0) -> Any:
    """A pattern of the ``regex`` package, whose matching takes a timeout (Python's ``re`` has
    none: one catastrophic match would hold the run for minutes, limits.py). Its syntax errors
    are raised as ``re.error``, which every caller already handles."""
    try:
        return _regex.compile(pattern, flags)
    except _regex.error as e:
        raise re.error(e.msg, pattern, e.pos) from None


class Regex:
    __slots__ = ("pattern", "compiled", "span")

    def __init__(self, pattern: str, span: Optional[Span] = None):
        self.pattern = pattern
        self.compiled = compile_regex(pattern)
        self.span = span

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Regex) and other.pattern == self.pattern

    def __hash__(self) -> int:
        return hash(("regex", self.pattern))

    def __repr__(self) -> str:
        return f"Regex({self.pattern!r})"


class _Seq(tuple):
    """Base of List and Vector. ``[1 2]`` equals ``(1 2)`` as in Clojure."""

    span: Optional[Span] = None
    spans: Optional[tuple] = None  # spans of the children, when read from source

    def __hash__(self) -> int:
        # Defined in Python on purpose: CPython's tuple hash recurses in C without a depth
        # guard, so hashing a deeply nested vector (user code can build one) would crash the
        # process. Going through a Python frame per level turns that into a RecursionError.
        return tuple.__hash__(self)

    def with_spans(self, span: Optional[Span], spans: Optional[tuple]):
        self.span = span
        self.spans = spans
        return self


class List(_Seq):
    def __repr__(self) -> str:
        return "List(" + repr(tuple(self)) + ")"


class Vector(_Seq):
    def __repr__(self) -> str:
        return "Vector(" + repr(tuple(self)) + ")"


EMPTY_LIST = List()
EMPTY_VECTOR = Vector()


class Map(dict):
    """An immutable, insertion-ordered, hashable map. Use ``assoc``/``dissoc``; never mutate."""

    span: Optional[Span] = None
    spans: Optional[tuple] = None  # (key span, value span) pairs, when read from source

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(frozenset(self.items()))

    def assoc(self, *kvs: Any) -> "Map":
        m = Map(self)
        for i in range(0, len(kvs), 2):
            dict.__setitem__(m, kvs[i], kvs[i + 1])
        return m

    def dissoc(self, *keys: Any) -> "Map":
        m = Map(self)
        for k in keys:
            dict.pop(m, k, None)
        return m

    def __repr__(self) -> str:
        return "Map(" + dict.__repr__(self) + ")"


class Set:
    """An immutable, insertion-ordered, hashable set."""

    __slots__ = ("_d", "span", "spans")

    def __init__(self, items: Iterable[Any] = ()):
        self._d = dict.fromkeys(items)
        self.span: Optional[Span] = None
        self.spans: Optional[tuple] = None

    def __iter__(self) -> Iterator[Any]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def __contains__(self, item: object) -> bool:
        try:
            return item in self._d
        except TypeError:
            return False

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Set) and self._d.keys() == other._d.keys()

    def __hash__(self) -> int:
        return hash(frozenset(self._d))

    def conj(self, *items: Any) -> "Set":
        return Set([*self._d, *items])

    def disj(self, *items: Any) -> "Set":
        drop = set(items)
        return Set(x for x in self._d if x not in drop)

    def __repr__(self) -> str:
        return "Set(" + repr(list(self._d)) + ")"


class SpellFn:
    """A Spell function value: source only, no captured environment (dynamic scope)."""

    __slots__ = ("params", "body", "name", "form")

    def __init__(self, params: Any, body: tuple, name: Optional[Symbol] = None, form: Any = None):
        self.params = params  # a Vector, or for multi-arity a tuple of (params, body) pairs
        self.body = body
        self.name = name
        self.form = form  # the (fn ...) form it came from, for printing

    def __repr__(self) -> str:
        return f"SpellFn({self.name.full if self.name else 'anonymous'})"


class SpellMacro:
    __slots__ = ("expander", "name")

    def __init__(self, expander: Any, name: Optional[str] = None):
        self.expander = expander
        self.name = name


class Builtin:
    """A host function. ``needs_ctx`` builtins receive ``(ctx, env, *args)``; ``tail_aware``
    builtins also receive ``tail=`` so that self-calls in tail position can be trampolined."""

    __slots__ = ("name", "fn", "needs_ctx", "tail_aware", "doc")

    def __init__(self, name: str, fn: Callable[..., Any], needs_ctx: bool = False,
                 tail_aware: bool = False, doc: str = ""):
        self.name = name
        self.fn = fn
        self.needs_ctx = needs_ctx
        self.tail_aware = tail_aware
        self.doc = doc

    def __repr__(self) -> str:
        return f"Builtin({self.name})"


@dataclass(frozen=True)
class StoredRef:
    """A value kept out of the program text; rendered as ``(stored "id")``."""

    id: str


NUMBER_TYPES = (int, float, Fraction, Decimal)


def is_number(x: Any) -> bool:
    return isinstance(x, NUMBER_TYPES) and not isinstance(x, bool)


def normalize_ratio(x: Fraction) -> Any:
    """Clojure ratios with denominator 1 are integers."""
    return x.numerator if x.denominator == 1 else x


def truthy(x: Any) -> bool:
    return x is not None and x is not False


def sym(text: str) -> Symbol:
    return Symbol.parse(text)


def kw(text: str) -> Keyword:
    return Keyword.of(text)


def slist(*items: Any) -> List:
    return List(items)


def vec(*items: Any) -> Vector:
    return Vector(items)


def smap(*kvs: Any) -> Map:
    m = Map()
    for i in range(0, len(kvs), 2):
        dict.__setitem__(m, kvs[i], kvs[i + 1])
    return m


def spell_equal(a: Any, b: Any) -> bool:
    """Clojure ``=``: sequences compare by elements across list/vector, numbers do not
    equal booleans, ints equal floats only when Clojure says so (``(= 1 1.0)`` is false)."""
    if a is b:
        return True
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if is_number(a) and is_number(b):
        if isinstance(a, float) != isinstance(b, float):
            return False
        if isinstance(a, Decimal) != isinstance(b, Decimal):
            return False
        return a == b
    if isinstance(a, _Seq) and isinstance(b, _Seq):
        return len(a) == len(b) and all(spell_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, Map) and isinstance(b, Map):
        if len(a) != len(b):
            return False
        for k, v in a.items():
            if k not in b or not spell_equal(v, b[k]):
                return False
        return True
    if isinstance(a, Set) and isinstance(b, Set):
        return a == b
    if type(a) is not type(b) and not (isinstance(a, str) and isinstance(b, str)):
        return False
    return bool(a == b)
