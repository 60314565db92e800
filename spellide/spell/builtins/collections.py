"""Collection builtins: construction, access, ``assoc``/``update`` and friends.

All collections are immutable: every function returns a new value. Functions that return a
seq in Clojure (``rest``, ``next``, ``cons``, ``concat``, ``keys``, ``vals``, ``seq``,
``butlast``, ``list*``) return lists, so they print as Clojure prints them (``reverse`` gives a
vector, as in the reference); ``subvec``
keeps the ``first_line`` numbering of line vectors (``io/read-lines``, ``first-line``).
"""

from __future__ import annotations

from functools import cmp_to_key
from typing import Any

from . import builtin
from .core import (Infinite, _int, compare, get, items, iterate_items, show, type_name)
from ..data import Char, List, Map, Set, Vector, _Seq
from ..evaluator import apply_fn
from ..limits import check_size, seq_bytes

_MISSING = object()


def _entry(x: Any) -> tuple:
    if isinstance(x, _Seq) and len(x) == 2:
        return x[0], x[1]
    raise TypeError(f"Expected a map entry [key value], got {show(x)}")


@builtin("list", doc="A list of the args")
def list_(*xs: Any) -> List:
    return List(xs)


@builtin("vector", doc="A vector of the args")
def vector(*xs: Any) -> Vector:
    return Vector(xs)


@builtin("hash-map", "array-map", doc="A map of the key/value args")
def hash_map(*kvs: Any) -> Map:
    if len(kvs) % 2:
        raise ValueError("hash-map expects an even number of arguments")
    m = Map()
    for i in range(0, len(kvs), 2):
        dict.__setitem__(m, kvs[i], kvs[i + 1])
    return m


@builtin("hash-set", doc="A set of the args")
def hash_set(*xs: Any) -> Set:
    return Set(xs)


@builtin("set", doc="A set of the elements of coll")
def set_(coll: Any) -> Set:
    return Set(items(coll))


@builtin("vec", doc="A vector of the elements of coll")
def vec(coll: Any) -> Vector:
    if type(coll) is Vector and getattr(coll, "first_line", None) is None:
        return coll
    return Vector(items(coll))


@builtin("seq", doc="A list of the elements of coll, or nil when empty")
def seq(coll: Any) -> Any:
    if type(coll) is Infinite:
        return coll
    xs = items(coll)
    if not xs:
        return None
    return xs if type(xs) is List else List(xs)


@builtin("list*", doc="(list* a b coll): a list of a, b and then the elements of coll")
def list_star(*args: Any) -> Any:
    if not args:
        raise TypeError("list* expects at least one argument")
    out = List((*args[:-1], *items(args[-1])))
    return out if out else None


@builtin("empty", doc="An empty collection of the same kind")
def empty(coll: Any) -> Any:
    if coll is None:
        return None
    if isinstance(coll, Vector):
        return Vector()
    if isinstance(coll, List):
        return List()
    if isinstance(coll, Map):
        return Map()
    if isinstance(coll, Set):
        return Set()
    return None


@builtin("first", doc="First element, or nil")
def first(coll: Any) -> Any:
    t = type(coll)
    if t is Vector or t is List:
        return coll[0] if coll else None
    if coll is None:
        return None
    if t is str:
        return Char(coll[0]) if coll else None
    if t is Infinite:
        for x in coll.make():
            return x
    xs = items(coll)
    return xs[0] if xs else None


@builtin("second", doc="Second element, or nil")
def second(coll: Any) -> Any:
    if type(coll) is Infinite:
        xs = coll.spell_take(2)
    else:
        xs = items(coll)
    return xs[1] if len(xs) > 1 else None


@builtin("ffirst", doc="(first (first coll))")
def ffirst(coll: Any) -> Any:
    return first(first(coll))


@builtin("last", doc="Last element, or nil")
def last(coll: Any) -> Any:
    xs = items(coll)
    return xs[-1] if xs else None


@builtin("rest", doc="All but the first element (a list, possibly empty)")
def rest(coll: Any) -> Any:
    if type(coll) is Infinite:
        return _drop_inf(1, coll)
    xs = items(coll)
    return List(xs[1:])


@builtin("next", doc="All but the first element, or nil when there are none")
def next_(coll: Any) -> Any:
    if type(coll) is Infinite:
        return _drop_inf(1, coll)
    xs = items(coll)
    return List(xs[1:]) if len(xs) > 1 else None


def _drop_inf(n: int, coll: Infinite) -> Infinite:
    from itertools import islice
    from ..data import Symbol
    return Infinite(lambda: islice(coll.make(), n, None),
                    List((Symbol("drop"), n, coll.form)))


@builtin("butlast", doc="All but the last element, or nil")
def butlast(coll: Any) -> Any:
    xs = items(coll)
    return List(xs[:-1]) if len(xs) > 1 else None


@builtin("cons", doc="A list of x followed by the elements of coll")
def cons(x: Any, coll: Any) -> List:
    return List((x, *items(coll)))


def conj1(coll: Any, x: Any) -> Any:
    t = type(coll)
    if t is Vector:
        return Vector((*coll, x))
    if t is List:
        return List((x, *coll))
    if isinstance(coll, Map):
        if isinstance(x, Map):
            return coll.assoc(*[v for kv in x.items() for v in kv])
        k, v = _entry(x)
        return coll.assoc(k, v)
    if isinstance(coll, Set):
        return coll.conj(x)
    if coll is None:
        return List((x,))
    if isinstance(coll, Vector):
        return Vector((*coll, x))
    raise TypeError(f"Cannot conj onto {show(coll)} ({type_name(coll)})")


@builtin("conj", doc="Add elements: at the end of a vector, the front of a list, into a set/map")
def conj(coll: Any = _MISSING, *xs: Any) -> Any:
    if coll is _MISSING:
        return Vector()
    if type(coll) is Vector and xs:
        return Vector((*coll, *xs))
    for x in xs:
        coll = conj1(coll, x)
    return coll


builtin("get", doc="(get coll key [default]): value at key/index, or default")(get)


@builtin("get-in", doc="(get-in m [k1 k2 ...] [default])")
def get_in(m: Any, ks: Any, default: Any = None) -> Any:
    cur = m
    for k in items(ks):
        cur = get(cur, k, _MISSING)
        if cur is _MISSING:
            return default
    return cur


def assoc1(coll: Any, k: Any, v: Any) -> Any:
    if coll is None:
        m = Map()
        dict.__setitem__(m, k, v)
        return m
    if isinstance(coll, Map):
        return coll.assoc(k, v)
    if isinstance(coll, Vector):
        if type(k) is not int:
            raise TypeError(f"Vector index must be an integer, got {show(k)}")
        if k == len(coll):
            return Vector((*coll, v))
        if not 0 <= k < len(coll):
            raise IndexError(f"Index {k} out of bounds for a vector of {len(coll)}")
        out = list(coll)
        out[k] = v
        return Vector(out)
    raise TypeError(f"Cannot assoc on {show(coll)} ({type_name(coll)})")


@builtin("assoc", doc="(assoc m k v ...): m with keys set")
def assoc(coll: Any, k: Any, v: Any, *kvs: Any) -> Any:
    if len(kvs) % 2:
        raise ValueError("assoc expects an even number of key/value arguments")
    if isinstance(coll, Map) and kvs:
        return coll.assoc(k, v, *kvs)
    coll = assoc1(coll, k, v)
    for i in range(0, len(kvs), 2):
        coll = assoc1(coll, kvs[i], kvs[i + 1])
    return coll


@builtin("assoc-in", doc="(assoc-in m [k1 k2 ...] v)")
def assoc_in(m: Any, ks: Any, v: Any) -> Any:
    ks = items(ks)
    if not ks:
        return assoc1(m, None, v)

    def rec(cur: Any, i: int) -> Any:
        k = ks[i]
        if i == len(ks) - 1:
            return assoc1(cur, k, v)
        return assoc1(cur, k, rec(get(cur, k), i + 1))
    return rec(m, 0)


@builtin("dissoc", doc="(dissoc m k ...): m without the keys")
def dissoc(m: Any, *ks: Any) -> Any:
    if m is None:
        return None
    if not isinstance(m, Map):
        raise TypeError(f"Cannot dissoc from {show(m)} ({type_name(m)})")
    return m.dissoc(*ks)


@builtin("update", ctx=True, doc="(update m k f & args): m with (f (get m k) args...) at k")
def update(ctx: Any, env: Any, m: Any, k: Any, f: Any, *args: Any) -> Any:
    return assoc1(m, k, apply_fn(f, [get(m, k), *args], env, ctx))


@builtin("update-in", ctx=True, doc="(update-in m [k1 k2 ...] f & args)")
def update_in(ctx: Any, env: Any, m: Any, ks: Any, f: Any, *args: Any) -> Any:
    ks = items(ks)

    def rec(cur: Any, i: int) -> Any:
        k = ks[i]
        if i == len(ks) - 1:
            return assoc1(cur, k, apply_fn(f, [get(cur, k), *args], env, ctx))
        return assoc1(cur, k, rec(get(cur, k), i + 1))
    if not ks:
        return assoc1(m, None, apply_fn(f, [get(m, None), *args], env, ctx))
    return rec(m, 0)


@builtin("count", doc="Number of elements (characters of a string); nil is 0")
def count(coll: Any) -> int:
    if coll is None:
        return 0
    if isinstance(coll, (str, _Seq, Map, Set)):
        return len(coll)
    if type(coll) is Infinite:
        raise ValueError(f"count of an infinite sequence {coll.spell_pr()}")
    raise TypeError(f"count not supported on {show(coll)} ({type_name(coll)})")


@builtin("reverse", doc="The elements in reverse order (a vector)")
def reverse(coll: Any) -> Vector:
    return Vector(reversed(items(coll)))


@builtin("nth", doc="(nth coll i [not-found]): element at index i")
def nth(coll: Any, i: Any, not_found: Any = _MISSING) -> Any:
    if type(i) is not int:
        raise TypeError(f"nth: index must be an integer, got {show(i)}")
    if coll is None:
        return None if not_found is _MISSING else not_found
    if type(coll) is Infinite:
        if i >= 0:
            xs = coll.spell_take(i + 1)
            if len(xs) > i:
                return xs[i]
    else:
        xs = coll if type(coll) is str else items(coll)
        if 0 <= i < len(xs):
            return Char(xs[i]) if type(xs) is str else xs[i]
    if not_found is not _MISSING:
        return not_found
    raise IndexError(f"Index {i} out of bounds")


@builtin("keys", doc="The keys of a map (a list), or nil when empty")
def keys(m: Any) -> Any:
    if m is None:
        return None
    if not isinstance(m, Map):
        raise TypeError(f"keys expects a map, got {show(m)}")
    return List(m.keys()) if m else None


@builtin("vals", doc="The values of a map (a list), or nil when empty")
def vals(m: Any) -> Any:
    if m is None:
        return None
    if not isinstance(m, Map):
        raise TypeError(f"vals expects a map, got {show(m)}")
    return List(m.values()) if m else None


@builtin("key", doc="Key of a map entry")
def key(e: Any) -> Any:
    return _entry(e)[0]


@builtin("val", doc="Value of a map entry")
def val(e: Any) -> Any:
    return _entry(e)[1]


@builtin("into", doc="(into to from): add the elements of from to the collection to")
def into(to: Any, frm: Any = _MISSING, *more: Any) -> Any:
    if frm is _MISSING:
        return to
    if more:
        raise TypeError("into with a transducer is not supported; use (into to (map f coll))")
    xs = items(frm)
    check_size(seq_bytes(len(to) if hasattr(to, "__len__") else 0, len(xs)), "into")
    if type(to) is Vector:
        return Vector((*to, *xs))
    if isinstance(to, Map):
        m = Map(to)
        for x in xs:
            if isinstance(x, Map):
                m.update(x)
            else:
                k, v = _entry(x)
                dict.__setitem__(m, k, v)
        return m
    if isinstance(to, Set):
        return Set((*to, *xs))
    if to is None or type(to) is List:
        return List((*reversed(xs), *(to or ())))
    if isinstance(to, Vector):
        return Vector((*to, *xs))
    raise TypeError(f"Cannot add elements into {show(to)} ({type_name(to)})")


@builtin("concat", doc="A list of the elements of all the collections")
def concat(*colls: Any) -> List:
    parts = [items(c) for c in colls]
    check_size(seq_bytes(*map(len, parts)), "concat")
    out: list = []
    for p in parts:
        out.extend(p)
    return List(out)


@builtin("peek", doc="Last of a vector, first of a list")
def peek(coll: Any) -> Any:
    if coll is None:
        return None
    if isinstance(coll, Vector):
        return coll[-1] if coll else None
    if isinstance(coll, List):
        return coll[0] if coll else None
    raise TypeError(f"peek expects a vector or list, got {show(coll)}")


@builtin("pop", doc="A vector without its last / a list without its first element")
def pop(coll: Any) -> Any:
    if coll is None:
        return None
    if not coll and isinstance(coll, _Seq):
        raise ValueError("Can't pop an empty collection")
    if isinstance(coll, Vector):
        return Vector(coll[:-1])
    if isinstance(coll, List):
        return List(coll[1:])
    raise TypeError(f"pop expects a vector or list, got {show(coll)}")


@builtin("subvec", doc="(subvec v start [end]); keeps first-line numbering")
def subvec(v: Any, start: Any, end: Any = None) -> Vector:
    if not isinstance(v, Vector):
        raise TypeError(f"subvec expects a vector, got {show(v)}")
    n = len(v)
    start = _int(start, "subvec")
    end = n if end is None else _int(end, "subvec")
    if not 0 <= start <= end <= n:
        raise IndexError(f"subvec: indices {start}..{end} out of bounds for a vector of {n}")
    out = Vector(v[start:end])
    first_line = getattr(v, "first_line", None)
    if first_line is not None:
        out.first_line = first_line + start  # type: ignore[attr-defined]
    return out


@builtin("not-empty", doc="coll, or nil when it is empty")
def not_empty(coll: Any) -> Any:
    if coll is None:
        return None
    if type(coll) is Infinite:
        return coll
    return coll if len(coll) else None


@builtin("merge", doc="Maps merged left to right (later keys win); nils ignored")
def merge(*maps: Any) -> Any:
    out = None
    for m in maps:
        if m is None:
            continue
        if out is None:
            out = Map(m) if isinstance(m, Map) else conj1(Map(), m)
        elif isinstance(m, Map):
            out.update(m)
        else:
            out = conj1(out, m)
    return out


@builtin("merge-with", ctx=True, doc="(merge-with f m1 m2 ...): combine values of equal keys")
def merge_with(ctx: Any, env: Any, f: Any, *maps: Any) -> Any:
    out = None
    for m in maps:
        if m is None:
            continue
        if out is None:
            out = Map(m)
            continue
        for k, v in m.items():
            if k in out:
                dict.__setitem__(out, k, apply_fn(f, [out[k], v], env, ctx))
            else:
                dict.__setitem__(out, k, v)
    return out


@builtin("select-keys", doc="The map restricted to the given keys")
def select_keys(m: Any, ks: Any) -> Map:
    out = Map()
    if m is None:
        return out
    for k in items(ks):
        v = get(m, k, _MISSING)
        if v is not _MISSING:
            dict.__setitem__(out, k, v)
    return out


@builtin("contains?", doc="Does the map/set have the key (or the vector the index)?")
def contains(coll: Any, k: Any) -> bool:
    if coll is None:
        return False
    if isinstance(coll, Map):
        try:
            return k in coll
        except TypeError:
            return False
    if isinstance(coll, Set):
        return k in coll
    if isinstance(coll, (Vector, str)):
        return type(k) is int and 0 <= k < len(coll)
    raise TypeError(f"contains? not supported on {show(coll)} ({type_name(coll)})")


@builtin("disj", doc="A set without the elements")
def disj(s: Any, *xs: Any) -> Any:
    if s is None:
        return None
    if not isinstance(s, Set):
        raise TypeError(f"disj expects a set, got {show(s)}")
    return s.disj(*xs)


@builtin("find", doc="The map entry [k v] for key k, or nil")
def find(m: Any, k: Any) -> Any:
    if isinstance(m, (Map, Vector)):
        v = get(m, k, _MISSING)
        return None if v is _MISSING else Vector((k, v))
    if m is None:
        return None
    raise TypeError(f"find expects a map, got {show(m)}")


@builtin("zipmap", doc="A map from keys to vals, pairwise")
def zipmap(ks: Any, vs: Any) -> Map:
    out = Map()
    for k, v in zip(iterate_items(ks), iterate_items(vs)):
        dict.__setitem__(out, k, v)
    return out


@builtin("frequencies", doc="Map from each distinct element to how often it occurs")
def frequencies(coll: Any) -> Map:
    out = Map()
    for x in items(coll):
        dict.__setitem__(out, x, dict.get(out, x, 0) + 1)
    return out


@builtin("sorted-map", doc="A map with keys in sorted order")
def sorted_map(*kvs: Any) -> Map:
    m = hash_map(*kvs)
    out = Map()
    for k in sorted(m, key=cmp_to_key(compare)):
        dict.__setitem__(out, k, m[k])
    return out


@builtin("sorted-set", doc="A set with elements in sorted order")
def sorted_set(*xs: Any) -> Set:
    return Set(sorted(Set(xs), key=cmp_to_key(compare)))


def _cmp_with(f: Any, env: Any, ctx: Any) -> Any:
    def c(a: Any, b: Any) -> int:
        r = apply_fn(f, [a, b], env, ctx)
        if r is True:
            return -1
        if r is False or r is None:
            return 1 if apply_fn(f, [b, a], env, ctx) is True else 0
        return (r > 0) - (r < 0)
    return cmp_to_key(c)


@builtin("sorted-map-by", ctx=True, doc="(sorted-map-by comparator k v ...)")
def sorted_map_by(ctx: Any, env: Any, f: Any, *kvs: Any) -> Map:
    m = hash_map(*kvs)
    out = Map()
    for k in sorted(m, key=_cmp_with(f, env, ctx)):
        dict.__setitem__(out, k, m[k])
    return out


@builtin("sorted-set-by", ctx=True, doc="(sorted-set-by comparator x ...)")
def sorted_set_by(ctx: Any, env: Any, f: Any, *xs: Any) -> Set:
    return Set(sorted(Set(xs), key=_cmp_with(f, env, ctx)))


@builtin("distinct?", doc="Are all the args different?")
def distinct_q(*xs: Any) -> bool:
    seen: list = []
    from ..data import spell_equal
    for x in xs:
        if any(spell_equal(x, y) for y in seen):
            return False
        seen.append(x)
    return True
