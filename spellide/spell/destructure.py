"""Destructuring of binding forms (``let``, ``loop``, ``fn`` params, ``for``, ``if-let``...).

Spell binds like Clojure: a symbol binds the whole value, a vector binds positionally (with
``& rest`` and ``:as whole``), a map binds by key (``:keys``/``:strs``/``:syms``, ``{sym key}``,
``:or`` defaults, ``:as whole``), and all of these nest. Bindings are layered on top of an
immutable environment, so the caller's env is never disturbed (this is what makes ``let``
restore its env for free).

``:or`` defaults are expressions; they are evaluated through the ``ev`` callback
(``ev(form, env) -> value``) so this module does not depend on the evaluator.
"""

from __future__ import annotations

from typing import Any, Callable

from .data import Char, Keyword, List, Map, Set, Symbol, Vector, _Seq
from .errors import SpellError

AMP = Symbol("&")
KW_AS = Keyword("as")
KW_OR = Keyword("or")
KW_KEYS = Keyword("keys")
KW_STRS = Keyword("strs")
KW_SYMS = Keyword("syms")
_MISSING = object()

Eval = Callable[[Any, Any], Any]


def _describe(x: Any) -> str:
    try:
        from .printer import pr_str
        return pr_str(x)
    except Exception:  # printer missing or value unprintable: still give a message
        return repr(x)


def as_items(val: Any) -> tuple:
    """The elements a sequential pattern walks over (nil -> no elements)."""
    if val is None:
        return ()
    if isinstance(val, _Seq):
        return val
    if isinstance(val, str):
        return tuple(Char(c) for c in val)
    if isinstance(val, Map):
        return tuple(Vector((k, v)) for k, v in val.items())
    if isinstance(val, Set):
        return tuple(val)
    lazy = getattr(val, "spell_take", None)
    if lazy is not None:  # an infinite sequence: realize only what a pattern can use
        return lazy(64)
    raise SpellError(f"Cannot destructure {_describe(val)} as a sequence")


def _lookup(m: Any, key: Any) -> Any:
    if isinstance(m, Map):
        try:
            return dict.get(m, key, _MISSING)
        except TypeError:
            return _MISSING
    if isinstance(m, _Seq) and isinstance(key, int) and not isinstance(key, bool):
        return m[key] if 0 <= key < len(m) else _MISSING
    if isinstance(m, Set):
        return key if key in m else _MISSING
    return _MISSING


def bind(pat: Any, val: Any, env: Any, ev: Eval) -> Any:
    """Return ``env`` extended with the bindings of ``pat`` matched against ``val``."""
    t = type(pat)
    if t is Symbol:
        if pat.ns is not None:
            raise SpellError(f"Can't bind a qualified symbol: {pat.full}")
        return env.set(pat, val)
    if t is Vector:
        return _bind_seq(pat, val, env, ev)
    if t is Map:
        return _bind_map(pat, val, env, ev)
    raise SpellError(f"Unsupported binding form: {_describe(pat)}")


def _bind_seq(pat: Vector, val: Any, env: Any, ev: Eval) -> Any:
    items = as_items(val)
    n_items = len(items)
    i, idx, n = 0, 0, len(pat)
    while i < n:
        p = pat[i]
        if p == AMP:
            if i + 1 >= n:
                raise SpellError("Binding form: & must be followed by a pattern")
            rest = items[idx:]
            rest_pat = pat[i + 1]
            if type(rest_pat) is Map:
                rest_val: Any = _pairs_to_map(rest)
            else:
                rest_val = List(rest) if rest else None
            env = bind(rest_pat, rest_val, env, ev)
            i += 2
            continue
        if p is KW_AS:
            if i + 1 >= n:
                raise SpellError("Binding form: :as must be followed by a symbol")
            env = bind(pat[i + 1], val, env, ev)
            i += 2
            continue
        env = bind(p, items[idx] if idx < n_items else None, env, ev)
        idx += 1
        i += 1
    return env


def _pairs_to_map(items: Any) -> Map:
    if len(items) == 1 and isinstance(items[0], Map):
        return items[0]
    m = Map()
    for j in range(0, len(items) - 1, 2):
        dict.__setitem__(m, items[j], items[j + 1])
    return m


def _bind_map(pat: Map, val: Any, env: Any, ev: Eval) -> Any:
    m = val
    if isinstance(val, _Seq) and not isinstance(val, Vector):
        m = _pairs_to_map(val)
    defaults = dict.get(pat, KW_OR)
    if defaults is not None and not isinstance(defaults, Map):
        raise SpellError(":or in a map binding must be a map")

    def value_for(sym: Symbol, key: Any, env: Any) -> Any:
        # As the reference (not Clojure): a default also replaces a key present with nil.
        got = _lookup(m, key)
        if got is _MISSING or got is None:
            if defaults is not None and sym in defaults:
                return ev(dict.__getitem__(defaults, sym), env)
            return None
        return got

    for k, v in pat.items():
        if k is KW_AS:
            env = bind(v, val, env, ev)
        elif k is KW_OR:
            continue
        elif type(k) is Keyword and k.name in ("keys", "strs", "syms"):
            if not isinstance(v, _Seq):
                raise SpellError(f":{k.full} in a map binding must be a vector")
            for s in v:
                if isinstance(s, Keyword):
                    name, ns = s.name, s.ns
                elif isinstance(s, Symbol):
                    name, ns = s.name, s.ns
                elif isinstance(s, str) and k.name == "strs":
                    name, ns = s, None
                else:
                    raise SpellError(f"Unsupported binding key in :{k.name}: {_describe(s)}")
                if k.name == "keys":
                    key: Any = Keyword(name, ns if ns is not None else k.ns)
                elif k.name == "strs":
                    key = name
                else:
                    key = Symbol(name, ns)
                local = Symbol(name)
                env = env.set(local, value_for(local, key, env))
        else:
            if type(k) is Symbol:
                env = env.set(k, value_for(k, v, env)) if k.ns is None else bind(k, None, env, ev)
            else:
                got = _lookup(m, v)
                env = bind(k, None if got is _MISSING else got, env, ev)
    return env


def pattern_symbols(pat: Any) -> list:
    """Every symbol a pattern binds (used to check ``recur`` and for tooling)."""
    out: list = []
    t = type(pat)
    if t is Symbol:
        if pat != AMP:
            out.append(pat)
    elif t is Vector:
        for p in pat:
            if p is not KW_AS:
                out.extend(pattern_symbols(p))
    elif t is Map:
        for k, v in pat.items():
            if k is KW_OR:
                continue
            if k is KW_AS:
                out.extend(pattern_symbols(v))
            elif type(k) is Keyword and k.name in ("keys", "strs", "syms"):
                out.extend(Symbol(s.name) for s in v if isinstance(s, (Symbol, Keyword)))
            else:
                out.extend(pattern_symbols(k))
    return out
