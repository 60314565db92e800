"""Core builtins: numbers, comparison, predicates, strings/regex, misc; and the sequence
helpers (``items``, ``iterate_items``, ``get``, ``compare``, ``Infinite``) the other builtin
modules share.

Numbers follow Clojure: int/int division gives a normalized ratio (``Fraction``), a float
anywhere makes the result a float, decimals (``1.5M``) stay decimal with ints and ratios,
``(= 1 1.0)`` is false and ``==`` compares numerically. Integers are unbounded.
"""

from __future__ import annotations

import math
import re
import uuid
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from functools import cmp_to_key
from itertools import islice
from typing import Any, Callable, Iterator

from . import builtin
from ..data import (Builtin, Char, Keyword, List, Map, Regex, Set, SpellFn, SpellMacro, StoredRef,
                    Symbol, Vector, _Seq, compile_regex, normalize_ratio, spell_equal)
from ..limits import check_size, limited, str_bytes, timeout_error

#: Most elements a builtin will generate (range, repeat...) or realize from an infinite seq.
MAX_REALIZE = 10_000_000

NUM = frozenset((int, float, Fraction, Decimal))


def pr(x: Any) -> str:
    from ..printer import pr_str
    return pr_str(x)


def show(x: Any, limit: int = 60) -> str:
    """A short printed form of ``x`` for error messages."""
    try:
        s = pr(x)
    except Exception:  # noqa: BLE001
        s = repr(x)
    return s if len(s) <= limit else s[: limit - 3] + "..."


_TYPE_NAMES = {
    int: "java.lang.Long", float: "java.lang.Double", str: "java.lang.String",
    bool: "java.lang.Boolean", Fraction: "clojure.lang.Ratio", Decimal: "java.math.BigDecimal",
    Keyword: "clojure.lang.Keyword", Symbol: "clojure.lang.Symbol",
    Vector: "clojure.lang.PersistentVector", List: "clojure.lang.PersistentList",
    Map: "clojure.lang.PersistentArrayMap", Set: "clojure.lang.PersistentHashSet",
    Char: "java.lang.Character", Regex: "java.util.regex.Pattern",
    SpellFn: "spell.lang.Fn", Builtin: "spell.lang.Builtin", SpellMacro: "spell.lang.Macro",
    StoredRef: "spell.lang.StoredRef",
}


def type_name(x: Any) -> str:
    if x is None:
        return "nil"
    return _TYPE_NAMES.get(type(x), type(x).__name__)


def _num(x: Any, op: str) -> Any:
    if type(x) in NUM:
        return x
    raise TypeError(f"{show(x)} ({type_name(x)}) is not a number")


def _int(x: Any, op: str) -> int:
    if type(x) is int:
        return x
    raise TypeError(f"{show(x)} ({type_name(x)}) is not an integer")


# --------------------------------------------------------------------------------------------
# sequences

class Reduced:
    """``(reduced x)``: stops ``reduce`` early."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value

    def spell_pr(self) -> str:
        return "(reduced " + pr(quote_form(self.value)) + ")"


def quote_form(x: Any) -> Any:
    if x is None or type(x) in (bool, int, float, str, Keyword, Fraction, Decimal, Char):
        return x
    return List((Symbol("quote"), x))


class Infinite:
    """A lazily produced, unbounded sequence (``(range)``, ``(repeat x)``, ...). ``make()``
    returns a fresh iterator; ``form`` is source that evaluates back to an equal sequence,
    used for printing."""

    __slots__ = ("make", "form")

    def __init__(self, make: Callable[[], Iterator], form: Any):
        self.make = make
        self.form = form

    def iterate(self) -> Iterator:
        n = 0
        for x in self.make():
            n += 1
            if n > MAX_REALIZE:
                raise ValueError(f"infinite sequence: more than {MAX_REALIZE} elements realized")
            yield x

    def spell_take(self, n: int) -> tuple:
        return tuple(islice(self.iterate(), n))

    def spell_pr(self) -> str:
        return pr(self.form)

    def __repr__(self) -> str:
        return f"Infinite({self.spell_pr()})"


def _infinite_error(x: Infinite) -> ValueError:
    return ValueError(f"{x.spell_pr()} is an infinite sequence; take a bounded part first "
                      "(e.g. with take or take-while)")


def items(x: Any) -> Any:
    """The elements of a finite collection as a sequence (tuple or list); nil -> ()."""
    t = type(x)
    if t is Vector or t is List:
        return x
    if x is None:
        return ()
    if t is Map:
        return [Vector((k, v)) for k, v in x.items()]
    if t is Set:
        return list(x)
    if t is str:
        return [Char(c) for c in x]
    if isinstance(x, _Seq):
        return x
    if isinstance(x, Map):
        return [Vector((k, v)) for k, v in x.items()]
    if t is Infinite:
        raise _infinite_error(x)
    raise TypeError(f"Don't know how to create a sequence from {show(x)} ({type_name(x)})")


def iterate_items(x: Any) -> Iterator:
    """Iterate a finite collection or (boundedly) an infinite one."""
    if type(x) is Infinite:
        return x.iterate()
    return iter(items(x))


def seq_or_inf(x: Any) -> Any:
    return x if type(x) is Infinite else items(x)


def is_coll(x: Any) -> bool:
    return isinstance(x, (_Seq, Map, Set))


_MISSING = object()


def get(coll: Any, k: Any, default: Any = None) -> Any:
    """Clojure ``get``: maps by key, vectors and strings by index, sets by membership."""
    t = type(coll)
    if t is Map or isinstance(coll, Map):
        try:
            return dict.get(coll, k, default)
        except TypeError:
            return default
    if t is Vector or t is str:
        if type(k) is int and 0 <= k < len(coll):
            return coll[k] if t is Vector else Char(coll[k])
        return default
    if t is Set:
        return k if k in coll else default
    return default


# --------------------------------------------------------------------------------------------
# arithmetic

def _dec(x: Any) -> Decimal:
    t = type(x)
    if t is Decimal:
        return x
    if t is Fraction:
        return Decimal(x.numerator) / Decimal(x.denominator)
    return Decimal(x)


def _norm(r: Any) -> Any:
    return normalize_ratio(r) if type(r) is Fraction else r


def _arith(a: Any, b: Any, op: Callable, name: str) -> Any:
    ta, tb = type(a), type(b)
    if ta not in NUM:
        _num(a, name)
    if tb not in NUM:
        _num(b, name)
    if ta is float or tb is float:
        return op(float(a), float(b))
    if ta is Decimal or tb is Decimal:
        return op(_dec(a), _dec(b))
    return _norm(op(a, b))


def add2(a: Any, b: Any) -> Any:
    if type(a) is int and type(b) is int:
        return a + b
    return _arith(a, b, lambda x, y: x + y, "+")


def sub2(a: Any, b: Any) -> Any:
    if type(a) is int and type(b) is int:
        return a - b
    return _arith(a, b, lambda x, y: x - y, "-")


def mul2(a: Any, b: Any) -> Any:
    if type(a) is int and type(b) is int:
        return a * b
    return _arith(a, b, lambda x, y: x * y, "*")


def div2(a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if ta not in NUM:
        _num(a, "/")
    if tb not in NUM:
        _num(b, "/")
    if ta is float or tb is float:
        fa, fb = float(a), float(b)
        if fb == 0.0:
            if fa == 0.0 or fa != fa:
                return math.nan
            return math.copysign(math.inf, fa) * math.copysign(1.0, fb)
        return fa / fb
    if b == 0:
        raise ArithmeticError("Divide by zero")
    if ta is Decimal or tb is Decimal:
        return _dec(a) / _dec(b)
    if ta is int and tb is int:
        if a % b == 0:
            return a // b
        return Fraction(a, b)
    return _norm(Fraction(a) / Fraction(b))


@builtin("+", "+'", doc="Sum of the numbers; (+) is 0")
def plus(*xs: Any) -> Any:
    if len(xs) == 2:
        return add2(xs[0], xs[1])
    acc: Any = 0
    for x in xs:
        acc = add2(acc, x)
    if len(xs) == 1:
        _num(xs[0], "+")
    return acc


@builtin("-", "-'", doc="Subtract the rest from the first; (- x) negates")
def minus(x: Any, *xs: Any) -> Any:
    if not xs:
        return sub2(0, x)
    acc = x
    for y in xs:
        acc = sub2(acc, y)
    return acc


@builtin("*", "*'", doc="Product of the numbers; (*) is 1")
def times(*xs: Any) -> Any:
    acc: Any = 1
    for x in xs:
        acc = mul2(acc, x)
    if len(xs) == 1:
        _num(xs[0], "*")
    return acc


@builtin("/", doc="Divide; integers give exact ratios like 1/2; dividing by exact zero fails")
def divide(x: Any, *xs: Any) -> Any:
    if not xs:
        return div2(1, x)
    acc = x
    for y in xs:
        acc = div2(acc, y)
    return acc


@builtin("inc", "inc'", doc="x + 1")
def inc(x: Any) -> Any:
    if type(x) is int:
        return x + 1
    return add2(x, 1)


@builtin("dec", "dec'", doc="x - 1")
def dec(x: Any) -> Any:
    if type(x) is int:
        return x - 1
    return sub2(x, 1)


def _zero_check(b: Any) -> None:
    if b == 0 and type(b) is not float:
        raise ArithmeticError("Divide by zero")


@builtin("quot", doc="Quotient of division, truncated toward zero")
def quot(a: Any, b: Any) -> Any:
    _num(a, "quot")
    _num(b, "quot")
    _zero_check(b)
    if type(a) is int and type(b) is int:
        q = abs(a) // abs(b)
        return q if (a >= 0) == (b >= 0) else -q
    if type(a) is float or type(b) is float:
        if float(b) == 0.0:
            raise ArithmeticError("Divide by zero")
        return float(math.trunc(float(a) / float(b)))
    r = div2(a, b)
    return _norm(Fraction(math.trunc(r))) if type(r) is not Decimal else Decimal(math.trunc(r))


@builtin("rem", doc="Remainder of quot (sign of the dividend)")
def rem(a: Any, b: Any) -> Any:
    q = quot(a, b)
    return sub2(a, mul2(b, q))


@builtin("mod", doc="Modulus (sign of the divisor)")
def mod(a: Any, b: Any) -> Any:
    if type(a) is int and type(b) is int:
        _zero_check(b)
        return a % b
    m = rem(a, b)
    if m != 0 and (m < 0) != (b < 0):
        m = add2(m, b)
    return m


def _check_nums(xs: tuple, name: str) -> None:
    for x in xs:
        if type(x) not in NUM:
            _num(x, name)


@builtin("max", doc="Greatest of the numbers")
def max_(x: Any, *xs: Any) -> Any:
    _check_nums((x, *xs), "max")
    best = x
    for y in xs:
        if y != y:
            return y
        if y > best:
            best = y
    return best


@builtin("min", doc="Least of the numbers")
def min_(x: Any, *xs: Any) -> Any:
    _check_nums((x, *xs), "min")
    best = x
    for y in xs:
        if y != y:
            return y
        if y < best:
            best = y
    return best


@builtin("abs", doc="Absolute value")
def abs_(x: Any) -> Any:
    return abs(_num(x, "abs"))


@builtin("int", "long", doc="Coerce to an integer (truncates); characters give their code")
def to_int(x: Any) -> int:
    t = type(x)
    if t is int:
        return x
    if t is Char:
        return ord(x.c)
    if t is float:
        if x != x or x in (math.inf, -math.inf):
            raise ValueError(f"Cannot convert {show(x)} to an integer")
        return int(x)
    if t in NUM:
        return int(x)
    raise TypeError(f"Cannot convert {show(x)} ({type_name(x)}) to an integer")


@builtin("float", "double", doc="Coerce to a floating-point number")
def to_float(x: Any) -> float:
    if type(x) in NUM:
        return float(x)
    raise TypeError(f"Cannot convert {show(x)} ({type_name(x)}) to a double")


@builtin("bigint", "biginteger", doc="Coerce to an integer")
def to_bigint(x: Any) -> int:
    if type(x) is str:
        return int(x.strip())
    return to_int(x)


@builtin("bigdec", doc="Coerce to a decimal (1.5M)")
def to_bigdec(x: Any) -> Decimal:
    t = type(x)
    if t is float:
        if x != x or x in (math.inf, -math.inf):
            raise ValueError(f"Cannot convert {show(x)} to a decimal")
        return Decimal(repr(x))
    if t is str:
        try:
            return Decimal(x.strip().removesuffix("M"))
        except InvalidOperation:
            raise ValueError(f"Cannot convert {show(x)} to a decimal") from None
    if t in NUM:
        return _dec(x)
    raise TypeError(f"Cannot convert {show(x)} ({type_name(x)}) to a decimal")


@builtin("rationalize", doc="The exact rational equal to a number")
def rationalize(x: Any) -> Any:
    t = type(x)
    if t is float:
        if x != x or x in (math.inf, -math.inf):
            raise ValueError(f"Cannot rationalize {show(x)}")
        return _norm(Fraction(Decimal(repr(x))))
    if t is Decimal:
        return _norm(Fraction(x))
    return _num(x, "rationalize")


@builtin("numerator", doc="Numerator of a ratio")
def numerator(x: Any) -> int:
    if type(x) in (Fraction, int):
        return x.numerator
    raise TypeError(f"{show(x)} is not a ratio")


@builtin("denominator", doc="Denominator of a ratio")
def denominator(x: Any) -> int:
    if type(x) in (Fraction, int):
        return x.denominator
    raise TypeError(f"{show(x)} is not a ratio")


_NUM_IN_TEXT = re.compile(r"-?\d+(?:\.\d+)?")


@builtin("parse-number", doc='The first number in a string ("Answer: 42" -> 42), nil if none')
def parse_number(s: Any) -> Any:
    # As the reference: the first -?digits(.digits)? anywhere in (str s).
    m = _NUM_IN_TEXT.search(s if type(s) is str else to_str(s))
    if m is None:
        return None
    text = m.group(0)
    return float(text) if "." in text else int(text)


@builtin("parse-long", doc="Parse an integer from a string; nil if it is not one")
def parse_long(s: Any) -> Any:
    if not isinstance(s, str):
        raise TypeError(f"parse-long expects a string, got {show(s)}")
    return int(s) if re.fullmatch(r"[+-]?\d+", s) else None


@builtin("parse-double", doc="Parse a floating-point number from a string; nil if not one")
def parse_double(s: Any) -> Any:
    if not isinstance(s, str):
        raise TypeError(f"parse-double expects a string, got {show(s)}")
    t = s.strip()
    if re.fullmatch(r"[+-]?(NaN|Infinity|(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?)", t):
        return float(t.replace("Infinity", "inf"))
    return None


@builtin("parse-boolean", doc='"true" -> true, "false" -> false, else nil')
def parse_boolean(s: Any) -> Any:
    if not isinstance(s, str):
        raise TypeError(f"parse-boolean expects a string, got {show(s)}")
    return {"true": True, "false": False}.get(s)


@builtin("rand", ctx=True, doc="Random float in [0, n) (default n = 1)")
def rand(ctx: Any, env: Any, n: Any = 1) -> float:
    return ctx.rng.random() * float(_num(n, "rand"))


@builtin("rand-int", ctx=True, doc="Random integer in [0, n)")
def rand_int(ctx: Any, env: Any, n: Any) -> int:
    return int(ctx.rng.random() * float(_num(n, "rand-int")))


# --------------------------------------------------------------------------------------------
# comparison

def _cmp_chain(xs: tuple, name: str, test: Callable[[Any, Any], bool]) -> bool:
    _check_nums(xs, name)
    for i in range(len(xs) - 1):
        if not test(xs[i], xs[i + 1]):
            return False
    return True


@builtin("<", doc="Strictly increasing numbers?")
def lt(*xs: Any) -> bool:
    if len(xs) == 2 and type(xs[0]) is int and type(xs[1]) is int:
        return xs[0] < xs[1]
    return _cmp_chain(xs, "<", lambda a, b: a < b)


@builtin(">", doc="Strictly decreasing numbers?")
def gt(*xs: Any) -> bool:
    if len(xs) == 2 and type(xs[0]) is int and type(xs[1]) is int:
        return xs[0] > xs[1]
    return _cmp_chain(xs, ">", lambda a, b: a > b)


@builtin("<=", doc="Non-decreasing numbers?")
def le(*xs: Any) -> bool:
    return _cmp_chain(xs, "<=", lambda a, b: a <= b)


@builtin(">=", doc="Non-increasing numbers?")
def ge(*xs: Any) -> bool:
    return _cmp_chain(xs, ">=", lambda a, b: a >= b)


@builtin("=", doc="Value equality (1 and 1.0 are not =; [1 2] and (1 2) are)")
def eq(x: Any, *xs: Any) -> bool:
    for y in xs:
        if not spell_equal(x, y):
            return False
    return True


@builtin("not=", doc="(not (= ...))")
def not_eq(x: Any, *xs: Any) -> bool:
    return not eq(x, *xs)


@builtin("==", doc="Numeric equality across number types: (== 1 1.0) is true")
def num_eq(x: Any, *xs: Any) -> bool:
    return _cmp_chain((x, *xs), "==", lambda a, b: a == b)


def _rank(x: Any) -> int:
    if x is None:
        return 0
    t = type(x)
    if t is bool:
        return 1
    if t in NUM:
        return 2
    if t is str:
        return 3
    if t is Char:
        return 4
    if t is Keyword:
        return 5
    if t is Symbol:
        return 6
    if isinstance(x, _Seq):
        return 7
    return 99


def compare(a: Any, b: Any) -> int:
    """Clojure ``compare``: -1, 0 or 1; nil sorts first; vectors by length then elements."""
    ra, rb = _rank(a), _rank(b)
    if ra == 0 or rb == 0:
        return (ra > 0) - (rb > 0)
    if ra != rb or ra == 99:
        raise TypeError(f"Cannot compare {show(a)} ({type_name(a)}) with {show(b)} "
                        f"({type_name(b)})")
    if ra in (2, 3, 1):
        if ra == 2 and (a != a or b != b):
            return 0
        return (a > b) - (a < b)
    if ra == 4:
        return (a.c > b.c) - (a.c < b.c)
    if ra in (5, 6):
        ka, kb = (a.ns or "", a.name), (b.ns or "", b.name)
        if a.ns is None and b.ns is not None:
            return -1
        if b.ns is None and a.ns is not None:
            return 1
        return (ka > kb) - (ka < kb)
    if len(a) != len(b):
        return -1 if len(a) < len(b) else 1
    for x, y in zip(a, b):
        c = compare(x, y)
        if c:
            return c
    return 0


builtin("compare", doc="Compare two values: negative, zero or positive")(compare)


def sort_key_default() -> Any:
    return cmp_to_key(compare)


@builtin("not", doc="true for nil and false")
def not_(x: Any) -> bool:
    return x is None or x is False


# --------------------------------------------------------------------------------------------
# predicates

def _pred(name: str, doc: str) -> Callable:
    def deco(f: Callable) -> Callable:
        builtin(name, doc=doc)(f)
        return f
    return deco


def _is_int(x: Any) -> bool:
    return type(x) is int


_pred("nil?", "Is x nil?")(lambda x: x is None)
_pred("some?", "Is x not nil?")(lambda x: x is not None)
_pred("true?", "Is x true?")(lambda x: x is True)
_pred("false?", "Is x false?")(lambda x: x is False)
_pred("boolean?", "Is x a boolean?")(lambda x: type(x) is bool)
_pred("any?", "Always true")(lambda x: True)
_pred("number?", "Is x a number?")(lambda x: type(x) in NUM)
_pred("integer?", "Is x an integer?")(_is_int)
_pred("int?", "Is x an integer?")(_is_int)
_pred("nat-int?", "Is x a non-negative integer?")(lambda x: _is_int(x) and x >= 0)
_pred("pos-int?", "Is x a positive integer?")(lambda x: _is_int(x) and x > 0)
_pred("neg-int?", "Is x a negative integer?")(lambda x: _is_int(x) and x < 0)
_pred("ratio?", "Is x a ratio?")(lambda x: type(x) is Fraction)
_pred("rational?", "Is x an integer, ratio or decimal?")(
    lambda x: type(x) in (int, Fraction, Decimal))
_pred("decimal?", "Is x a decimal (1.5M)?")(lambda x: type(x) is Decimal)
_pred("float?", "Is x a floating-point number?")(lambda x: type(x) is float)
_pred("double?", "Is x a floating-point number?")(lambda x: type(x) is float)
_pred("string?", "Is x a string?")(lambda x: type(x) is str)
_pred("char?", "Is x a character?")(lambda x: type(x) is Char)
_pred("keyword?", "Is x a keyword?")(lambda x: type(x) is Keyword)
_pred("symbol?", "Is x a symbol?")(lambda x: type(x) is Symbol)
_pred("list?", "Is x a list?")(lambda x: type(x) is List)
_pred("seq?", "Is x a seq (list)?")(lambda x: type(x) is List)
_pred("vector?", "Is x a vector?")(lambda x: isinstance(x, Vector))
_pred("map?", "Is x a map?")(lambda x: isinstance(x, Map))
_pred("set?", "Is x a set?")(lambda x: isinstance(x, Set))
_pred("coll?", "Is x a collection?")(lambda x: isinstance(x, (_Seq, Map, Set)))
_pred("sequential?", "Is x a list or vector?")(lambda x: isinstance(x, _Seq))
_pred("associative?", "Is x a map or vector?")(lambda x: isinstance(x, (Map, Vector)))
_pred("fn?", "Is x a function?")(lambda x: type(x) in (SpellFn, Builtin))
_pred("ifn?", "Can x be called?")(
    lambda x: type(x) in (SpellFn, Builtin, Keyword, Symbol) or isinstance(x, (Map, Set, Vector)))
_pred("regex?", "Is x a regex?")(lambda x: type(x) is Regex)
_pred("reduced?", "Is x a reduced value?")(lambda x: type(x) is Reduced)
_pred("ident?", "Is x a keyword or symbol?")(lambda x: type(x) in (Keyword, Symbol))
_pred("simple-keyword?", "A keyword without namespace?")(
    lambda x: type(x) is Keyword and x.ns is None)
_pred("qualified-keyword?", "A keyword with namespace?")(
    lambda x: type(x) is Keyword and x.ns is not None)


@builtin("even?", doc="Is the integer even?")
def even_q(x: Any) -> bool:
    return _int(x, "even?") % 2 == 0


@builtin("odd?", doc="Is the integer odd?")
def odd_q(x: Any) -> bool:
    return _int(x, "odd?") % 2 == 1


@builtin("pos?", doc="Is the number > 0?")
def pos_q(x: Any) -> bool:
    return _num(x, "pos?") > 0


@builtin("neg?", doc="Is the number < 0?")
def neg_q(x: Any) -> bool:
    return _num(x, "neg?") < 0


@builtin("zero?", doc="Is the number zero?")
def zero_q(x: Any) -> bool:
    return _num(x, "zero?") == 0


@builtin("empty?", doc="Is the collection empty (or nil)?")
def empty_q(x: Any) -> bool:
    if x is None:
        return True
    if type(x) is Infinite:
        return False
    if isinstance(x, (str, _Seq, Map, Set)):
        return len(x) == 0
    raise TypeError(f"empty? not supported on {show(x)} ({type_name(x)})")


# --------------------------------------------------------------------------------------------
# strings and regexes

def to_str(x: Any) -> str:
    from ..printer import to_str as _to_str
    return _to_str(x)


@builtin("str", doc="Concatenate the printed forms of the args (strings raw, nil empty)")
def str_(*xs: Any) -> str:
    from ..printer import to_str as _to_str
    if len(xs) == 1 and type(xs[0]) is str:
        return xs[0]
    parts = [x if type(x) is str else _to_str(x) for x in xs]
    check_size(str_bytes(parts), "str")
    return "".join(parts)


builtin("cat", doc="Same as str: concatenate the args")(str_)


@builtin("pr-str", doc="Readable printed form of the args, space separated")
def pr_str_(*xs: Any) -> str:
    return " ".join(pr(x) for x in xs)


@builtin("print-str", doc="str of the args, space separated")
def print_str(*xs: Any) -> str:
    return " ".join("nil" if x is None else to_str(x) for x in xs)


@builtin("read-string", doc="Read one form from a string (data, not evaluated)")
def read_string(s: Any) -> Any:
    if not isinstance(s, str):
        raise TypeError(f"read-string expects a string, got {show(s)}")
    from ..reader import read_string as _read
    return _read(s)


def _check_str(s: Any, name: str) -> str:
    if type(s) is not str:
        raise TypeError(f"expected a string, got {show(s)} ({type_name(s)})")
    return s


@builtin("subs", doc="(subs s start [end]) substring")
def subs(s: Any, start: Any, end: Any = None) -> str:
    _check_str(s, "subs")
    n = len(s)
    start = _int(start, "subs")
    end = n if end is None else _int(end, "subs")
    if not 0 <= start <= end <= n:
        raise IndexError(f"String index out of range: begin {start}, end {end}, length {n}")
    return s[start:end]


_REGEX_CACHE: dict[str, Any] = {}


def regex(x: Any) -> Any:
    """A compiled pattern (of the ``regex`` package) from a regex literal or a string. Match
    with ``limited(pattern.method, ...)``: a match past the evaluation's deadline fails."""
    if type(x) is Regex:
        return x.compiled
    if type(x) is str:
        p = _REGEX_CACHE.get(x)
        if p is None:
            try:
                p = compile_regex(x)
            except re.error as e:
                raise ValueError(f"Invalid regex {show(x)}: {e}") from None
            if len(_REGEX_CACHE) < 1000:
                _REGEX_CACHE[x] = p
        return p
    raise TypeError(f"Expected a regex, got {show(x)} ({type_name(x)})")


def match_value(m: Any) -> Any:
    if m.re.groups == 0:
        return m.group(0)
    return Vector((m.group(0), *m.groups()))


@builtin("re-pattern", doc="Compile a string into a regex")
def re_pattern(s: Any) -> Regex:
    if type(s) is Regex:
        return s
    try:
        return Regex(_check_str(s, "re-pattern"))
    except re.error as e:
        raise ValueError(f"Invalid regex {show(s)}: {e}") from None


@builtin("re-find", doc="First match of the regex in s (string, or [match groups...]); nil if none")
def re_find(r: Any, s: Any) -> Any:
    m = limited(regex(r).search, _check_str(s, "re-find"))
    return match_value(m) if m else None


@builtin("re-matches", doc="Match of the regex against all of s; nil if it does not match")
def re_matches(r: Any, s: Any) -> Any:
    m = limited(regex(r).fullmatch, _check_str(s, "re-matches"))
    return match_value(m) if m else None


@builtin("re-seq", doc="Vector of all matches of the regex in s")
def re_seq(r: Any, s: Any) -> Vector:
    matches = limited(regex(r).finditer, _check_str(s, "re-seq"))
    try:
        return Vector([match_value(m) for m in matches])
    except TimeoutError:   # finditer's timeout covers the whole iteration
        raise timeout_error() from None


_FMT_RE = re.compile(r"%(?:(\d+)\$)?([-#+ 0,(]*)(\d+)?(?:\.(\d+))?([a-zA-Z%])")


def _java_str(x: Any) -> str:
    if x is None:
        return "null"
    return to_str(x)


@builtin("format", doc='Java-style format: (format "%s has %d items, %.2f%%" a n x)')
def format_(fmt: Any, *args: Any) -> str:
    _check_str(fmt, "format")
    out: list[str] = []
    pos = 0
    next_arg = 0
    for m in _FMT_RE.finditer(fmt):
        out.append(fmt[pos:m.start()])
        pos = m.end()
        index, flags, width, prec, conv = m.groups()
        if conv == "%":
            out.append("%")
            continue
        if conv == "n":
            out.append("\n")
            continue
        if index:
            i = int(index) - 1
        else:
            i = next_arg
            next_arg += 1
        if i >= len(args):
            raise ValueError(f"Format specifier '{m.group(0)}' has no matching argument")
        a = args[i]
        lower = conv.lower()
        if lower == "s":
            text = _java_str(a)
            if prec is not None:
                text = text[: int(prec)]
        elif lower == "b":
            text = "false" if a is None or a is False else "true"
        elif lower == "c":
            if type(a) is Char:
                text = a.c
            elif type(a) is int:
                text = chr(a)
            else:
                raise TypeError(f"%c needs a character, got {show(a)}")
        elif lower in "dxo":
            if type(a) is not int:
                raise TypeError(f"%{conv} needs an integer, got {show(a)} ({type_name(a)})")
            spec = ""
            if "+" in flags:
                spec += "+"
            elif " " in flags:
                spec += " "
            if "#" in flags and lower != "d":
                spec += "#"
            if "0" in flags and width:
                spec += "0" + width
            if "," in flags and lower == "d":
                spec += ","
            text = format(a, spec + ("d" if lower == "d" else lower))
        elif lower in "efg":
            if type(a) not in NUM:
                raise TypeError(f"%{conv} needs a number, got {show(a)} ({type_name(a)})")
            spec = ""
            if "+" in flags:
                spec += "+"
            elif " " in flags:
                spec += " "
            if "0" in flags and width:
                spec += "0" + width
            if "," in flags:
                spec += ","
            spec += "." + (prec if prec is not None else "6") + lower
            text = format(float(a) if type(a) is not Decimal else a, spec)
        else:
            raise ValueError(f"Unsupported format conversion '{m.group(0)}'")
        if conv.isupper():
            text = text.upper()
        if width and len(text) < int(width):
            text = text.ljust(int(width)) if "-" in flags else text.rjust(int(width))
        out.append(text)
    out.append(fmt[pos:])
    return "".join(out)


@builtin("strip-parens", doc="(strip-parens n s): s (or its printed form) without its last n "
                            "closing parens")
def strip_parens(n: Any, s: Any) -> str:
    text = s if type(s) is str else pr(s)
    n = _int(n, "strip-parens")
    text = text.rstrip()
    for _ in range(n):
        if not text:
            raise ValueError("not enough closing parens")
        if text[-1] != ")":
            raise ValueError("expected ')'")
        text = text[:-1].rstrip()
    return text


@builtin("name", doc="Name of a keyword or symbol (a string stays itself)")
def name_(x: Any) -> str:
    t = type(x)
    if t is str:
        return x
    if t is Keyword or t is Symbol:
        return x.name
    raise TypeError(f"name expects a keyword, symbol or string, got {show(x)}")


@builtin("namespace", doc="Namespace of a keyword or symbol, or nil")
def namespace_(x: Any) -> Any:
    if type(x) in (Keyword, Symbol):
        return x.ns
    raise TypeError(f"namespace expects a keyword or symbol, got {show(x)}")


@builtin("symbol", doc="(symbol name) or (symbol ns name)")
def symbol_(a: Any, b: Any = None) -> Symbol:
    if b is not None:
        return Symbol(_check_str(b, "symbol"), None if a is None else _check_str(a, "symbol"))
    if type(a) is Symbol:
        return a
    if type(a) is Keyword:
        return Symbol(a.name, a.ns)
    return Symbol.parse(_check_str(a, "symbol"))


@builtin("keyword", doc="(keyword name) or (keyword ns name)")
def keyword_(a: Any, b: Any = None) -> Any:
    if b is not None:
        return Keyword(_check_str(b, "keyword"), None if a is None else _check_str(a, "keyword"))
    t = type(a)
    if t is Keyword:
        return a
    if t is Symbol:
        return Keyword(a.name, a.ns)
    if a is None:
        return None
    return Keyword.of(_check_str(a, "keyword"))


@builtin("char", doc="The character with the given code")
def char_(x: Any) -> Char:
    if type(x) is Char:
        return x
    return Char(chr(_int(x, "char")))


# --------------------------------------------------------------------------------------------
# misc

@builtin("identity", doc="Returns its argument")
def identity(x: Any) -> Any:
    return x


@builtin("boolean", doc="false for nil and false, else true")
def boolean(x: Any) -> bool:
    return x is not None and x is not False


_TYPE_WORDS = {
    str: "string", int: "number", float: "number", Fraction: "number", Decimal: "number",
    bool: "boolean", Keyword: "keyword", Symbol: "symbol", Vector: "vector", Map: "map",
    Set: "set", List: "list", SpellFn: "function", Builtin: "function", Char: "char",
    Regex: "regex", SpellMacro: "macro",
}


@builtin("type", doc='A word naming the type of x: "nil" "string" "number" "boolean" "keyword" '
                     '"symbol" "vector" "map" "set" "list" "function" "char" "regex"')
def type_(x: Any) -> str:
    # As the reference: plain words rather than host class names.
    if x is None:
        return "nil"
    word = _TYPE_WORDS.get(type(x))
    if word is None:
        if isinstance(x, Vector):
            return "vector"
        if isinstance(x, List) or type(x) is Infinite:
            return "list"
        if isinstance(x, Map):
            return "map"
        return type_name(x)
    return word


@builtin("gensym", ctx=True, doc="A fresh symbol G__N (deterministic within a run)")
def gensym(ctx: Any, env: Any, prefix: Any = "G__") -> Symbol:
    ctx.shared.gensym += 1
    return Symbol(f"{to_str(prefix)}{ctx.shared.gensym}")


@builtin("future*", ctx=True, doc="(future* f): evaluate (f) concurrently; the value is a future, "
                                  "{:spell/future true :ref ...}, for blocking/await (inside "
                                  "futures) and !ask-await. (future e) is (future* (fn [] e)).")
def future_star(ctx: Any, env: Any, thunk: Any) -> Any:
    # Outside a run; a run binds its own pool's future* (machine.Run), which keys the
    # futures' effects and ends them with the run.
    from ..futures import DEFAULT_POOL
    return DEFAULT_POOL.future_star(ctx, env, thunk)


@builtin("random-uuid", ctx=True, doc="A random UUID string (from the run's seeded RNG)")
def random_uuid(ctx: Any, env: Any) -> str:
    return str(uuid.UUID(int=ctx.rng.getrandbits(128), version=4))


@builtin("reduced", doc="Wrap a value so that reduce stops with it")
def reduced(x: Any) -> Reduced:
    return Reduced(x)


@builtin("unreduced", doc="The value inside a reduced wrapper")
def unreduced(x: Any) -> Any:
    return x.value if type(x) is Reduced else x


@builtin("throw", doc="Throw a value; (catch e ...) binds it")
def throw(v: Any) -> Any:
    from ..evaluator import make_throw
    raise make_throw(v)


_KW_MESSAGE = Keyword("message")
_KW_DATA = Keyword("data")
_KW_CAUSE = Keyword("cause")


@builtin("ex-info", doc="An error value {:message msg :data data} to throw")
def ex_info(msg: Any, data: Any = None, cause: Any = None) -> Map:
    m = Map()
    dict.__setitem__(m, _KW_MESSAGE, msg if type(msg) is str else to_str(msg))
    dict.__setitem__(m, _KW_DATA, data if data is not None else Map())
    if cause is not None:
        dict.__setitem__(m, _KW_CAUSE, cause)
    return m


@builtin("ex-data", doc="The :data of an error value (nil if none)")
def ex_data(e: Any) -> Any:
    return dict.get(e, _KW_DATA) if isinstance(e, Map) else None


@builtin("ex-message", doc="The :message of an error value")
def ex_message(e: Any) -> Any:
    if isinstance(e, Map):
        return dict.get(e, _KW_MESSAGE)
    return e if type(e) is str else None


@builtin("ex-cause", doc="The :cause of an error value")
def ex_cause(e: Any) -> Any:
    return dict.get(e, _KW_CAUSE) if isinstance(e, Map) else None


@builtin("hash", doc="A hash code of the value")
def hash_(x: Any) -> int:
    try:
        return hash(x) & 0x7FFFFFFF
    except TypeError:
        return id(x) & 0x7FFFFFFF


# --- internal helpers used by macro expansions ---------------------------------------------

@builtin("%no-matching-clause")
def no_matching_clause(v: Any) -> Any:
    # as the reference's case expansion: (throw (str "No matching clause: " v))
    from ..evaluator import make_throw
    raise make_throw(f"No matching clause: {to_str(v)}")


@builtin("%case-in")
def case_in(v: Any, options: Any) -> bool:
    return any(spell_equal(v, o) for o in options)


@builtin("%make-macro")
def make_macro(f: Any, name: Any = None) -> Any:
    from ..macros import make_macro as _mk
    return _mk(f, name)


# --- bitwise --------------------------------------------------------------------------------

_MASK = (1 << 64) - 1


def _signed(x: int) -> int:
    x &= _MASK
    return x - (1 << 64) if x >> 63 else x


@builtin("bit-and", doc="Bitwise and")
def bit_and(x: Any, y: Any, *more: Any) -> int:
    r = _int(x, "bit-and") & _int(y, "bit-and")
    for z in more:
        r &= _int(z, "bit-and")
    return r


@builtin("bit-or", doc="Bitwise or")
def bit_or(x: Any, y: Any, *more: Any) -> int:
    r = _int(x, "bit-or") | _int(y, "bit-or")
    for z in more:
        r |= _int(z, "bit-or")
    return r


@builtin("bit-xor", doc="Bitwise exclusive or")
def bit_xor(x: Any, y: Any, *more: Any) -> int:
    r = _int(x, "bit-xor") ^ _int(y, "bit-xor")
    for z in more:
        r ^= _int(z, "bit-xor")
    return r


@builtin("bit-not", doc="Bitwise complement")
def bit_not(x: Any) -> int:
    return ~_int(x, "bit-not")


@builtin("bit-and-not", doc="x and (not y)")
def bit_and_not(x: Any, y: Any, *more: Any) -> int:
    r = _int(x, "bit-and-not") & ~_int(y, "bit-and-not")
    for z in more:
        r &= ~_int(z, "bit-and-not")
    return r


@builtin("bit-shift-left", doc="Shift left (64-bit)")
def bit_shift_left(x: Any, n: Any) -> int:
    return _signed(_int(x, "bit-shift-left") << (_int(n, "bit-shift-left") & 63))


@builtin("bit-shift-right", doc="Arithmetic shift right")
def bit_shift_right(x: Any, n: Any) -> int:
    return _int(x, "bit-shift-right") >> (_int(n, "bit-shift-right") & 63)


@builtin("unsigned-bit-shift-right", doc="Logical shift right (64-bit)")
def unsigned_bit_shift_right(x: Any, n: Any) -> int:
    return _signed((_int(x, "unsigned-bit-shift-right") & _MASK) >> (_int(n, "") & 63))


@builtin("bit-set", doc="Set bit n")
def bit_set(x: Any, n: Any) -> int:
    return _signed(_int(x, "bit-set") | (1 << (_int(n, "bit-set") & 63)))


@builtin("bit-clear", doc="Clear bit n")
def bit_clear(x: Any, n: Any) -> int:
    return _signed(_int(x, "bit-clear") & ~(1 << (_int(n, "bit-clear") & 63)))


@builtin("bit-flip", doc="Flip bit n")
def bit_flip(x: Any, n: Any) -> int:
    return _signed(_int(x, "bit-flip") ^ (1 << (_int(n, "bit-flip") & 63)))


@builtin("bit-test", doc="Is bit n set?")
def bit_test(x: Any, n: Any) -> bool:
    return bool((_int(x, "bit-test") >> (_int(n, "bit-test") & 63)) & 1)


def _core_aliases() -> dict:
    from . import CORE
    return {n: CORE[n] for n in ("+'", "-'", "*'", "inc'", "dec'")}


CORE_ALIASES = _core_aliases()
