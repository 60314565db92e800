"""Higher-order and sequence builtins (Spell-function aware; sequence results are vectors).

Spell functions are called through ``apply_fn`` with the env current when the builtin was
applied (dynamic scope, spell-language.md section 3.4). Each builtin charges the number of
elements it walks to the evaluation step budget, so builtin-only loops are bounded by the
same limits as Spell code.
"""

from __future__ import annotations

import time
from functools import cmp_to_key
from itertools import count as _count, cycle as _cycle, islice, repeat as _repeat
from typing import Any, Callable, Iterator

from . import builtin
from .core import (MAX_REALIZE, NUM, Infinite, Reduced, _int, _num, compare, items,
                   iterate_items, quote_form, show)
from ..data import Builtin, List, Map, Symbol, Vector, _Seq, spell_equal, truthy
from ..errors import TypedError
from ..limits import timeout_error
from ..evaluator import _call_spell, apply_fn
from ..data import SpellFn

S = Symbol


def charge(ctx: Any, n: int) -> None:
    """Count ``n`` evaluation steps (and check the deadline) for work done in Python."""
    sh = ctx.shared
    sh.steps += n
    if sh.steps > sh.max_steps:
        raise TypedError(f"Evaluation step limit exceeded ({sh.max_steps} steps)",
                         kind="eval-limit")
    if sh.deadline is not None and time.monotonic() > sh.deadline:
        raise timeout_error(sh)


def caller(f: Any, env: Any, ctx: Any) -> Callable[..., Any]:
    """A Python callable applying the Spell callable ``f`` (fast path for Spell functions)."""
    if type(f) is SpellFn:
        return lambda *a: _call_spell(f, list(a), env, ctx, False)
    return lambda *a: apply_fn(f, a, env, ctx)


def _fin(ctx: Any, coll: Any) -> Any:
    xs = items(coll)
    charge(ctx, len(xs))
    return xs


def _lazy(make: Callable[[], Iterator], form: Any) -> Infinite:
    return Infinite(make, form)


def _q(x: Any) -> Any:
    return quote_form(x)


# --------------------------------------------------------------------------------------------
# map / filter family

@builtin("map", "mapv", ctx=True, doc="(map f coll ...): vector of f applied to the elements "
                                      "(several colls: pairwise, up to the shortest)")
def map_(ctx: Any, env: Any, f: Any, *colls: Any) -> Any:
    if not colls:
        raise TypeError("map needs a collection (transducers are not supported)")
    call = caller(f, env, ctx)
    if len(colls) == 1:
        c = colls[0]
        if type(c) is Infinite:
            return _lazy(lambda: (call(x) for x in c.iterate()), List((S("map"), f, c.form)))
        return Vector([call(x) for x in _fin(ctx, c)])
    if all(type(c) is Infinite for c in colls):
        return _lazy(lambda: (call(*xs) for xs in zip(*[c.iterate() for c in colls])),
                     List((S("map"), f, *[c.form for c in colls])))
    its = [iterate_items(c) for c in colls]
    out = []
    for xs in zip(*its):
        out.append(call(*xs))
    charge(ctx, len(out))
    return Vector(out)


@builtin("map-indexed", ctx=True, doc="(map-indexed f coll): vector of (f index x)")
def map_indexed(ctx: Any, env: Any, f: Any, coll: Any) -> Any:
    call = caller(f, env, ctx)
    if type(coll) is Infinite:
        return _lazy(lambda: (call(i, x) for i, x in enumerate(coll.iterate())),
                     List((S("map-indexed"), f, coll.form)))
    return Vector([call(i, x) for i, x in enumerate(_fin(ctx, coll))])


@builtin("filter", "filterv", ctx=True, doc="(filter pred coll): vector of elements where pred "
                                            "is truthy")
def filter_(ctx: Any, env: Any, pred: Any, coll: Any) -> Any:
    call = caller(pred, env, ctx)
    if type(coll) is Infinite:
        return _lazy(lambda: (x for x in coll.iterate() if truthy(call(x))),
                     List((S("filter"), pred, coll.form)))
    return Vector([x for x in _fin(ctx, coll) if truthy(call(x))])


@builtin("remove", ctx=True, doc="(remove pred coll): vector of elements where pred is falsey")
def remove(ctx: Any, env: Any, pred: Any, coll: Any) -> Any:
    call = caller(pred, env, ctx)
    if type(coll) is Infinite:
        return _lazy(lambda: (x for x in coll.iterate() if not truthy(call(x))),
                     List((S("remove"), pred, coll.form)))
    return Vector([x for x in _fin(ctx, coll) if not truthy(call(x))])


@builtin("keep", ctx=True, doc="(keep f coll): vector of the non-nil results of f")
def keep(ctx: Any, env: Any, f: Any, coll: Any) -> Any:
    call = caller(f, env, ctx)
    if type(coll) is Infinite:
        return _lazy(lambda: (y for y in (call(x) for x in coll.iterate()) if y is not None),
                     List((S("keep"), f, coll.form)))
    out = []
    for x in _fin(ctx, coll):
        y = call(x)
        if y is not None:
            out.append(y)
    return Vector(out)


@builtin("keep-indexed", ctx=True, doc="(keep-indexed f coll): non-nil results of (f i x)")
def keep_indexed(ctx: Any, env: Any, f: Any, coll: Any) -> Vector:
    call = caller(f, env, ctx)
    out = []
    for i, x in enumerate(_fin(ctx, coll)):
        y = call(i, x)
        if y is not None:
            out.append(y)
    return Vector(out)


@builtin("mapcat", ctx=True, doc="(mapcat f coll ...): concatenation of the results of map")
def mapcat(ctx: Any, env: Any, f: Any, *colls: Any) -> Vector:
    out: list = []
    for r in map_(ctx, env, f, *colls):
        out.extend(items(r))
    return Vector(out)


@builtin("reduce", ctx=True, doc="(reduce f coll) or (reduce f init coll); (reduced x) stops")
def reduce_(ctx: Any, env: Any, f: Any, *args: Any) -> Any:
    call = caller(f, env, ctx)
    if len(args) == 1:
        coll = args[0]
        it = iterate_items(coll)
        try:
            acc = next(it)
        except StopIteration:
            return call()
    elif len(args) == 2:
        acc, coll = args
        it = iterate_items(coll)
    else:
        raise TypeError(f"reduce expects 2 or 3 arguments, got {len(args) + 1}")
    if type(acc) is Reduced:
        return acc.value
    n = 0
    for x in it:
        acc = call(acc, x)
        n += 1
        if type(acc) is Reduced:
            acc = acc.value
            break
    charge(ctx, n)
    return acc


@builtin("reduce-kv", ctx=True, doc="(reduce-kv f init m): f gets (acc key value)")
def reduce_kv(ctx: Any, env: Any, f: Any, init: Any, coll: Any) -> Any:
    call = caller(f, env, ctx)
    acc = init
    if coll is None:
        return acc
    pairs = coll.items() if isinstance(coll, Map) else enumerate(items(coll))
    for k, v in pairs:
        acc = call(acc, k, v)
        if type(acc) is Reduced:
            return acc.value
    return acc


@builtin("reductions", ctx=True, doc="Vector of the intermediate values of reduce")
def reductions(ctx: Any, env: Any, f: Any, *args: Any) -> Vector:
    call = caller(f, env, ctx)
    if len(args) == 1:
        xs = list(_fin(ctx, args[0]))
        if not xs:
            return Vector((call(),))
        acc, xs = xs[0], xs[1:]
    elif len(args) == 2:
        acc, xs = args[0], _fin(ctx, args[1])
    else:
        raise TypeError("reductions expects 2 or 3 arguments")
    out = [acc]
    for x in xs:
        acc = call(acc, x)
        if type(acc) is Reduced:
            out.append(acc.value)
            break
        out.append(acc)
    return Vector(out)


@builtin("some", ctx=True, doc="(some pred coll): first truthy (pred x), or nil")
def some(ctx: Any, env: Any, pred: Any, coll: Any) -> Any:
    call = caller(pred, env, ctx)
    n = 0
    for x in iterate_items(coll):
        n += 1
        if not n & 1023:
            charge(ctx, 1024)
        r = call(x)
        if r is not None and r is not False:
            return r
    return None


@builtin("find-first", ctx=True, doc="(find-first pred coll): first element where pred holds")
def find_first(ctx: Any, env: Any, pred: Any, coll: Any) -> Any:
    call = caller(pred, env, ctx)
    n = 0
    for x in iterate_items(coll):
        n += 1
        if not n & 1023:
            charge(ctx, 1024)
        if truthy(call(x)):
            return x
    return None


@builtin("every?", ctx=True, doc="Does pred hold for every element?")
def every(ctx: Any, env: Any, pred: Any, coll: Any) -> bool:
    call = caller(pred, env, ctx)
    return all(truthy(call(x)) for x in _fin(ctx, coll))


@builtin("not-every?", ctx=True, doc="Is pred false for some element?")
def not_every(ctx: Any, env: Any, pred: Any, coll: Any) -> bool:
    return not every(ctx, env, pred, coll)


@builtin("not-any?", ctx=True, doc="Is pred false for every element?")
def not_any(ctx: Any, env: Any, pred: Any, coll: Any) -> bool:
    return some(ctx, env, pred, coll) is None


# --------------------------------------------------------------------------------------------
# slicing

def _count_arg(n: Any, name: str) -> int:
    if type(n) is float:
        n = int(n) if n == n and abs(n) != float("inf") else (MAX_REALIZE if n > 0 else 0)
    return max(0, _int(n, name))


@builtin("take", doc="(take n coll): vector of the first n elements (works on infinite seqs)")
def take(n: Any, coll: Any) -> Vector:
    n = _count_arg(n, "take")
    if type(coll) is Infinite:
        if n > MAX_REALIZE:
            raise ValueError(f"take: {n} is more than {MAX_REALIZE} elements")
        return Vector(coll.spell_take(n))
    return Vector(items(coll)[:n])


@builtin("drop", doc="(drop n coll): vector without the first n elements")
def drop(n: Any, coll: Any) -> Any:
    n = _count_arg(n, "drop")
    if type(coll) is Infinite:
        return _lazy(lambda: islice(coll.make(), n, None), List((S("drop"), n, coll.form)))
    return Vector(items(coll)[n:])


@builtin("take-last", doc="(take-last n coll): the last n elements")
def take_last(n: Any, coll: Any) -> Any:
    n = _count_arg(n, "take-last")
    xs = items(coll)
    return Vector(xs[len(xs) - n:]) if n else Vector()  # a vector, even empty (reference)


@builtin("drop-last", doc="(drop-last [n] coll): all but the last n (default 1)")
def drop_last(*args: Any) -> Vector:
    if len(args) == 1:
        n, coll = 1, args[0]
    elif len(args) == 2:
        n, coll = _count_arg(args[0], "drop-last"), args[1]
    else:
        raise TypeError("drop-last expects 1 or 2 arguments")
    xs = items(coll)
    return Vector(xs[: max(0, len(xs) - n)])


@builtin("take-while", ctx=True, doc="Elements from the start while pred holds")
def take_while(ctx: Any, env: Any, pred: Any, coll: Any) -> Vector:
    call = caller(pred, env, ctx)
    out = []
    for x in iterate_items(coll):
        if not truthy(call(x)):
            break
        out.append(x)
    charge(ctx, len(out))
    return Vector(out)


@builtin("drop-while", ctx=True, doc="Elements after the first one where pred fails")
def drop_while(ctx: Any, env: Any, pred: Any, coll: Any) -> Vector:
    call = caller(pred, env, ctx)
    xs = _fin(ctx, coll)
    i = 0
    while i < len(xs) and truthy(call(xs[i])):
        i += 1
    return Vector(xs[i:])


@builtin("take-nth", doc="(take-nth n coll): every nth element")
def take_nth(n: Any, coll: Any) -> Any:
    n = _int(n, "take-nth")
    if n <= 0:
        raise ValueError("take-nth needs a positive step")
    if type(coll) is Infinite:
        return _lazy(lambda: islice(coll.make(), 0, None, n), List((S("take-nth"), n, coll.form)))
    return Vector(items(coll)[::n])


@builtin("split-at", doc="(split-at n coll): [(take n coll) (drop n coll)]")
def split_at(n: Any, coll: Any) -> Vector:
    n = _count_arg(n, "split-at")
    xs = items(coll)
    return Vector((Vector(xs[:n]), Vector(xs[n:])))


@builtin("split-with", ctx=True, doc="(split-with pred coll): [(take-while ..) (drop-while ..)]")
def split_with(ctx: Any, env: Any, pred: Any, coll: Any) -> Vector:
    call = caller(pred, env, ctx)
    xs = _fin(ctx, coll)
    i = 0
    while i < len(xs) and truthy(call(xs[i])):
        i += 1
    return Vector((Vector(xs[:i]), Vector(xs[i:])))


@builtin("partition", doc="(partition n [step [pad]] coll): vectors of n (incomplete tail dropped "
                          "unless pad is given)")
def partition(n: Any, *args: Any) -> Vector:
    n = _int(n, "partition")
    if len(args) == 1:
        step, pad, coll = n, None, args[0]
    elif len(args) == 2:
        step, pad, coll = _int(args[0], "partition"), None, args[1]
    elif len(args) == 3:
        step, pad, coll = _int(args[0], "partition"), args[1], args[2]
    else:
        raise TypeError("partition expects 2 to 4 arguments")
    if n <= 0 or step <= 0:
        raise ValueError("partition needs positive sizes")
    xs = items(coll)
    out = []
    for i in range(0, len(xs), step):
        chunk = xs[i:i + n]
        if len(chunk) == n:
            out.append(Vector(chunk))
        else:
            if pad is not None:
                out.append(Vector((*chunk, *items(pad)[: n - len(chunk)])))
            break
    return Vector(out)


@builtin("partition-all", doc="(partition-all n [step] coll): vectors of up to n elements")
def partition_all(n: Any, *args: Any) -> Vector:
    n = _int(n, "partition-all")
    if len(args) == 1:
        step, coll = n, args[0]
    elif len(args) == 2:
        step, coll = _int(args[0], "partition-all"), args[1]
    else:
        raise TypeError("partition-all expects 2 or 3 arguments")
    if n <= 0 or step <= 0:
        raise ValueError("partition-all needs positive sizes")
    xs = items(coll)
    return Vector([Vector(xs[i:i + n]) for i in range(0, len(xs), step)])


@builtin("partition-by", ctx=True, doc="Split into runs where (f x) stays the same")
def partition_by(ctx: Any, env: Any, f: Any, coll: Any) -> Vector:
    call = caller(f, env, ctx)
    out: list = []
    cur: list = []
    last_key: Any = object()
    for x in _fin(ctx, coll):
        k = call(x)
        if cur and not spell_equal(k, last_key):
            out.append(Vector(cur))
            cur = []
        cur.append(x)
        last_key = k
    if cur:
        out.append(Vector(cur))
    return Vector(out)


@builtin("group-by", ctx=True, doc="Map from (f x) to the vector of elements with that key")
def group_by(ctx: Any, env: Any, f: Any, coll: Any) -> Map:
    call = caller(f, env, ctx)
    groups: dict = {}
    for x in _fin(ctx, coll):
        groups.setdefault(call(x), []).append(x)
    out = Map()
    for k, v in groups.items():
        dict.__setitem__(out, k, Vector(v))
    return out


# --------------------------------------------------------------------------------------------
# sorting

def _sorted_default(xs: Any) -> list:
    types = {type(x) for x in xs}
    if types and (types <= {int, float} or types == {str}):
        return sorted(xs)
    return sorted(xs, key=cmp_to_key(compare))


def _comparator(f: Any, env: Any, ctx: Any) -> Callable[[Any, Any], int]:
    call = caller(f, env, ctx)

    def c(a: Any, b: Any) -> int:
        r = call(a, b)
        if r is True:
            return -1
        if r is False or r is None:
            return 1 if call(b, a) is True else 0
        if type(r) not in NUM:
            raise TypeError(f"comparator returned {show(r)}, expected a number or boolean")
        return (r > 0) - (r < 0)
    return c


@builtin("sort", ctx=True, doc="(sort [comparator] coll): sorted vector (stable)")
def sort(ctx: Any, env: Any, *args: Any) -> Vector:
    if len(args) == 1:
        return Vector(_sorted_default(_fin(ctx, args[0])))
    if len(args) == 2:
        return Vector(sorted(_fin(ctx, args[1]), key=cmp_to_key(_comparator(args[0], env, ctx))))
    raise TypeError("sort expects 1 or 2 arguments")


@builtin("sort-by", ctx=True, doc="(sort-by keyfn [comparator] coll): sorted by (keyfn x)")
def sort_by(ctx: Any, env: Any, keyfn: Any, *args: Any) -> Vector:
    call = caller(keyfn, env, ctx)
    if len(args) == 1:
        xs = _fin(ctx, args[0])
        keyed = [(call(x), x) for x in xs]
        kinds = {type(k) for k, _ in keyed}
        if kinds and (kinds <= {int, float} or kinds == {str}):
            keyed.sort(key=lambda kx: kx[0])
        else:
            cmpk = cmp_to_key(compare)
            keyed.sort(key=lambda kx: cmpk(kx[0]))
        return Vector([x for _, x in keyed])
    if len(args) == 2:
        c = _comparator(args[0], env, ctx)
        xs = _fin(ctx, args[1])
        keyed = [(call(x), x) for x in xs]
        keyed.sort(key=cmp_to_key(lambda a, b: c(a[0], b[0])))
        return Vector([x for _, x in keyed])
    raise TypeError("sort-by expects 2 or 3 arguments")


@builtin("max-key", ctx=True, doc="(max-key f x ...): the x with the greatest (f x)")
def max_key(ctx: Any, env: Any, f: Any, x: Any, *xs: Any) -> Any:
    call = caller(f, env, ctx)
    best, bk = x, _num(call(x), "max-key")
    for y in xs:
        k = _num(call(y), "max-key")
        if k >= bk:
            best, bk = y, k
    return best


@builtin("min-key", ctx=True, doc="(min-key f x ...): the x with the least (f x)")
def min_key(ctx: Any, env: Any, f: Any, x: Any, *xs: Any) -> Any:
    call = caller(f, env, ctx)
    best, bk = x, _num(call(x), "min-key")
    for y in xs:
        k = _num(call(y), "min-key")
        if k <= bk:
            best, bk = y, k
    return best


# --------------------------------------------------------------------------------------------
# generation

def _check_size(n: int, name: str) -> None:
    if n > MAX_REALIZE:
        raise ValueError(f"{name}: {n} elements is more than the limit of {MAX_REALIZE}")


@builtin("range", ctx=True, doc="(range end), (range start end [step]); (range) is infinite "
                                "(use it with take)")
def range_(ctx: Any, env: Any, *args: Any) -> Any:
    if not args:
        return _lazy(lambda: _count(0), List((S("range"),)))
    for a in args:
        _num(a, "range")
    if len(args) == 1:
        start, end, step = 0, args[0], 1
    elif len(args) == 2:
        start, end, step = args[0], args[1], 1
    elif len(args) == 3:
        start, end, step = args
    else:
        raise TypeError("range expects 0 to 3 arguments")
    if all(type(a) is int for a in (start, end, step)):
        if step == 0:
            if start == end:
                return Vector()
            raise ValueError("range with step 0 would be infinite")
        r = range(start, end, step)
        _check_size(len(r), "range")
        charge(ctx, len(r))
        return Vector(r)
    if step == 0:
        raise ValueError("range with step 0 would be infinite")
    n = max(0, int(-(-(end - start) // step)))
    _check_size(n, "range")
    charge(ctx, n)
    from .core import add2, mul2
    return Vector([add2(start, mul2(i, step)) for i in range(n)])


@builtin("repeat", doc="(repeat n x): vector of n copies; (repeat x) is infinite (use take)")
def repeat(*args: Any) -> Any:
    if len(args) == 1:
        x = args[0]
        return _lazy(lambda: _repeat(x), List((S("repeat"), _q(x))))
    if len(args) != 2:
        raise TypeError("repeat expects 1 or 2 arguments")
    n = _count_arg(args[0], "repeat")
    _check_size(n, "repeat")
    return Vector([args[1]] * n)


@builtin("repeatedly", ctx=True, doc="(repeatedly n f): vector of n calls of f; (repeatedly f) "
                                     "is infinite")
def repeatedly(ctx: Any, env: Any, *args: Any) -> Any:
    if len(args) == 1:
        f = args[0]
        call = caller(f, env, ctx)
        return _lazy(lambda: (call() for _ in _count()), List((S("repeatedly"), f)))
    if len(args) != 2:
        raise TypeError("repeatedly expects 1 or 2 arguments")
    n = _count_arg(args[0], "repeatedly")
    _check_size(n, "repeatedly")
    call = caller(args[1], env, ctx)
    return Vector([call() for _ in range(n)])


@builtin("iterate", ctx=True, doc="(iterate f x): infinite x, (f x), (f (f x)) ... (use take)")
def iterate(ctx: Any, env: Any, f: Any, x: Any) -> Infinite:
    call = caller(f, env, ctx)

    def gen() -> Iterator:
        cur = x
        while True:
            yield cur
            cur = call(cur)
    return _lazy(gen, List((S("iterate"), f, _q(x))))


@builtin("cycle", doc="(cycle coll): infinite repetition of coll (use take)")
def cycle(coll: Any) -> Any:
    xs = tuple(items(coll))
    if not xs:
        return List()
    return _lazy(lambda: _cycle(xs), List((S("cycle"), _q(Vector(xs)))))


# --------------------------------------------------------------------------------------------
# reshaping

@builtin("distinct", doc="Vector of the elements without duplicates (first occurrence kept)")
def distinct(coll: Any) -> Vector:
    seen: set = set()
    out = []
    for x in items(coll):
        k = (type(x) is bool, type(x) is float, x)
        if k not in seen:
            seen.add(k)
            out.append(x)
    return Vector(out)


@builtin("dedupe", doc="Vector without consecutive duplicates")
def dedupe(coll: Any) -> Vector:
    out: list = []
    for x in items(coll):
        if not out or not spell_equal(out[-1], x):
            out.append(x)
    return Vector(out)


@builtin("flatten", doc="Vector of the leaves of nested lists/vectors")
def flatten(coll: Any) -> Vector:
    out: list = []
    if not isinstance(coll, _Seq):
        return Vector()
    stack = [iter(coll)]
    while stack:
        for x in stack[-1]:
            if isinstance(x, _Seq):
                stack.append(iter(x))
                break
            out.append(x)
        else:
            stack.pop()
    return Vector(out)


@builtin("interleave", doc="Vector of the first elements of each coll, then the seconds, ...")
def interleave(*colls: Any) -> Any:
    if not colls:
        return Vector()
    if all(type(c) is Infinite for c in colls):
        return _lazy(lambda: (x for xs in zip(*[c.iterate() for c in colls]) for x in xs),
                     List((S("interleave"), *[c.form for c in colls])))
    out: list = []
    for xs in zip(*[iterate_items(c) for c in colls]):
        out.extend(xs)
    return Vector(out)


@builtin("interpose", doc="Vector of the elements with sep between them")
def interpose(sep: Any, coll: Any) -> Vector:
    out: list = []
    for i, x in enumerate(items(coll)):
        if i:
            out.append(sep)
        out.append(x)
    return Vector(out)


@builtin("shuffle", ctx=True, doc="Vector of the elements in random order (run's seeded RNG)")
def shuffle(ctx: Any, env: Any, coll: Any) -> Vector:
    xs = list(items(coll))
    ctx.rng.shuffle(xs)
    return Vector(xs)


@builtin("rand-nth", ctx=True, doc="A random element")
def rand_nth(ctx: Any, env: Any, coll: Any) -> Any:
    xs = items(coll)
    if not xs:
        raise IndexError("rand-nth of an empty collection")
    return xs[int(ctx.rng.random() * len(xs))]


@builtin("random-sample", ctx=True, doc="(random-sample prob coll): each element kept with "
                                        "probability prob")
def random_sample(ctx: Any, env: Any, prob: Any, coll: Any) -> Vector:
    p = float(_num(prob, "random-sample"))
    return Vector([x for x in items(coll) if ctx.rng.random() < p])


@builtin("tree-seq", ctx=True, doc="(tree-seq branch? children root): depth-first vector of nodes")
def tree_seq(ctx: Any, env: Any, branch: Any, children: Any, root: Any) -> Vector:
    is_branch = caller(branch, env, ctx)
    kids = caller(children, env, ctx)
    out: list = []
    stack = [root]
    while stack:
        node = stack.pop()
        out.append(node)
        if len(out) > MAX_REALIZE:
            raise ValueError("tree-seq: too many nodes")
        if truthy(is_branch(node)):
            stack.extend(reversed(list(items(kids(node)))))
    charge(ctx, len(out))
    return Vector(out)


@builtin("update-keys", ctx=True, doc="(update-keys m f): m with f applied to every key")
def update_keys(ctx: Any, env: Any, m: Any, f: Any) -> Map:
    call = caller(f, env, ctx)
    out = Map()
    for k, v in (m or Map()).items():
        dict.__setitem__(out, call(k), v)
    return out


@builtin("update-vals", ctx=True, doc="(update-vals m f): m with f applied to every value")
def update_vals(ctx: Any, env: Any, m: Any, f: Any) -> Map:
    call = caller(f, env, ctx)
    out = Map()
    for k, v in (m or Map()).items():
        dict.__setitem__(out, k, call(v))
    return out


# --------------------------------------------------------------------------------------------
# functions on functions

@builtin("apply", ctx=True, doc="(apply f a b [c d]): call f with a, b, c, d")
def apply_(ctx: Any, env: Any, f: Any, *args: Any) -> Any:
    if not args:
        return apply_fn(f, [], env, ctx)
    spread = list(args[:-1]) + list(items(args[-1]))
    return apply_fn(f, spread, env, ctx)


def _fnval(name: str, fn: Callable) -> Builtin:
    return Builtin(name, fn, needs_ctx=True)


@builtin("comp", doc="(comp f g h): a function computing (f (g (h args...)))")
def comp(*fs: Any) -> Any:
    if not fs:
        return _fnval("identity", lambda ctx, env, x: x)

    def composed(ctx: Any, env: Any, *args: Any) -> Any:
        v = apply_fn(fs[-1], args, env, ctx)
        for f in reversed(fs[:-1]):
            v = apply_fn(f, [v], env, ctx)
        return v
    return _fnval("comp", composed)


@builtin("partial", doc="(partial f a b): a function calling f with a, b and then its args")
def partial(f: Any, *bound: Any) -> Any:
    return _fnval("partial", lambda ctx, env, *args: apply_fn(f, [*bound, *args], env, ctx))


@builtin("juxt", doc="(juxt f g): a function returning [(f args...) (g args...)]")
def juxt(*fs: Any) -> Any:
    return _fnval("juxt", lambda ctx, env, *args: Vector([apply_fn(f, args, env, ctx)
                                                          for f in fs]))


@builtin("complement", doc="(complement f): a function returning (not (f args...))")
def complement(f: Any) -> Any:
    return _fnval("complement", lambda ctx, env, *args: not truthy(apply_fn(f, args, env, ctx)))


@builtin("constantly", doc="(constantly x): a function that always returns x")
def constantly(x: Any) -> Any:
    return _fnval("constantly", lambda ctx, env, *args: x)


@builtin("every-pred", doc="(every-pred p q): a function true when every predicate holds "
                           "for every argument")
def every_pred(*ps: Any) -> Any:
    def f(ctx: Any, env: Any, *args: Any) -> bool:
        return all(truthy(apply_fn(p, [a], env, ctx)) for p in ps for a in args)
    return _fnval("every-pred", f)


@builtin("some-fn", doc="(some-fn p q): a function returning the first truthy (p arg)")
def some_fn(*ps: Any) -> Any:
    def f(ctx: Any, env: Any, *args: Any) -> Any:
        for p in ps:
            for a in args:
                r = apply_fn(p, [a], env, ctx)
                if truthy(r):
                    return r
        return None
    return _fnval("some-fn", f)


@builtin("fnil", doc="(fnil f default ...): f with nil arguments replaced by defaults")
def fnil(f: Any, *defaults: Any) -> Any:
    def g(ctx: Any, env: Any, *args: Any) -> Any:
        args2 = [defaults[i] if i < len(defaults) and a is None else a
                 for i, a in enumerate(args)]
        return apply_fn(f, args2, env, ctx)
    return _fnval("fnil", g)


@builtin("memoize", doc="(memoize f): f with results cached by arguments (for this evaluation)")
def memoize(f: Any) -> Any:
    cache: dict = {}

    def g(ctx: Any, env: Any, *args: Any) -> Any:
        try:
            k = tuple((type(a), a) for a in args)
            hash(k)
        except TypeError:
            return apply_fn(f, args, env, ctx)
        if k not in cache:
            cache[k] = apply_fn(f, args, env, ctx)
        return cache[k]
    return _fnval("memoize", g)

