"""The reference implementation's own test suite, run against spellide's runtime.

``reference/*.spl`` hold the pure-language assertions of ``lukejoconnor/spell``'s
``test/spell/*_test.clj`` (eval, stdlib, callable_arity, parse, core, context, globals),
translated into Spell data, one file per reference file (format: ``reference/README.md``).
Each assertion is its own test case, id ``FILE::DEFTEST::N``: the reference file, the
``deftest`` it comes from and its position there. Assertions that need several agents, real
I/O or JVM internals are listed as ``(skip ...)`` with the reason and counted, not run.

Deliberate differences (behaviour spellide chooses not to follow) are in ``DIFFERENCES``
below, each with its reason; the README's "Language choices" section lists the same ones.
They run as strict xfails, so a difference that stops being one fails the suite.

    .venv/bin/python -m pytest tests/conformance -q -rxs
"""

from __future__ import annotations

import math
import re
import time
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import pytest

from spellide.spell import assembly, reader
from spellide.spell.api import RunConfig
from spellide.spell.data import (Builtin, Keyword, List, Map, Regex, Set, SpellFn,
                                 SpellMacro, Symbol, Vector, _Seq)
from spellide.spell.edits import ValueStore
from spellide.spell.effects.globals import GlobalsStore, make_globals_namespace
from spellide.spell.errors import SpellError
from spellide.spell.evaluator import apply_fn, make_context, make_eval, run
from spellide.spell.futures import HostFuture
from spellide.spell.turns import turn_builtins

HERE = Path(__file__).parent / "reference"

# Deliberate differences: case id -> why spellide does not follow the reference there.
_MAIN_ROLE = ("spellide's run registers its root agent as :main in :roles at start (as the "
              "reference's agent API does for a run); the reference's unit test inspects the "
              "bare store, {:roles {}}")
_SORTED = ("sorted-map/sorted-set build ordinary insertion-ordered collections in sorted order; "
           "spellide has no sorted collection type (assoc would not keep the order), so no "
           "sorted? that could honestly say true")
_AWAIT = ("spellide follows the reference's newer futures design (spell-agents.md section 5, "
          "runtime.clj@b0049c6): a future is joined with blocking/await, blocking/await-all, "
          "blocking/pmap or blocking/plet, which exist only inside (future ...) bodies, or with "
          "!ask-await in an agent turn; the top-level await, futures/ namespace and plet of this "
          "older test file are unbound")
_FUTURE_CASES = ["future-await-basic::1", "future-await-basic::5", "future-await-basic::6",
                 "future-env-capture::1", "future-env-capture::2", "future-isolation::1",
                 "future-isolation::2", "future-concurrency::1", "future-concurrency::2",
                 "future-nested::1", "future-nested::2", "future-dynamic-bindings::1",
                 "await-all-basic::1", "await-all-basic::2", "await-all-basic::3",
                 "await-all-basic::4", "pmap-basic::1", "pmap-basic::2", "pmap-basic::3",
                 "pmap-concurrency::1", "pmap-concurrency::2", "plet-basic::1", "plet-basic::2",
                 "plet-basic::3", "plet-basic::4", "plet-concurrency::1", "plet-concurrency::2"]
DIFFERENCES: dict[str, str] = {
    **{f"eval_test::{c}": _AWAIT for c in _FUTURE_CASES},
    "eval_test::plet-expand::2": (
        "plet is blocking/plet in spellide (spell-agents.md section 5), a macro only inside "
        "future bodies; a bare (plet ...) is a call of an unbound name, which expand leaves a "
        "plet form rather than the reference's let of future* and await"),
    "context_test::lossless-values::12": (
        "a 60,000-character string: spellide follows the v0.1.0 rendering rules (case 55 of "
        "spell-language.md), a long string is inlined truncated, as eval_test's "
        "serialize-for-continuation cases pin; the newer context store keeps it whole. The two "
        "reference designs conflict; spellide keeps the documented one"),
    "globals_test::initial-state-test::1": _MAIN_ROLE,
    "globals_test::update-test::3": _MAIN_ROLE,
    "globals_test::update-test::4": _MAIN_ROLE,
    "globals_test::get-all-test::2": _MAIN_ROLE,
    "globals_test::globals-update-from-spell-test::1": _MAIN_ROLE,
    "stdlib_test::core-sorted-map-test::1": _SORTED,
    "stdlib_test::core-sorted-set-test::1": _SORTED,
}


# --------------------------------------------------------------------------------------------
# equality as the reference's clojure.test `=` sees it (independent of the runtime's own `=`)

def same(a: Any, b: Any) -> bool:
    if a is b and not isinstance(a, float):  # identical is equal (NaN aside), as in Clojure
        return True
    if a is None or b is None or isinstance(a, bool) or isinstance(b, bool):
        return a is b
    num = (int, float, Fraction, Decimal)
    if isinstance(a, num) and isinstance(b, num):
        if isinstance(a, float) != isinstance(b, float):
            return False
        if isinstance(a, Decimal) != isinstance(b, Decimal):
            return False
        return a == b
    if isinstance(a, _Seq) and isinstance(b, _Seq):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, Map) and isinstance(b, Map):
        return len(a) == len(b) and all(
            any(same(k, k2) and same(v, v2) for k2, v2 in b.items()) for k, v in a.items())
    if isinstance(a, Set) and isinstance(b, Set):
        return len(a) == len(b) and all(any(same(x, y) for y in b) for x in a)
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    if type(a) is not type(b):
        return False
    return bool(a == b)


# --------------------------------------------------------------------------------------------
# loading the translated assertions

class Case:
    def __init__(self, cid: str, kind: str, args: tuple, full: bool):
        self.id, self.kind, self.args, self.full = cid, kind, args, full


def _load() -> tuple[list[Case], list[tuple[str, str]]]:
    cases: list[Case] = []
    skipped: list[tuple[str, str]] = []
    for path in sorted(HERE.glob("*.spl")):
        stem = path.stem
        for group in reader.read_all(path.read_text(encoding="utf-8")):
            assert isinstance(group, List) and group[0] == Symbol("deftest"), group
            name = group[1].name
            body = list(group[2:])
            full = False
            if body and body[0] == Keyword.of("full"):
                full, body = True, body[1:]
            for i, item in enumerate(body, 1):
                kind = "true" if item[0] is True else item[0].name
                cid = f"{stem}::{name}::{i}"
                if kind == "skip":
                    skipped.append((cid, f"{cid} ({item[1]}): not translated, {item[2]}"))
                    continue
                cases.append(Case(cid, kind, tuple(item[1:]), full))
    return cases, skipped


CASES, SKIPPED = _load()


# --------------------------------------------------------------------------------------------
# running one assertion through the real runtime

def _strings_unqualified() -> dict:
    """The reference's ``run-spell-full``: strings/ functions also unqualified."""
    from spellide.spell.evaluator import core_builtins
    core = core_builtins()
    ns = core[Symbol("strings")]
    # a name core already has keeps its core meaning (the reference's strings/ has no
    # reverse, so `(reverse [1 2 3])` there is still core reverse)
    return {Symbol(k.name): v for k, v in ns.items()
            if k.name != "docs" and Symbol(k.name) not in core}


class _Frame:
    """What the turn vocabulary reads from the machine: the run's settings and value store."""

    def __init__(self) -> None:
        self.run = SimpleNamespace(config=RunConfig(), store=ValueStore())


def _context(case: Case, extra: dict | None = None):
    """The reference's ``run-spell``: core builtins, the turn vocabulary (``serialize``,
    ``reopen``, ...) and ``eval`` without effects; ``run-spell-full`` adds strings/ unqualified."""
    table = {**turn_builtins(), Symbol("eval"): make_eval({})}
    if case.full:
        table.update(_strings_unqualified())
    table.update(extra or {})
    ctx = make_context(table, timeout=20)
    ctx.machine = _Frame()
    return ctx


def _eval(case: Case, form: Any, extra: dict | None = None):
    return run(form, ctx=_context(case, extra))


def _value(case: Case, form: Any, extra: dict | None = None) -> Any:
    r = _eval(case, form, extra)
    if r.error is not None:
        raise AssertionError(f"error: {r.error.message}")
    return r.value


def _show(x: Any) -> str:
    from spellide.spell.printer import pr_str
    try:
        return pr_str(x)
    except Exception:  # noqa: BLE001
        return repr(x)


def _globals_extra(store: GlobalsStore, ctx_box: list) -> dict:
    """``eval`` with the ``globals/`` effect namespace, as the reference's second pass."""
    def call(f: Any, args: list) -> Any:
        from spellide.spell.evaluator import EMPTY_ENV
        return apply_fn(f, args, EMPTY_ENV, ctx_box[0])
    ns = Map()
    for name, fn in make_globals_namespace(store, call).items():
        dict.__setitem__(ns, Keyword.of(name), Builtin(f"globals/{name}", fn))
    return {Symbol("eval"): make_eval({Symbol("globals"): ns})}


def check(case: Case) -> None:
    k, a = case.kind, case.args
    if k == "=":
        got = _value(case, a[0])
        assert same(got, a[1]), f"expected {_show(a[1])}, got {_show(got)}"
    elif k == "true":
        got = _value(case, a[0])
        assert got is not None and got is not False, f"expected truthy, got {_show(got)}"
    elif k == "throws":
        r = _eval(case, a[0])
        assert r.error is not None, f"expected an error, got {_show(r.value)}"
        if len(a) > 1:
            assert re.search(a[1], r.error.message), f"message {r.error.message!r} !~ {a[1]!r}"
    elif k == "env":  # (env EXPR VALUE {sym value ...}): value and the whole resulting env
        r = _eval(case, a[0])
        assert r.error is None, r.error.message
        assert same(r.value, a[1]), f"expected {_show(a[1])}, got {_show(r.value)}"
        env = Map()
        for sym_, v in r.env.items():
            dict.__setitem__(env, sym_, v)
        want = Map({Symbol(s.name) if isinstance(s, Symbol) else s: v for s, v in a[2].items()})
        assert same(env, want), f"env {_show(env)} != {_show(want)}"
    elif k == "is-a":  # (is-a EXPR type): the value's host type, as instance? checks it
        got = _value(case, a[0])
        want = a[1].name
        assert KINDS[want](got), f"expected a {want}, got {_show(got)}"
    elif k == "fn-params":  # (fn-params EXPR [params]): a Spell function's parameter vector
        got = _value(case, a[0])
        assert isinstance(got, SpellFn) and same(got.params, a[1]), f"params of {_show(got)}"
    elif k == "error-env":  # (error-env EXPR {sym value ...}): the env an error carries
        r = _eval(case, a[0])
        assert r.error is not None, f"expected an error, got {_show(r.value)}"
        for s_, v in a[1].items():
            assert same(r.env.get(Symbol(s_.name)), v), f"{s_.name} = {_show(r.env.get(s_))}"
    elif k == "error-at":  # (error-at EXPR containing-form FORM) / (error-at EXPR expr FORM)
        r = _eval(case, a[0])
        assert r.error is not None
        field = a[1].name
        got = r.error.containing_form if field == "containing-form" else r.error.form
        assert same(got, a[2]), f"{field} {_show(got)} != {_show(a[2])}"
    elif k == "probe":  # (probe EXPR VALUE [recorded...]) with a `record` host function
        seen: list = []
        rec = Builtin("record", lambda x: (seen.append(x), x)[1])
        got = _value(case, a[0], {Symbol("record"): rec})
        assert same(got, a[1]), f"expected {_show(a[1])}, got {_show(got)}"
        assert same(Vector(seen), a[2]), f"recorded {_show(Vector(seen))} != {_show(a[2])}"
    elif k == "globals":  # (globals EXPR VALUE): EXPR evaluated with globals/ via eval
        store = GlobalsStore()
        box: list = [None]
        ctx = _context(case, _globals_extra(store, box))
        box[0] = ctx
        r = run(a[0], ctx=ctx)
        assert r.error is None, r.error.message
        assert same(r.value, a[1]), f"expected {_show(a[1])}, got {_show(r.value)}"
    elif k == "roundtrip":  # (roundtrip EXPR): serialize within the limit, read back the same
        ctx = _context(case)
        r = run(a[0], ctx=ctx)
        assert r.error is None, r.error.message
        text = run(List((Symbol("serialize"), List((Symbol("quote"), r.value)))), ctx=ctx)
        assert text.error is None, text.error.message
        assert len(text.value) <= 10000, f"{len(text.value)} characters"
        back = run(reader.read_one(text.value), ctx=ctx)
        assert back.error is None, f"{back.error.message} reading back {text.value[:200]}"
        assert same(back.value, r.value), f"read back {_show(back.value)[:200]}"
    elif k == "reads":  # (reads "text" [forms...])
        got = Vector(reader.read_all(a[0], tolerate_trailing_closer=True))
        assert same(got, a[1]), f"read {_show(got)} != {_show(a[1])}"
    elif k == "read-throws":
        with pytest.raises(SpellError) as ei:
            reader.read_all(assembly.sanitize_comment_markers(a[0]),
                            tolerate_trailing_closer=True)
        assert re.search(a[1], ei.value.message), ei.value.message
    elif k == "env-lacks":  # (env-lacks EXPR sym): EXPR succeeds and leaves no binding of sym
        r = _eval(case, a[0])
        assert r.error is None, r.error.message
        assert Symbol(a[1].name) not in r.env, f"{a[1].name} = {_show(r.env.get(Symbol(a[1].name)))}"
    elif k == "with-sleep":  # (with-sleep EXPR VALUE): EXPR with a host `sleep` (ms -> ms)
        got = _value(case, a[0], {Symbol("sleep"): SLEEP})
        assert same(got, a[1]), f"expected {_show(a[1])}, got {_show(got)}"
    elif k == "with-sleep-ms":  # (with-sleep-ms EXPR MS): ... and it takes less than MS ms
        t0 = time.monotonic()
        _value(case, a[0], {Symbol("sleep"): SLEEP})
        took = (time.monotonic() - t0) * 1000
        assert took < a[1], f"took {took:.0f} ms, not under {a[1]} ms (not concurrent)"
    elif k == "host":  # (host fn-name args... expected): a reader/assembly helper
        fn = HOST[a[0].name]
        got = fn(*a[1:-1])
        assert same(got, a[-1]), f"expected {_show(a[-1])}, got {_show(got)}"
    elif k == "host-throws":
        fn = HOST[a[0].name]
        with pytest.raises(Exception) as ei:
            fn(*a[1:-1])
        assert re.search(a[-1], str(ei.value)), str(ei.value)
    else:
        raise AssertionError(f"unknown assertion kind {k}")


# the reference's host sleep-fn of its concurrency tests: sleeps ms milliseconds, returns ms
SLEEP = Builtin("sleep", lambda ms: (time.sleep(ms / 1000), ms)[1])

KINDS: dict[str, Callable[[Any], bool]] = {
    "regex": lambda v: isinstance(v, Regex),
    "fn": lambda v: isinstance(v, (SpellFn, Builtin)),
    "spell-fn": lambda v: isinstance(v, SpellFn),
    "macro": lambda v: isinstance(v, SpellMacro),
    "vector": lambda v: type(v) is Vector,
    "list": lambda v: type(v) is List,
    "map": lambda v: isinstance(v, Map),
    "string": lambda v: isinstance(v, str),
    "symbol": lambda v: isinstance(v, Symbol),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, float),
    "ratio": lambda v: isinstance(v, Fraction),
    "decimal": lambda v: isinstance(v, Decimal),
    "inf": lambda v: isinstance(v, float) and math.isinf(v),
    "nan": lambda v: isinstance(v, float) and math.isnan(v),
    "host-future": lambda v: isinstance(v, HostFuture),   # the reference's (:ref future), an IDeref
}


def _read_all(text: str) -> Vector:
    return Vector(reader.read_all(assembly.sanitize_comment_markers(text),
                                  tolerate_trailing_closer=True))


HOST: dict[str, Callable[..., Any]] = {
    "paren-balance": assembly.paren_balance,
    "balance-parens": assembly.balance_parens,
    "strip-trailing-parens": assembly.strip_trailing_parens,
    "sanitize-nonspell-comment-markers": assembly.sanitize_comment_markers,
    "read-all": _read_all,
}


def _param(case: Case):
    reason = DIFFERENCES.get(case.id)
    marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
    return pytest.param(case, id=case.id, marks=marks)


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_reference_assertion(case: Case) -> None:
    check(case)


@pytest.mark.parametrize("cid,reason", SKIPPED, ids=[c for c, _ in SKIPPED])
def test_reference_assertion_not_translated(cid: str, reason: str) -> None:
    pytest.skip(reason)


def test_every_difference_names_a_case() -> None:
    ids = {c.id for c in CASES}
    assert not set(DIFFERENCES) - ids
