"""The Spell evaluator: forms in, ``(value, env)`` out.

Spell evaluation differs from a textbook Lisp in three ways that shape this module
(spell-language.md section 3):

* **Env threading.** Every compound form threads the environment left to right, so a ``def``
  anywhere (inside call arguments, vectors, maps, ``if`` branches, ``quine``, ``try`` and
  ``think`` bodies) is visible to later siblings. ``evaluate`` therefore returns the env along
  with the value. Only ``let``/``loop``/``for``/function bodies restore the env afterwards.
* **Dynamic scope.** A function value is source only (``SpellFn``: params + body, no
  captured env); calling it binds the params on top of the *caller's* env.
* **Effects only through ``eval``.** ``eval`` is an ordinary builtin (``make_eval``) that
  evaluates data with the effect table added to the builtins; nothing else can reach effects.

Programs are re-evaluated from scratch every turn, so this module is written for speed:
special forms dispatch through a dict keyed by name, the expansion of a (pure) macro is cached
on the form object, and the env is an ``immutables.Map`` (persistent, O(log n) updates, no
copying).

Tail calls: ``evaluate(..., tail=True)`` passes ``tail`` into tail positions only, and a
``tail_aware`` builtin called there receives ``tail=True``. The turn machine's ``!llm-self``
returns a ``TailCall`` marker instead of recursing, and every tail position passes it through
unchanged, so chains of thousands of turns use constant Python stack.

Choices where the reference was uncertain or host-specific (see also macros.py and
builtins/__init__.py): ``and``/``or`` are special forms that thread the env like ``if``; set
literals and map keys are evaluated (Clojure), not self-evaluating; ``& rest`` binds a list or
nil (Clojure); ``throw`` of a non-string has the printed value as its message; ``try`` also
accepts ``(catch Exception e ...)`` and ``(finally ...)``.

Errors are ``SpellError`` exceptions inside this module (``run`` turns them into values). Each
carries the failing ``form``, the ``span`` of the nearest form read from source, the
``containing_form`` (the failing top-level child of the outermost ``do``) and two dynamic
attributes: ``env``, the environment at the point of failure (``try`` handlers see defs made
before the error, as in the reference), and ``trace``, the heads of the Spell function calls
the error passed through, innermost first (the reference's ``:trace``).
"""

from __future__ import annotations

import random
import sys
import time
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any, Callable, Optional

import immutables

from . import destructure
from .data import (Builtin, Char, Keyword, List, Map, Regex, Set, SpellFn, SpellMacro, Symbol,
                   Vector, _Seq)
from .errors import ReadError, SpellError, TypedError
from .limits import memory_error, timeout_error

Env = immutables.Map
EMPTY_ENV: Env = immutables.Map()

DEFAULT_MAX_STEPS = 10_000_000
DEFAULT_MAX_DEPTH = 3_000
# Spell recursion is Python recursion (about 8 Python frames per Spell call). Python 3.12+
# keeps Python frames off the C stack, so a high limit is safe; the Spell-level depth limit
# (DEFAULT_MAX_DEPTH) trips long before it, with a clear message.
_PY_RECURSION = 120_000
if sys.getrecursionlimit() < _PY_RECURSION:
    sys.setrecursionlimit(_PY_RECURSION)

_MISSING = object()
# Errors a Spell ``try`` cannot catch: limits and policy (a program must not be able to
# swallow its own step limit or a user's stop). Rejected effects are catchable on purpose:
# the program may adapt to a person's "no".
_NOT_CATCHABLE = ("eval-limit", "timeout", "memory-limit", "stopped", "budget-exceeded",
                  "depth-exceeded", "internal")


class TailCall:
    """Returned (as a value) by a tail_aware builtin called in tail position, e.g. the turn
    machine's ``!llm-self``: every tail position passes it up unchanged to the machine, which
    then runs the next step in a loop instead of recursing."""

    __slots__ = ("prefix", "opts")

    def __init__(self, prefix: Any, opts: Any = None):
        self.prefix = prefix
        self.opts = opts

    def __repr__(self) -> str:
        return f"TailCall({self.prefix!r})"


class _Recur:
    """The value of ``(recur ...)``; ``loop`` and function application re-enter on it."""

    __slots__ = ("args",)

    def __init__(self, args: list):
        self.args = args


class _Shared:
    """Mutable state shared by a context and every context derived from it (``eval`` derives
    one), so step counts, depth and gensym numbering are per evaluation, not per ``eval``."""

    __slots__ = ("steps", "max_steps", "deadline", "timeout_message", "depth", "max_depth", "gensym")

    def __init__(self, max_steps: int, deadline: Optional[float], max_depth: int):
        self.steps = 0
        self.max_steps = max_steps
        self.deadline = deadline
        self.timeout_message: Optional[str] = None   # names the limit (limits.RunClock)
        self.depth = 0
        self.max_depth = max_depth
        self.gensym = 0


_LIMIT_NAMES = ("max_steps", "deadline", "max_depth", "timeout")


class Context:
    """Everything an evaluation needs besides the env: the active builtins (a dict keyed by
    Symbol), the RNG that all nondeterministic builtins draw from, the hints for gated
    namespaces, the limits, and an opaque slot for the turn machine."""

    __slots__ = ("builtins", "rng", "gated", "shared", "machine", "_eval_tables")

    def __init__(self, builtins: dict, rng: Optional[random.Random] = None,
                 gated: Optional[dict] = None, shared: Optional[_Shared] = None,
                 machine: Any = None):
        self.builtins = builtins
        self.rng = rng if rng is not None else random.Random(0)
        self.gated = gated if gated is not None else {}
        self.shared = shared if shared is not None else _Shared(DEFAULT_MAX_STEPS, None,
                                                                 DEFAULT_MAX_DEPTH)
        self.machine = machine
        self._eval_tables: dict = {}

    # limits live in the shared state so that derived contexts count together
    @property
    def max_steps(self) -> int:
        return self.shared.max_steps

    @max_steps.setter
    def max_steps(self, v: int) -> None:
        self.shared.max_steps = v

    @property
    def deadline(self) -> Optional[float]:
        return self.shared.deadline

    @deadline.setter
    def deadline(self, v: Optional[float]) -> None:
        self.shared.deadline = v

    @property
    def max_depth(self) -> int:
        return self.shared.max_depth

    @max_depth.setter
    def max_depth(self, v: int) -> None:
        self.shared.max_depth = v

    @property
    def steps(self) -> int:
        return self.shared.steps

    def fork(self, **changes: Any) -> "Context":
        """A context for an evaluation that runs beside this one, in another thread (a
        future's body): the same builtins and limits, but counters of its own (steps, call
        depth, gensyms) and no deadline yet, so the two never race on one counter. Other
        fields change as for ``derive``."""
        sh = self.shared
        return self.derive(shared=_Shared(sh.max_steps, None, sh.max_depth), **changes)

    def derive(self, **changes: Any) -> "Context":
        """A copy with some fields changed (``builtins=``, ``machine=``, ...). The copy shares
        the step/depth counters unless ``shared=`` is given."""
        c = Context.__new__(Context)
        c.builtins = changes.pop("builtins", self.builtins)
        c.rng = changes.pop("rng", self.rng)
        c.gated = changes.pop("gated", self.gated)
        c.shared = changes.pop("shared", self.shared)
        c.machine = changes.pop("machine", self.machine)
        c._eval_tables = self._eval_tables if c.builtins is self.builtins else {}
        if changes:
            raise TypeError(f"Context.derive: unknown fields {sorted(changes)}")
        return c


def _normalize_table(table: Optional[dict]) -> dict:
    if not table:
        return {}
    return {Symbol.parse(k) if isinstance(k, str) else k: v for k, v in table.items()}


_CORE: Optional[dict] = None

# Namespaces that exist only in some evaluations, with what a lookup elsewhere says: the
# futures' ``blocking/`` is bound only in the context of a future's body (``futures.py``).
ALWAYS_GATED = {"blocking": "blocking/ is only available inside (future ...) blocks"}


def core_builtins() -> dict:
    """The always-available table: core functions, core macros, the ``strings``, ``math`` and
    ``builtins`` (docs) namespaces. Returns a fresh dict (Symbol -> value) that callers may
    extend; the values are shared and immutable."""
    global _CORE
    if _CORE is None:
        from .builtins import core_table
        _CORE = core_table()
    return dict(_CORE)


def make_context(extra: Optional[dict] = None, *, rng: Optional[random.Random] = None,
                 gated: Optional[dict] = None, **limits: Any) -> Context:
    """A context with the core builtins plus ``extra`` (keys may be Symbols or strings).

    Limits: ``max_steps`` (evaluation steps, default 10 million), ``max_depth`` (nested Spell
    function calls, default 3000), ``deadline`` (a ``time.monotonic()`` value) or ``timeout``
    (seconds from now)."""
    bad = set(limits) - set(_LIMIT_NAMES)
    if bad:
        raise TypeError(f"make_context: unknown limits {sorted(bad)}")
    table = core_builtins()
    if extra:
        table.update(_normalize_table(extra))
    deadline = limits.get("deadline")
    if limits.get("timeout") is not None:
        deadline = time.monotonic() + float(limits["timeout"])
    shared = _Shared(int(limits.get("max_steps") or DEFAULT_MAX_STEPS), deadline,
                     int(limits.get("max_depth") or DEFAULT_MAX_DEPTH))
    return Context(table, rng=rng, gated={**ALWAYS_GATED, **(gated or {})}, shared=shared)


# --------------------------------------------------------------------------------------------
# errors

def _pr(x: Any) -> str:
    try:
        from .printer import pr_str
        return pr_str(x)
    except Exception:
        return repr(x)


def _step_limit(ctx: Context) -> SpellError:
    return TypedError(f"Evaluation step limit exceeded ({ctx.shared.max_steps} steps)",
                      kind="eval-limit")


def _tick(sh: _Shared) -> None:
    """One evaluation step outside ``_eval_list`` (loop/recur/for iterations). Every step
    number that is a multiple of 256 checks the deadline, whoever produced it."""
    steps = sh.steps + 1
    sh.steps = steps
    if steps > sh.max_steps:
        raise TypedError(f"Evaluation step limit exceeded ({sh.max_steps} steps)",
                         kind="eval-limit")
    if not steps & 255 and sh.deadline is not None and time.monotonic() > sh.deadline:
        raise timeout_error(sh)


def _stack_error() -> SpellError:
    return SpellError("Stack depth exceeded: too many nested calls (runaway recursion?)")


def _unbound(sym: Symbol, ctx: Context) -> SpellError:
    if sym.ns is not None:
        hint = ctx.gated.get(sym.ns)
        if hint:
            return SpellError(f"{sym.full}: {hint}", form=sym, span=sym.span)
    return SpellError(f"Unbound symbol: {sym.full}", form=sym, span=sym.span)


def host_message(e: BaseException) -> str:
    """A user-facing message for a Python exception raised inside a builtin."""
    msg = str(e)
    if isinstance(e, KeyError) and e.args:
        msg = f"key not found: {_pr(e.args[0])}"
    if isinstance(e, ZeroDivisionError):
        msg = "Divide by zero"
    return msg or type(e).__name__


def _wrap_host(name: str, e: BaseException, nargs: int) -> SpellError:
    if isinstance(e, RecursionError):
        return _stack_error()
    if isinstance(e, MemoryError):   # past the process's limit (limits.process_memory)
        return memory_error(detail=f"{name} ran out of memory")
    if (isinstance(e, TypeError) and e.__traceback__ is not None
            and e.__traceback__.tb_next is None and "argument" in str(e)):
        return SpellError(f"Function call failed: {name}: wrong number of args ({nargs})")
    if isinstance(e, SpellError):  # a ReadError from read-string
        return SpellError(f"Function call failed: {name}: {e.message}")
    return SpellError(f"Function call failed: {name}: {host_message(e)}")


def _annotate(e: SpellError, form: Any, env: Any) -> None:
    if e.form is None:
        e.form = form
    if e.span is None:
        e.span = getattr(form, "span", None)
    if getattr(e, "env", None) is None:
        e.env = env  # type: ignore[attr-defined]


def _catchable(e: SpellError) -> bool:
    return e.kind not in _NOT_CATCHABLE and not isinstance(e, TypedError)


# --------------------------------------------------------------------------------------------
# evaluation

_SELF = (int, str, float, Keyword, type(None), bool, Fraction, Decimal, Char, Regex)
_SELF_TYPES = frozenset(_SELF)


def evaluate(form: Any, env: Env, ctx: Context, tail: bool = False) -> tuple[Any, Env]:
    """Evaluate ``form`` in ``env``; return ``(value, env')`` where ``env'`` carries every
    ``def`` made along the way. Raises ``SpellError``."""
    t = type(form)
    if t is List:
        return _eval_list(form, env, ctx, tail)
    if t is Symbol:
        if form.ns is None:
            v = env.get(form, _MISSING)
            if v is _MISSING:
                v = ctx.builtins.get(form, _MISSING)
                if v is _MISSING:
                    raise _unbound(form, ctx)
            return v, env
        return _ns_lookup(form, env, ctx), env
    if t is Vector:
        return _eval_vector(form, env, ctx)
    if t is Map:
        return _eval_map(form, env, ctx)
    if t is Set:
        return _eval_set(form, env, ctx)
    return form, env


def _eval_vector(form: Vector, env: Env, ctx: Context) -> tuple[Any, Env]:
    """Elements evaluated left to right. A literal whose elements all evaluate to themselves
    is its own value (marked ``_const`` on the form), so constant data costs nothing."""
    if getattr(form, "_const", False):
        return form, env
    out = []
    same = True
    try:
        for x in form:
            if type(x) in _SELF_TYPES:
                out.append(x)
            else:
                v, env = evaluate(x, env, ctx)
                if v is not x or type(x) is Symbol or type(x) is List:
                    same = False
                out.append(v)
    except SpellError as e:
        _annotate(e, form, env)
        raise
    if same:
        _mark_const(form)
        return form, env
    result = Vector(out)
    first_line = getattr(form, "first_line", None)
    if first_line is not None:
        result.first_line = first_line  # type: ignore[attr-defined]
    return result, env


def _mark_const(form: Any) -> None:
    try:
        form._const = True
    except AttributeError:
        pass


def _eval_map(form: Map, env: Env, ctx: Context) -> tuple[Any, Env]:
    if getattr(form, "_const", False):
        return form, env
    m = Map()
    same = True
    try:
        for k, v in form.items():
            if type(k) not in _SELF_TYPES:
                k2, env = evaluate(k, env, ctx)
                if k2 is not k or type(k) is Symbol or type(k) is List:
                    same = False
                k = k2
            if type(v) not in _SELF_TYPES:
                v2, env = evaluate(v, env, ctx)
                if v2 is not v or type(v) is Symbol or type(v) is List:
                    same = False
                v = v2
            dict.__setitem__(m, k, v)
    except SpellError as e:
        _annotate(e, form, env)
        raise
    if same and len(m) == len(form):
        _mark_const(form)
        return form, env
    return m, env


def _eval_set(form: Set, env: Env, ctx: Context) -> tuple[Any, Env]:
    out = []
    try:
        for x in form:
            v, env = evaluate(x, env, ctx)
            out.append(v)
    except SpellError as e:
        _annotate(e, form, env)
        raise
    return Set(out), env


_NS_SYMS: dict[str, Symbol] = {}
_NS_PATHS: dict[str, tuple] = {}


def _ns_lookup(sym: Symbol, env: Env, ctx: Context) -> Any:
    """``ns/name``: evaluate ``ns`` (env, then builtins), then ``get`` each path segment."""
    nsym = _NS_SYMS.get(sym.ns)
    if nsym is None:
        nsym = _NS_SYMS[sym.ns] = Symbol(sym.ns)
    cur = env.get(nsym, _MISSING)
    if cur is _MISSING:
        cur = ctx.builtins.get(nsym, _MISSING)
        if cur is _MISSING:
            raise _unbound(sym, ctx)
    path = _NS_PATHS.get(sym.name)
    if path is None:
        path = _NS_PATHS[sym.name] = tuple(Keyword(p) for p in sym.name.split("/"))
    for k in path:
        if isinstance(cur, Map):
            nxt = dict.get(cur, k, _MISSING)
            if nxt is not _MISSING:
                cur = nxt
                continue
        raise SpellError(f"Namespace lookup failed: {sym.full}", form=sym, span=sym.span)
    return cur


def lookup(sym: Symbol, env: Env, ctx: Context) -> Any:
    """The value of a symbol (env first, then the active builtins); raises when unbound."""
    return evaluate(sym, env, ctx)[0]


def _eval_list(form: List, env: Env, ctx: Context, tail: bool) -> tuple[Any, Env]:
    n = len(form)
    if n == 0:
        return form, env
    sh = ctx.shared
    steps = sh.steps + 1
    sh.steps = steps
    if steps > sh.max_steps:
        raise _step_limit(ctx)
    if not steps & 255 and sh.deadline is not None and time.monotonic() > sh.deadline:
        raise timeout_error(sh)
    head = form[0]
    try:
        if type(head) is Symbol:
            if head.ns is None:
                sf = _SPECIAL.get(head.name)
                if sf is not None:
                    return sf(form, env, ctx, tail)
                f = env.get(head, _MISSING)
                if f is _MISSING:
                    f = ctx.builtins.get(head, _MISSING)
                    if f is _MISSING:
                        raise _unbound(head, ctx)
            else:
                f = _ns_lookup(head, env, ctx)
            if type(f) is SpellMacro:
                return evaluate(_expand(f, form, env, ctx), env, ctx, tail)
        else:
            f, env = evaluate(head, env, ctx)
        args = []
        builtins = ctx.builtins
        for i in range(1, n):
            a = form[i]
            ta = type(a)
            if ta is Symbol and a.ns is None:
                v = env.get(a, _MISSING)
                if v is _MISSING:
                    v = builtins.get(a, _MISSING)
                    if v is _MISSING:
                        raise _unbound(a, ctx)
                args.append(v)
            elif ta is List:
                v, env = _eval_list(a, env, ctx, False)
                args.append(v)
            elif ta in _SELF_TYPES:
                args.append(a)
            else:
                v, env = evaluate(a, env, ctx)
                args.append(v)
        tf = type(f)
        if tf is Builtin:
            try:
                if f.needs_ctx:
                    if f.tail_aware:
                        return f.fn(ctx, env, *args, tail=tail), env
                    return f.fn(ctx, env, *args), env
                return f.fn(*args), env
            except SpellError as e:
                e.env = env  # type: ignore[attr-defined]
                if isinstance(e, ReadError):
                    raise _wrap_host(f.name, e, len(args)) from None
                raise
            except Exception as e:  # noqa: BLE001 - every host failure becomes a Spell error
                raise _wrap_host(f.name, e, len(args)) from None
        if tf is SpellFn:
            return _call_spell(f, args, env, ctx, tail, head), env
        return _apply_other(f, args, env, ctx, head), env
    except SpellError as e:
        _annotate(e, form, env)
        raise
    except RecursionError:
        raise _stack_error() from None


def _eval_body(forms: Any, start: int, env: Env, ctx: Context, tail: bool) -> tuple[Any, Env]:
    """Evaluate ``forms[start:]`` in order, threading env; the last one in tail position."""
    n = len(forms)
    if start >= n:
        return None, env
    last = n - 1
    for i in range(start, last):
        x = forms[i]
        if type(x) is List:
            _, env = _eval_list(x, env, ctx, False)
        elif type(x) not in _SELF_TYPES:
            _, env = evaluate(x, env, ctx)
    return evaluate(forms[last], env, ctx, tail)


# --------------------------------------------------------------------------------------------
# application

def _arity_error(name: str, n: int) -> SpellError:
    return SpellError(f"Function call failed: {name}: wrong number of args ({n})")


def _fn_arity_error(f: SpellFn, n: int) -> SpellError:
    """A Spell function called with the wrong number of arguments, in the reference's words
    (``Wrong number of args: expected 2, got 1``): programs match on this message."""
    arities = [f.params] if type(f.params) is Vector else [p for p, _ in f.params]
    wants = []
    for p in arities:
        fixed, rest, _ = _param_plan(p)
        wants.append(f"at least {len(fixed)}" if rest is not None else str(len(fixed)))
    return SpellError(f"Wrong number of args: expected {' or '.join(wants)}, got {n}")


def _select_arity(f: SpellFn, nargs: int, head: Any) -> tuple[Any, tuple]:
    params = f.params
    if type(params) is Vector:
        return params, f.body
    variadic = None
    for p, body in params:
        plan = _param_plan(p)
        if plan[1] is None:
            if len(plan[0]) == nargs:
                return p, body
        elif nargs >= len(plan[0]):
            variadic = (p, body)
    if variadic is not None:
        return variadic
    raise _fn_arity_error(f, nargs)


def _param_plan(params: Vector) -> tuple:
    """(fixed patterns, rest pattern or None, all-simple-symbols?), cached on the vector."""
    plan = getattr(params, "_plan", None)
    if plan is None:
        fixed = []
        rest = None
        i = 0
        while i < len(params):
            p = params[i]
            if p == destructure.AMP:
                if i + 1 >= len(params):
                    raise SpellError("Parameter vector: & must be followed by a name")
                rest = params[i + 1]
                break
            fixed.append(p)
            i += 1
        simple = rest is None and all(type(p) is Symbol and p.ns is None for p in fixed)
        plan = (tuple(fixed), rest, simple)
        try:
            params._plan = plan  # type: ignore[attr-defined]
        except AttributeError:
            pass
    return plan


def _bind_params(f: SpellFn, params: Vector, args: list, env: Env, ctx: Context,
                 head: Any) -> Env:
    fixed, rest, simple = _param_plan(params)
    nargs = len(args)
    if simple:
        if nargs != len(fixed):
            raise _fn_arity_error(f, nargs)
        if nargs == 1:
            return env.set(fixed[0], args[0])
        if nargs:
            with env.mutate() as m:
                for p, a in zip(fixed, args):
                    m[p] = a
                return m.finish()
        return env
    if nargs < len(fixed) or (rest is None and nargs != len(fixed)):
        raise _fn_arity_error(f, nargs)
    ev = _default_evaluator(ctx)
    for p, a in zip(fixed, args):
        env = destructure.bind(p, a, env, ev)
    if rest is not None:
        extra = args[len(fixed):]
        if type(rest) is Map:
            rv: Any = destructure._pairs_to_map(extra)
        else:
            rv = List(extra) if extra else None
        env = destructure.bind(rest, rv, env, ev)
    return env


def _default_evaluator(ctx: Context) -> Callable[[Any, Env], Any]:
    return lambda form, env: evaluate(form, env, ctx)[0]


_ANON = Symbol("fn")


def _call_spell(f: SpellFn, args: list, env: Env, ctx: Context, tail: bool,
                head: Any = None) -> Any:
    sh = ctx.shared
    if sh.depth >= sh.max_depth:
        raise SpellError(f"Stack depth exceeded: more than {sh.max_depth} nested function calls "
                         "(runaway recursion?)")
    sh.depth += 1
    try:
        params, body = _select_arity(f, len(args), head)
        while True:
            fenv = _bind_params(f, params, args, env, ctx, head)
            if f.name is not None:
                fenv = fenv.set(f.name, f)
            v, _ = _eval_body(body, 0, fenv, ctx, tail)
            if type(v) is _Recur:
                args = v.args
                if type(f.params) is not Vector:
                    params, body = _select_arity(f, len(args), head)
                _tick(sh)
                continue
            return v
    except SpellError as e:
        e.env = env  # type: ignore[attr-defined]
        trace = getattr(e, "trace", None)
        if trace is None:
            trace = e.trace = []  # type: ignore[attr-defined]
        if len(trace) < 64:
            trace.append(head if head is not None else (f.name or _ANON))
        raise
    except RecursionError:
        raise _stack_error() from None
    finally:
        sh.depth -= 1


_CORE_MODULE: Any = None


def _core() -> Any:
    """builtins.core, imported on first use (it imports this module)."""
    global _CORE_MODULE
    if _CORE_MODULE is None:
        from .builtins import core
        _CORE_MODULE = core
    return _CORE_MODULE


def _apply_other(f: Any, args: list, env: Env, ctx: Context, head: Any = None) -> Any:
    """Keywords, maps, sets, vectors and symbols are callable like Clojure IFns."""
    n = len(args)
    tf = type(f)
    if tf is Keyword or tf is Symbol:
        if n not in (1, 2):
            raise _arity_error(_pr(f), n)
        coll = args[0]
        if type(coll) is Map:
            return dict.get(coll, f, args[1] if n == 2 else None)
        return _core().get(coll, f, args[1] if n == 2 else None)
    if tf is Map:
        if n not in (1, 2):
            raise _arity_error(_pr(f), n)
        try:
            return dict.get(f, args[0], args[1] if n == 2 else None)
        except TypeError:
            return args[1] if n == 2 else None
    if isinstance(f, Set):
        if n != 1:
            raise _arity_error(_pr(f), n)
        return args[0] if args[0] in f else None
    if isinstance(f, Vector):
        if n != 1:
            raise _arity_error(_pr(f), n)
        i = args[0]
        if not isinstance(i, int) or isinstance(i, bool):
            raise SpellError(f"Function call failed: {_pr(f)}: key must be an integer")
        if not 0 <= i < len(f):
            raise SpellError(f"Function call failed: {_pr(f)}: index {i} out of bounds")
        return f[i]
    if tf is SpellMacro:
        raise SpellError(f"Can't take the value of a macro: {f.name or _pr(head)}")
    name = head.full if isinstance(head, Symbol) else _pr(head) if head is not None else _pr(f)
    raise SpellError(f"Function call failed: {name}: {_pr(f)} is not a function")


def apply_fn(f: Any, args: list, env: Env, ctx: Context, tail: bool = False) -> Any:
    """Call any callable Spell value with already-evaluated ``args`` in ``env`` (the env
    current where the calling builtin was applied: dynamic scope). Used by higher-order
    builtins."""
    tf = type(f)
    if tf is SpellFn:
        return _call_spell(f, list(args), env, ctx, tail)
    if tf is Builtin:
        try:
            if f.needs_ctx:
                if f.tail_aware:
                    return f.fn(ctx, env, *args, tail=tail)
                return f.fn(ctx, env, *args)
            return f.fn(*args)
        except SpellError as e:
            if isinstance(e, ReadError):
                raise _wrap_host(f.name, e, len(args)) from None
            raise
        except Exception as e:  # noqa: BLE001
            raise _wrap_host(f.name, e, len(args)) from None
    return _apply_other(f, list(args), env, ctx)


def is_callable(f: Any) -> bool:
    return isinstance(f, (SpellFn, Builtin, Keyword, Map, Set, Vector, Symbol))


# --------------------------------------------------------------------------------------------
# macros

_PURE_EXPANDERS: set = set()


def mark_pure(expander: Callable) -> Callable:
    """Declare a Python expander pure (its output depends only on the form), so its expansion
    may be cached on the form object."""
    _PURE_EXPANDERS.add(expander)
    return expander


def _expand(m: SpellMacro, form: List, env: Env, ctx: Context) -> Any:
    exp = m.expander
    pure = exp in _PURE_EXPANDERS if not isinstance(exp, (SpellFn, Builtin)) else False
    if pure:
        cached = getattr(form, "_mx", None)
        if cached is not None and cached[0] is m:
            return cached[1]
    name = m.name or (form[0].full if isinstance(form[0], Symbol) else "macro")
    try:
        if isinstance(exp, (SpellFn, Builtin)):
            out = apply_fn(exp, list(form[1:]), env, ctx)
        else:
            out = exp(form, env, ctx)
    except SpellError as e:
        if not _catchable(e):
            raise
        msg = e.message
        if not msg.startswith("Macro expansion of"):
            msg = f"Macro expansion of {name} failed: {msg}"
        raise SpellError(msg, form=form, span=getattr(form, "span", None)) from None
    except RecursionError:
        raise _stack_error() from None
    except Exception as e:  # noqa: BLE001
        raise SpellError(f"Macro expansion of {name} failed: {host_message(e)}", form=form,
                         span=getattr(form, "span", None)) from None
    if pure:
        try:
            form._mx = (m, out)  # type: ignore[attr-defined]
        except AttributeError:
            pass
    return out


def macroexpand_1(form: Any, env: Env, ctx: Context) -> Any:
    """Expand ``form`` once if its head names a macro (for tooling and tests)."""
    if isinstance(form, List) and form and isinstance(form[0], Symbol):
        try:
            f = lookup(form[0], env, ctx)
        except SpellError:
            return form
        if isinstance(f, SpellMacro):
            return _expand(f, form, env, ctx)
    return form


# --------------------------------------------------------------------------------------------
# special forms: handler(form, env, ctx, tail) -> (value, env)

def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise SpellError(msg)


def _sf_quote(form: List, env: Env, ctx: Context, tail: bool) -> tuple[Any, Env]:
    _check(len(form) == 2, "quote expects exactly one argument")
    return form[1], env


def _sf_def(form: List, env: Env, ctx: Context, tail: bool) -> tuple[Any, Env]:
    n = len(form)
    _check(n >= 2, f"{form[0].name} expects a name")
    name = form[1]
    if type(name) is not Symbol or name.ns is not None:  # not _check: the message prints
        raise SpellError(f"{form[0].name} expects an unqualified symbol as its name, got {_pr(name)}")
    if n == 2:
        v = None
    elif n == 3:
        v, env = evaluate(form[2], env, ctx)
    elif n == 4 and isinstance(form[2], str):
        v, env = evaluate(form[3], env, ctx)
    else:
        raise SpellError(f"Too many arguments to {form[0].name}")
    return v, env.set(name, v)


def _sf_persist(form: List, env: Env, ctx: Context, tail: bool) -> tuple[Any, Env]:
    if len(form) == 2:
        return _sf_def(List((form[0], form[1], form[1])), env, ctx, tail)
    return _sf_def(form, env, ctx, tail)


def _sf_do(form: List, env: Env, ctx: Context, tail: bool) -> tuple[Any, Env]:
    n = len(form)
    if n == 1:
        return None, env
    last = n - 1
    i = 1
    try:
        while i < last:
            x = form[i]
            if type(x) is List:
                _, env = _eval_list(x, env, ctx, False)
            elif type(x) not in _SELF_TYPES:
                _, env = evaluate(x, env, ctx)
            i += 1
        return evaluate(form[last], env, ctx, tail)
    except SpellError as e:
        e.containing_form = form[i]
        if getattr(e, "env", None) is None:
            e.env = env  # type: ignore[attr-defined]
        raise


def _sf_if(form: List, env: Env, ctx: Context, tail: bool) -> tuple[Any, Env]:
    n = len(form)
    _check(n in (3, 4), "if expects (if test then) or (if test then else)")
    t, env = evaluate(form[1], env, ctx)
    if t is not None and t is not False:
        return evaluate(form[2], env, ctx, tail)
    if n == 4:
        return evaluate(form[3], env, ctx, tail)
    return None, env


def _sf_and(form: List, env: Env, ctx: Context, tail: bool) -> tuple[Any, Env]:
    n = len(form)
    if n == 1:
        return True, env
    for i in range(1, n - 1):
        v, env = evaluate(form[i], env, ctx)
        if v is None or v is False:
            return v, env
    return evaluate(form[n - 1], env, ctx, tail)


def _sf_or(form: List, env: Env, ctx: Context, tail: bool) -> tuple[Any, Env]:
    n = len(form)
    if n == 1:
        return None, env
    for i in range(1, n - 1):
        v, env = evaluate(form[i], env, ctx)
        if v is not None and v is not False:
            return v, env
    return evaluate(form[n - 1], env, ctx, tail)


def _bind_vector(bvec: Any, env: Env, ctx: Context, what: str) -> Env:
    _check(type(bvec) is Vector, f"{what} expects a binding vector")
    _check(len(bvec) % 2 == 0, f"{what} expects an even number of forms in its binding vector")
    for i in range(0, len(bvec), 2):
        pat = bvec[i]
        v, env = evaluate(bvec[i + 1], env, ctx)
        if type(pat) is Symbol and pat.ns is None:
            env = env.set(pat, v)
        else:
            env = destructure.bind(pat, v, env, _default_evaluator(ctx))
    return env


def _sf_let(form: List, env: Env, ctx: Context, tail: bool) -> tuple[Any, Env]:
    _check(len(form) >= 2, "let expects a binding vector")
    try:
        inner = _bind_vector(form[1], env, ctx, "let")
        v, _ = _eval_body(form, 2, inner, ctx, tail)
    except SpellError as e:
        e.env = env  # type: ignore[attr-defined]
        raise
    return v, env


def _anon_params(body: tuple) -> Vector:
    """Parameters of ``#(...)`` read as ``(fn* body)``: %, %1..%9, %&."""
    found: set = set()

    def walk(x: Any) -> None:
        if type(x) is Symbol and x.ns is None and x.name.startswith("%"):
            found.add(x.name)
        elif isinstance(x, (_Seq, Set)):
            if isinstance(x, List) and x and x[0] in (Symbol("fn*"), Symbol("fn")):
                return
            for y in x:
                walk(y)
        elif isinstance(x, Map):
            for k, v in x.items():
                walk(k)
                walk(v)

    for b in body:
        walk(b)
    top = 0
    for name in found:
        if name == "%":
            top = max(top, 1)
        elif name[1:].isdigit():
            top = max(top, int(name[1:]))
    params: list = []
    for i in range(1, top + 1):
        params.append(Symbol("%" if (i == 1 and "%" in found and "%1" not in found) else f"%{i}"))
    if "%&" in found:
        params += [Symbol("&"), Symbol("%&")]
    return Vector(params)


def _parse_fn(form: List) -> SpellFn:
    n = len(form)
    i = 1
    name = None
    if i < n and type(form[i]) is Symbol:
        name = form[i]
        i += 1
    if i >= n:
        if form[0].name == "fn*":
            return SpellFn(Vector(), (), name, form)
        raise SpellError("fn expects a parameter vector")
    first = form[i]
    if type(first) is Vector:
        return SpellFn(first, tuple(form[i + 1:]), name, form)
    if type(first) is List and first and type(first[0]) is Vector:
        arities = []
        for clause in form[i:]:
            _check(type(clause) is List and clause and type(clause[0]) is Vector,
                   "fn: each arity must look like ([params] body...)")
            arities.append((clause[0], tuple(clause[1:])))
        return SpellFn(tuple(arities), (), name, form)
    if form[0].name == "fn*":  # #(...) read without an explicit parameter vector
        body = tuple(form[i:])
        return SpellFn(_anon_params(body), body, name, form)
    raise SpellError("fn expects a parameter vector")


def _sf_fn(form: List, env: Env, ctx: Context, tail: bool) -> tuple[Any, Env]:
    f = getattr(form, "_fnv", None)
    if f is None:
        f = _parse_fn(form)
        try:
            form._fnv = f  # type: ignore[attr-defined]
        except AttributeError:
            pass
    return f, env


def _sf_expand(form: List, env: Env, ctx: Context, tail: bool) -> tuple[Any, Env]:
    """``(expand expr)``: the value of ``expr`` (a form) closed over the current env
    (``expand.py``)."""
    from .expand import MISSING, Expander
    _check(len(form) == 2, "expand expects one form: (expand 'form)")
    data, env = evaluate(form[1], env, ctx)

    def macro_of(s: Symbol) -> Any:
        v = env.get(s, _MISSING)
        return ctx.builtins.get(s) if v is _MISSING else v

    ex = Expander(lambda s: env.get(s, MISSING), macro_of,
                  lambda f: macroexpand_1(f, env, ctx))
    return ex.expand(data), env


def _sf_quine(form: List, env: Env, ctx: Context, tail: bool) -> tuple[Any, Env]:
    _check(len(form) >= 2 and type(form[1]) is Symbol and form[1].ns is None,
           "quine expects a name: (quine name form...)")
    env = env.set(form[1], form)
    # As the reference: the last element is evaluated, so (quine q) is the form itself.
    return evaluate(form[-1], env, ctx, tail)


def _sf_loop(form: List, env: Env, ctx: Context, tail: bool) -> tuple[Any, Env]:
    _check(len(form) >= 2, "loop expects a binding vector")
    bvec = form[1]
    try:
        inner = _bind_vector(bvec, env, ctx, "loop")
        pats = bvec[0::2]
        sh = ctx.shared
        while True:
            v, _ = _eval_body(form, 2, inner, ctx, tail)
            if type(v) is _Recur:
                args = v.args
                if len(args) != len(pats):
                    raise SpellError(f"Mismatched argument count to recur, expected: {len(pats)} "
                                     f"args, got: {len(args)}")
                inner = env
                for p, a in zip(pats, args):
                    if type(p) is Symbol and p.ns is None:
                        inner = inner.set(p, a)
                    else:
                        inner = destructure.bind(p, a, inner, _default_evaluator(ctx))
                _tick(sh)
                continue
            return v, env
    except SpellError as e:
        e.env = env  # type: ignore[attr-defined]
        raise


def _sf_recur(form: List, env: Env, ctx: Context, tail: bool) -> tuple[Any, Env]:
    args = []
    for i in range(1, len(form)):
        v, env = evaluate(form[i], env, ctx)
        args.append(v)
    return _Recur(args), env


_KW_WHEN = Keyword("when")
_KW_LET = Keyword("let")
_KW_WHILE = Keyword("while")


def _sf_for(form: List, env: Env, ctx: Context, tail: bool) -> tuple[Any, Env]:
    _check(len(form) >= 3, "for expects a binding vector and a body")
    bvec = form[1]
    _check(type(bvec) is Vector and len(bvec) % 2 == 0,
           "for expects a binding vector with an even number of forms")
    clauses = [(bvec[i], bvec[i + 1]) for i in range(0, len(bvec), 2)]
    out: list = []
    sh = ctx.shared
    iterate_items = _core().iterate_items

    def rec(i: int, env: Env) -> bool:
        if i == len(clauses):
            v, _ = _eval_body(form, 2, env, ctx, False)
            out.append(v)
            return True
        key, expr = clauses[i]
        if key is _KW_WHEN:
            t, _ = evaluate(expr, env, ctx)
            return rec(i + 1, env) if (t is not None and t is not False) else True
        if key is _KW_WHILE:
            t, _ = evaluate(expr, env, ctx)
            return rec(i + 1, env) if (t is not None and t is not False) else False
        if key is _KW_LET:
            return rec(i + 1, _bind_vector(expr, env, ctx, "for :let"))
        if type(key) is Keyword:
            raise SpellError(f"for: invalid modifier {_pr(key)}")
        coll, _ = evaluate(expr, env, ctx)
        simple = type(key) is Symbol and key.ns is None
        for item in iterate_items(coll):
            _tick(sh)
            e2 = env.set(key, item) if simple else destructure.bind(key, item, env,
                                                                    _default_evaluator(ctx))
            if not rec(i + 1, e2):
                break
        return True

    try:
        rec(0, env)
    except SpellError as e:
        e.env = env  # type: ignore[attr-defined]
        raise
    return Vector(out), env


_CATCH = Symbol("catch")
_FINALLY = Symbol("finally")
_CLASS_NAMES = {"Exception", "Throwable", "Error", "RuntimeException", "ExceptionInfo",
                "Object", "java.lang.Exception", "java.lang.Throwable", "java.lang.Error",
                "java.lang.RuntimeException", "clojure.lang.ExceptionInfo", "Default", ":default"}
_KW_MESSAGE = Keyword("message")
_KW_EXPR = Keyword("expr")


def error_value(e: SpellError) -> Any:
    """What ``catch`` binds: the thrown value, or ``{:message msg :expr failing-form}``."""
    thrown = e.thrown
    if thrown is not None:
        return thrown
    m = Map()
    dict.__setitem__(m, _KW_MESSAGE, e.message)
    dict.__setitem__(m, _KW_EXPR, e.form)
    return m


def _sf_try(form: List, env: Env, ctx: Context, tail: bool) -> tuple[Any, Env]:
    body: list = []
    catches: list = []
    fin = None
    for x in form[1:]:
        if type(x) is List and x and x[0] == _CATCH:
            catches.append(x)
        elif type(x) is List and x and x[0] == _FINALLY:
            fin = x
        else:
            body.append(x)
    cur = env
    try:
        try:
            v = None
            for x in body:
                v, cur = evaluate(x, cur, ctx)
            return v, cur
        except SpellError as e:
            if not catches or not _catchable(e):
                raise
            clause = catches[0]
            _check(len(clause) >= 2, "catch expects a name: (catch e handler...)")
            k = 1
            if (len(clause) >= 3 and type(clause[1]) is Symbol and type(clause[2]) is Symbol
                    and (clause[1].full in _CLASS_NAMES or clause[1].name[:1].isupper())):
                k = 2  # (catch Exception e ...)
            name = clause[k]
            _check(type(name) is Symbol and name.ns is None, "catch expects a symbol to bind")
            base = getattr(e, "env", None)
            if base is None:
                base = cur
            prior = env.get(name, _MISSING)
            v, henv = _eval_body(clause, k + 1, base.set(name, error_value(e)), ctx, False)
            henv = henv.delete(name) if prior is _MISSING else henv.set(name, prior)
            return v, henv
    finally:
        if fin is not None:
            _eval_body(fin, 1, env, ctx, False)


def make_throw(v: Any) -> SpellError:
    """The error raised by ``(throw v)``: ``catch`` binds ``v`` itself."""
    if v is None:
        return SpellError("Cannot throw nil")
    if isinstance(v, Map) and isinstance(dict.get(v, _KW_MESSAGE), str):
        msg = dict.get(v, _KW_MESSAGE)
    elif isinstance(v, str):
        msg = v
    else:
        msg = _pr(v)
    return SpellError(msg, thrown=v)


_SPECIAL: dict[str, Callable[[List, Env, Context, bool], tuple[Any, Env]]] = {
    "quote": _sf_quote,
    "def": _sf_def,
    "persist": _sf_persist,
    "do": _sf_do,
    "if": _sf_if,
    "and": _sf_and,
    "or": _sf_or,
    "let": _sf_let,
    "let*": _sf_let,
    "fn": _sf_fn,
    "fn*": _sf_fn,
    "quine": _sf_quine,
    "expand": _sf_expand,
    "loop": _sf_loop,
    "loop*": _sf_loop,
    "recur": _sf_recur,
    "for": _sf_for,
    "try": _sf_try,
}

SPECIAL_FORMS = frozenset(_SPECIAL)


# --------------------------------------------------------------------------------------------
# eval / spell-eval and the public entry points

_EVAL = Symbol("eval")


def make_eval(effects: dict) -> Builtin:
    """The ``eval`` builtin (spell-language.md section 4.2).

    ``eval`` is an ordinary function: its argument is evaluated first (pure), then the
    resulting data is evaluated in the caller's env *at the moment of the call* with
    builtins = active builtins + ``effects`` + ``{eval}``. It is tail_aware: the data is
    evaluated with the tail flag of the ``eval`` call, so a ``!llm-self`` ending the trailing
    expression comes back as a ``TailCall``."""
    effects = _normalize_table(effects)

    def _eval(ctx: Context, env: Env, data: Any, *, tail: bool = False) -> Any:
        table = ctx._eval_tables.get(id(builtin))
        if table is None:
            table = {**ctx.builtins, **effects, _EVAL: builtin}
            ctx._eval_tables[id(builtin)] = table
        inner = ctx.derive(builtins=table)
        return evaluate(data, env, inner, tail)[0]

    builtin = Builtin("eval", _eval, needs_ctx=True, tail_aware=True,
                      doc="Evaluate data as code, with effects available (the effect boundary)")
    return builtin


def _spell_eval(ctx: Context, env: Env, data: Any) -> Any:
    return evaluate(data, env, ctx)[0]


SPELL_EVAL = Builtin("spell-eval", _spell_eval, needs_ctx=True,
                     doc="Evaluate data as code in the caller's env with the active builtins "
                         "(no added effects)")


@dataclass
class Result:
    """Errors as values: exactly one of ``value``/``error`` is meaningful."""

    value: Any
    env: Env
    error: Optional[SpellError] = None

    @property
    def ok(self) -> bool:
        return self.error is None


def run(form: Any, env: Optional[Env] = None, ctx: Optional[Context] = None) -> Result:
    """Evaluate one form; never raises (a Python failure becomes an ``internal`` error)."""
    env = EMPTY_ENV if env is None else env
    ctx = make_context() if ctx is None else ctx
    try:
        v, env2 = evaluate(form, env, ctx)
        if type(v) is _Recur:
            return Result(None, env2, SpellError("recur used outside of loop or fn tail position",
                                                 form=form))
        return Result(v, env2)
    except SpellError as e:
        return Result(None, getattr(e, "env", None) or env, e)
    except RecursionError:
        return Result(None, env, _stack_error())
    except MemoryError:
        return Result(None, env, memory_error())
    except Exception as e:  # noqa: BLE001 - a bug in the runtime must not crash the caller
        return Result(None, env, SpellError(f"Internal error: {type(e).__name__}: {e}",
                                            kind="internal", form=form))


def run_source(text: str, env: Optional[Env] = None, ctx: Optional[Context] = None) -> Result:
    """Read every form of ``text`` and evaluate them in order, threading env (like ``do``).
    A convenience for tests and tools."""
    from .reader import read_all
    env = EMPTY_ENV if env is None else env
    try:
        forms = read_all(text)
    except SpellError as e:
        return Result(None, env, e)
    result = Result(None, env)
    for f in forms:
        result = run(f, result.env, ctx)
        if result.error is not None:
            break
    return result
