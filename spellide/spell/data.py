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

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any, Callable, Iterable, Iterator, Optional
import re


@dataclass(frozen=True, slots=True)
class Span:
    """A region of source text: 1-based line/column, 0-based character offsets."""

    line: int
    col: int
    end_line: int
    end_col: int
    start: int
    end: int

    def __str__(self) -> str:
        return f"{self.line}:{self.col}"


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


class Regex:
    __slots__ = ("pattern", "compiled", "span")

    def __init__(self, pattern: str, span: Optional[Span] = None):
        self.pattern = pattern
        self.compiled = re.compile(pattern)
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
