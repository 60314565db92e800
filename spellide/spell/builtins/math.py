"""The ``math/`` namespace (Clojure's ``clojure.math`` / Java ``Math`` semantics).

Results follow Java: ``sqrt``, ``pow``, ``abs``... return doubles; ``floor``/``ceil``/
``trunc`` (also core ``floor``/``ceil``) and ``round`` return integers, as the reference's
tests pin (``(math/floor 3.7)`` is 3, ``(math/abs -5)`` is 5.0); ``round`` rounds half up; domain errors give ``NaN`` and overflow gives ``Infinity``
instead of failing. ``factorial``, ``gcd`` and ``lcm`` are exact on integers.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from . import builtin, namespace
from .core import (CORE_ALIASES, _int, _num, abs_, rand, rand_int, rationalize, to_bigdec,
                   to_float, to_int)
from ..data import Builtin

_T: dict[str, Builtin] = {}


def _f(x: Any, name: str) -> float:
    return float(_num(x, f"math/{name}"))


def _javaish(fn: Callable[..., float], name: str, doc: str) -> None:
    def g(*xs: Any) -> float:
        args = [_f(x, name) for x in xs]
        try:
            return fn(*args)
        except OverflowError:
            return math.inf
        except (ValueError, ZeroDivisionError):
            return _domain(name, args)
    _T[name] = Builtin(name, g, doc=doc)


def _cbrt(x: float) -> float:
    if not math.isfinite(x):
        return x
    r = math.copysign(abs(x) ** (1.0 / 3.0), x)
    n = round(r)
    return float(n) if n * n * n == x else r


def _domain(name: str, args: list) -> float:
    x = args[0] if args else 0.0
    if name in ("log", "log10", "log2") and x == 0.0:
        return -math.inf
    if name == "log1p" and x == -1.0:
        return -math.inf
    if name == "pow":
        b, e = args
        if b == 0.0 and e < 0:
            return math.inf
    return math.nan


for _name, _fn, _doc in [
    ("sqrt", math.sqrt, "Square root (NaN for negatives)"),
    ("cbrt", lambda x: _cbrt(x), "Cube root"),
    ("pow", math.pow, "(pow base exponent) as a double"),
    ("exp", math.exp, "e to the power x"),
    ("expm1", math.expm1, "e^x - 1"),
    ("log", math.log, "Natural logarithm"),
    ("log10", math.log10, "Base-10 logarithm"),
    ("log2", math.log2, "Base-2 logarithm"),
    ("log1p", math.log1p, "log(1 + x)"),
    ("sin", math.sin, "Sine (radians)"),
    ("cos", math.cos, "Cosine (radians)"),
    ("tan", math.tan, "Tangent (radians)"),
    ("asin", math.asin, "Arc sine"),
    ("acos", math.acos, "Arc cosine"),
    ("atan", math.atan, "Arc tangent"),
    ("atan2", math.atan2, "(atan2 y x): angle of the point (x, y)"),
    ("sinh", math.sinh, "Hyperbolic sine"),
    ("cosh", math.cosh, "Hyperbolic cosine"),
    ("tanh", math.tanh, "Hyperbolic tangent"),
    ("degrees", math.degrees, "Radians to degrees"),
    ("radians", math.radians, "Degrees to radians"),
    ("hypot", math.hypot, "(hypot x y): sqrt(x^2 + y^2)"),
    ("sign", lambda x: x if x == 0.0 or x != x else math.copysign(1.0, x),
     "Sign of x: -1.0, 0.0 or 1.0"),
]:
    _javaish(_fn, _name, _doc)


@builtin("round", table=_T, doc="(round x): nearest integer, halves up; (round x n): x rounded "
                                "to n decimals (a double)")
def round_(x: Any, digits: Any = None) -> Any:
    if digits is not None:
        n = _int(digits, "math/round")
        f = _f(x, "round")
        if not math.isfinite(f):
            return f
        scale = 10.0 ** n
        return math.floor(f * scale + 0.5) / scale
    if type(x) is int:
        return x
    f = _f(x, "round")
    if f != f:
        return 0
    if math.isinf(f):
        return (1 << 63) - 1 if f > 0 else -(1 << 63)
    return math.floor(f + 0.5)


@builtin("abs", table=_T, doc="Absolute value, as a double (Java's Math/abs on a double)")
def m_abs(x: Any) -> Any:
    return float(abs_(x))


def _integral(fn: Callable[[Any], int], what: str) -> Callable[[Any], Any]:
    """floor/ceil/trunc as the reference pins them: an integer (a long), not a double; an
    integer or ratio argument stays exact; NaN and the infinities have no integer and pass
    through."""
    def g(x: Any) -> Any:
        v = _num(x, what)
        if isinstance(v, float) and not math.isfinite(v):
            return v
        return fn(v)
    return g


for _name, _fn, _doc in [
    ("floor", math.floor, "Largest integer <= x"),
    ("ceil", math.ceil, "Smallest integer >= x"),
    ("trunc", math.trunc, "x without its fraction (towards zero), an integer"),
]:
    builtin(_name, table=_T, doc=_doc)(_integral(_fn, f"math/{_name}"))
    if _name != "trunc":
        builtin(_name, doc=_doc)(_integral(_fn, _name))


@builtin("factorial", table=_T, doc="n! for a non-negative integer n (exact)")
def factorial(n: Any) -> int:
    n = _int(n, "math/factorial")
    if n < 0:
        raise ValueError("factorial of a negative number")
    if n > 20000:
        raise ValueError("factorial argument too large")
    return math.factorial(n)


@builtin("gcd", table=_T, doc="Greatest common divisor of integers")
def gcd(*xs: Any) -> int:
    return math.gcd(*[_int(x, "math/gcd") for x in xs])


@builtin("lcm", table=_T, doc="Least common multiple of integers")
def lcm(*xs: Any) -> int:
    return math.lcm(*[_int(x, "math/lcm") for x in xs])


@builtin("NaN?", table=_T, doc="Is x NaN?")
def is_nan(x: Any) -> bool:
    return type(x) is float and x != x


@builtin("infinite?", table=_T, doc="Is x positive or negative infinity?")
def is_infinite(x: Any) -> bool:
    return type(x) is float and math.isinf(x)


for _alias, _target in CORE_ALIASES.items():
    _T[_alias] = _target

_T["rand"] = Builtin("rand", rand, needs_ctx=True, doc="Random double in [0, n)")
_T["rand-int"] = Builtin("rand-int", rand_int, needs_ctx=True, doc="Random integer in [0, n)")
for _n, _f2, _d in [("float", to_float, "Coerce to a double"),
                    ("double", to_float, "Coerce to a double"),
                    ("long", to_int, "Coerce to an integer"),
                    ("bigdec", to_bigdec, "Coerce to a decimal"),
                    ("rationalize", rationalize, "Exact rational of a number")]:
    _T[_n] = Builtin(_n, _f2, doc=_d)

_CONSTANTS = {
    "PI": (math.pi, "pi"),
    "E": (math.e, "Euler's number e"),
    "INF": (math.inf, "positive infinity"),
    "NEG-INF": (-math.inf, "negative infinity"),
    "NaN": (math.nan, "not a number"),
}


def make_namespace() -> Any:
    return namespace("math", _T, _CONSTANTS,
                     overview="Math functions with Java semantics: (math/sqrt 2.0), "
                              "(math/pow 2 10), (math/floor x), math/PI...")
