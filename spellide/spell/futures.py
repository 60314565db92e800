"""Futures: ``(future e)`` evaluates ``e`` concurrently, in a thread of the run's process.

``(future e)`` is the macro form of ``(future* (fn [] e))`` (spell-agents.md section 5);
``future*`` is a core builtin, available everywhere, and not an effect (creating a future
performs nothing). Its value is the map ``{:spell/future true :ref <host future>}``, where the
host future is a ``HostFuture``. Only ``blocking/`` (inside other futures) and ``!ask-await``
(in an agent turn) wait for one.

**Printed form.** A host future prints as ``#<future s3.f0>`` (the step that created it and
its context name, ``root`` for the init program), so the whole value prints as
``{:spell/future true :ref #<future s3.f0>}``. ``#<`` is unreadable on purpose: the text can
be shown to a model and kept in a prefix, but reading it back fails, so a model cannot forge a
future by writing one; a map the model writes itself (``{:spell/future true :ref 1}``) holds
no ``HostFuture`` and every waiting operation refuses it ("requires a future"). The printed
form has no state in it (not "pending" or "done"), so printing a future is deterministic and
a replayed prefix equals the recorded one.

**What a future's body sees.** The caller's builtins (inside ``eval`` that includes the effect
namespaces) plus ``blocking/``, which exists only there; the env at the ``future*`` call
(functions have dynamic scope); an RNG of its own seeded from the creator's state and its
name; counters of its own (steps, call depth) with the creator's limits; and the run's
deadline (``Run time limit exceeded``): a future outlives the step that made it, so the step
time limit does not apply to it. Agent-context operations fail inside it: ``!llm-self``
("Self-calls cannot run inside computation futures", raised by the turn machine through
``refuse_in_future``), ``!ask-await``, ``receive`` and the ``agents/`` operations that need
an agent turn (a future's thread runs no agent: ``Run.actor`` is None there). A future
remembers the agent whose turn created it (``HostFuture.agent``): ``blocking/request`` asks
on that agent's behalf (``agents/future_waits.py``, which also has ``!ask-await``).

**Effect keys.** Each future's effects are keyed ``(step, ctx, ordinal)`` with ``ctx`` =
``f<i>`` (the i-th ``future*`` call of the creating evaluation) or ``f<i>.f<j>`` when a future
creates one, and ordinals counted per future (``effects/gate.py``), so a replay finds every
effect of every future whatever order the threads ran in.

**Threads.** A ``FuturePool`` (one per run; a default one for evaluations outside a run) runs
futures on at most ``MAX_WORKERS`` worker threads with ``STACK_BYTES`` stacks (small: a run's
memory limit counts thread stacks); more futures wait in a queue, and a future that awaits a
queued one runs it itself, so futures waiting on futures never starve the pool. When the run
ends the pool is closed: queued futures fail, running ones end at their next deadline check
(``Future cancelled: the run ended``). A Stop decided at a pause point inside a future, or a
strict replay's divergence there, ends every future and is raised in the run's own thread at
its next step (``FuturePool.check``); a future blocked in one long host call (a model call,
``globals/wait-until``) ends when that call returns.
"""

from __future__ import annotations

import contextvars
import random
import threading
import time
from collections import deque
from contextlib import nullcontext
from typing import Any, Callable, Optional, Protocol

from .data import Builtin, Map, SpellFn, Symbol, kw, smap
from .errors import SpellError, TypedError
from .evaluator import Context, apply_fn
from .limits import MB, evaluating_in_thread, memory_error, timeout_error

FUTURE_KEY = kw("spell/future")
REF_KEY = kw("ref")
BLOCKING = Symbol("blocking")
SELF_CALL_IN_FUTURE = "Self-calls cannot run inside computation futures"
MAX_WORKERS = 32
STACK_BYTES = 4 * MB
POLL_SECONDS = 0.05           # how often a waiting thread looks at its own deadline
MAX_TABLES = 64               # creators' builtins tables a pool keeps a future's table for
JOIN_SECONDS = 1.0            # how long closing a pool waits for running futures to end
# Errors of a future that end the whole run, not only the future.
RUN_ENDING = ("stopped", "divergence")

Body = Callable[[Context], Any]

# The future whose body this thread is evaluating, with the thread's id (None: a run's own
# evaluation). The id keeps a thread started from a future's body (an agent's lifecycle, which
# copies the context it was started in) from counting as that future.
_CURRENT: contextvars.ContextVar[Optional[tuple[int, "HostFuture"]]] = contextvars.ContextVar(
    "spell_current_future", default=None)
_STACK_LOCK = threading.Lock()   # threading.stack_size is process-wide


class Waitable(Protocol):
    """What ``blocking/await`` can wait for: a ``HostFuture`` or a request token (the
    coordinator's, ``blocking/request``). ``wait`` returns the value or raises its error,
    and gives up with the waiter's own time-limit error when ``waiter``'s deadline passes."""

    def wait(self, waiter: Optional[Context]) -> Any: ...


def current() -> Optional["HostFuture"]:
    """The future whose body this thread runs, or None."""
    mine = _CURRENT.get()
    return mine[1] if mine is not None and mine[0] == threading.get_ident() else None


def refuse_in_future(message: str) -> None:
    """Raise ``message`` when called from a future's body (agent-context operations)."""
    if current() is not None:
        raise SpellError(message)


def require_future_thread(name: str) -> "HostFuture":
    """The future this thread runs; a blocking helper called anywhere else (an agent's own
    thread, even through a function value that escaped a future) is refused."""
    fut = current()
    if fut is None:
        raise TypedError(f"{name} cannot block an agent runner; use !ask-await",
                         kind="agent-blocking-call")
    return fut


def future_value(ref: Any, **extra: Any) -> Map:
    """The Spell value of a future: ``{:spell/future true :ref ref ...}``."""
    return smap(FUTURE_KEY, True, REF_KEY, ref, *(x for k, v in extra.items() for x in (kw(k), v)))


def waitable(x: Any) -> Optional[Waitable]:
    """The host object of a future value (or of a request token), None for anything else —
    including maps a program wrote that only look like one."""
    if isinstance(x, Map) and dict.get(x, FUTURE_KEY) is True:
        ref = dict.get(x, REF_KEY)
        if isinstance(ref, HostFuture) or getattr(ref, "is_spell_request_token", False):
            return ref
    return None


QUEUED, RUNNING, DONE = "queued", "running", "done"


class HostFuture:
    """The host side of one future: its body, the context it runs in, and its outcome."""

    def __init__(self, pool: "FuturePool", label: str, step: int, name: str, body: Body,
                 fctx: Context, owner: Any, agent: Any = None):
        self.pool = pool
        self.label = label          # printed: s3.f0
        self.step = step            # step whose evaluation (or future) created it
        self.name = name            # its effect context: f0, f0.f1
        self.owner = owner          # ctx.machine of the creating evaluation (its turn's frame)
        self.agent = agent          # the agent (runtime Actor) whose turn created it, or None
        self.children = 0           # futures it created (names them when there is no gate)
        self.state = QUEUED
        self._body = body
        self.fctx = fctx
        self._context = contextvars.copy_context()   # the creator's (memory limit, ...)
        self._done = threading.Event()
        self._value: Any = None
        self._error: Optional[SpellError] = None

    def spell_pr(self) -> str:
        return f"#<future {self.label}>"

    def __repr__(self) -> str:
        return f"HostFuture({self.label}, {self.state})"

    def done(self) -> bool:
        return self._done.is_set()

    # --- running ----------------------------------------------------------------------
    def run(self) -> None:
        """Evaluate the body in this thread (a worker's, or an awaiter's that claimed it)."""
        self._context.run(self._evaluate)

    def _evaluate(self) -> None:
        _CURRENT.set((threading.get_ident(), self))
        gate = self.pool.gate
        scope = gate.enter_future(self.step, self.name) if gate is not None else nullcontext()
        try:
            with scope, evaluating_in_thread(self.fctx.shared):
                value = self._body(self.fctx)
        except SpellError as e:
            self.finish(error=e)
        except RecursionError:
            self.finish(error=SpellError("Stack depth exceeded: too many nested calls "
                                         "(runaway recursion?)"))
        except MemoryError:
            self.finish(error=memory_error(detail=f"future {self.label} ran out of memory"))
        except Exception as e:  # noqa: BLE001 - a host failure must not kill the worker silently
            self.finish(error=TypedError(f"Internal error in future {self.label}: "
                                         f"{type(e).__name__}: {e}", kind="internal"))
        else:
            self.finish(value=value)

    def finish(self, value: Any = None, error: Optional[SpellError] = None) -> None:
        if self._done.is_set():
            return
        self._value, self._error = value, error
        self.state = DONE
        self._done.set()
        self.pool.finished(self, error)

    def cancel(self, error: SpellError) -> None:
        """End a running body at its next deadline check with ``error``'s message."""
        sh = self.fctx.shared
        sh.timeout_message = error.message
        sh.deadline = -1.0   # every time.monotonic() is past it

    # --- waiting ----------------------------------------------------------------------
    def wait(self, waiter: Optional[Context]) -> Any:
        """The outcome, waiting for it; gives up with ``waiter``'s time-limit error when its
        deadline passes (None: a watcher, which has none)."""
        if self.pool.claim(self):
            self.run()   # nobody started it yet: run it here rather than wait for a worker
        wait_until(self._done, waiter)
        return self.outcome()

    def error(self) -> Optional[SpellError]:
        """The body's error once done (None: it succeeded, or is not done)."""
        return self._error

    def outcome(self) -> Any:
        """The value, or the body's error raised again (typed errors stay uncatchable)."""
        e = self._error
        if e is None:
            return self._value
        cls = TypedError if isinstance(e, TypedError) else SpellError
        raise cls(f"Future {self.label} failed: {e.message}", kind=e.kind, form=e.form,
                  span=e.span)


def wait_until(event: threading.Event, waiter: Optional[Context]) -> None:
    """Block until ``event`` is set, looking at ``waiter``'s deadline every ``POLL_SECONDS``
    (so a cancelled waiter ends too)."""
    sh = waiter.shared if waiter is not None else None
    while not event.wait(POLL_SECONDS):
        if sh is not None and sh.deadline is not None and time.monotonic() > sh.deadline:
            raise timeout_error(sh)


class FuturePool:
    """The futures of one run: starts them, names them, runs them on a bounded set of
    worker threads, and ends them with the run.

    ``gate`` (the run's ``EffectGate``; None outside a run) names each future and keys its
    effects; ``deadline()`` is the run's deadline (``time.monotonic()`` value or None) and
    ``deadline_message()`` what passing it says."""

    def __init__(self, gate: Any = None, deadline: Callable[[], Optional[float]] = lambda: None,
                 deadline_message: Callable[[], Optional[str]] = lambda: None,
                 max_workers: int = MAX_WORKERS):
        self.gate = gate
        self._deadline = deadline
        self._deadline_message = deadline_message
        self._max_workers = max_workers
        self._lock = threading.Lock()
        self._queue: deque[HostFuture] = deque()
        self._live: set[HostFuture] = set()
        self._workers = 0
        self._top = 0                                # top-level futures, without a gate
        self._closed: Optional[TypedError] = None
        self.failure: Optional[TypedError] = None    # the first run-ending error of a future
        self._watched: dict[Any, Any] = {}           # (agent, future) -> its watcher's claim
        # id(creator's builtins) -> (those builtins, a future's builtins, its eval tables)
        self._tables: dict[int, tuple[dict, dict, dict]] = {}
        self.started = 0
        self.builtin = Builtin("future*", self.future_star, needs_ctx=True, doc=FUTURE_STAR_DOC)

    # --- creating ---------------------------------------------------------------------
    def future_star(self, ctx: Context, env: Any, thunk: Any) -> Map:
        """``(future* f)``: start evaluating ``(f)`` concurrently; the future's value."""
        if not isinstance(thunk, (SpellFn, Builtin)):
            from .printer import pr_str
            raise SpellError(f"future* expects a function of no arguments, got {pr_str(thunk)}")
        return future_value(self.start(ctx, lambda fctx: apply_fn(thunk, [], env, fctx)))

    def start(self, ctx: Context, body: Body) -> HostFuture:
        """Start ``body(fctx)`` as a future created by the evaluation of ``ctx``."""
        if self._closed is not None:
            raise TypedError(self._closed.message, kind=self._closed.kind)
        step, name = self._next_name()
        label = f"{'root' if step == -1 else f's{step}'}.{name}" if self.gate is not None else name
        table, eval_tables = self._table(ctx.builtins)
        seed = f"{hash(ctx.rng.getstate()[1])}:{name}"   # the creator's draws are untouched
        fctx = ctx.fork(builtins=table, rng=random.Random(seed))
        fctx._eval_tables = eval_tables
        fctx.shared.deadline = self._deadline()
        fctx.shared.timeout_message = self._deadline_message()
        parent = current()
        agent = (parent.agent if parent is not None
                 else getattr(getattr(ctx.machine, "run", None), "actor", None))
        fut = HostFuture(self, label, step, name, body, fctx, ctx.machine, agent)
        with self._lock:
            self.started += 1
            self._live.add(fut)
            self._queue.append(fut)
            spawn = self._workers < self._max_workers
            if spawn:
                self._workers += 1
        if spawn:
            self._start_worker()
        return fut

    def _table(self, builtins: dict) -> tuple[dict, dict]:
        """The builtins of a future created with ``builtins`` (they plus ``blocking/``) and
        the cache of its ``eval`` tables, made once per creator's table: a thousand futures
        of one ``pmap`` share one copy."""
        with self._lock:
            hit = self._tables.get(id(builtins))
            if hit is not None and hit[0] is builtins:
                return hit[1], hit[2]
            if len(self._tables) >= MAX_TABLES:   # evaluations outside a run come and go
                self._tables.clear()
            ns = blocking_namespace()
            table = builtins if builtins.get(BLOCKING) is ns else {**builtins, BLOCKING: ns}
            hit = self._tables[id(builtins)] = (builtins, table, {})
            if table is not builtins:
                self._tables[id(table)] = (table, table, hit[2])
            return table, hit[2]

    def _next_name(self) -> tuple[int, str]:
        if self.gate is not None:
            return self.gate.next_future()
        parent = current()
        with self._lock:
            if parent is not None and parent.pool is self:
                i, parent.children = parent.children, parent.children + 1
                return -1, f"{parent.name}.f{i}"
            i, self._top = self._top, self._top + 1
            return -1, f"f{i}"

    def _start_worker(self) -> None:
        if not start_thread(self._work, "spell-future"):   # no room (the memory limit)
            with self._lock:
                self._workers -= 1                         # queued futures run when awaited

    def _work(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._workers -= 1
                    return
                fut = self._queue.popleft()
                fut.state = RUNNING
            fut.run()

    def claim(self, fut: HostFuture) -> bool:
        """Take a queued future to run it in the calling thread (False: it started already)."""
        with self._lock:
            if fut.state != QUEUED:
                return False
            self._queue.remove(fut)
            fut.state = RUNNING
            return True

    # --- ending -----------------------------------------------------------------------
    def finished(self, fut: HostFuture, error: Optional[SpellError]) -> None:
        with self._lock:
            self._live.discard(fut)
            ending = (isinstance(error, TypedError) and error.kind in RUN_ENDING
                      and self.failure is None)
            if ending:
                self.failure = error   # type: ignore[assignment]
        if ending:
            self._cancel_all(TypedError(f"Future cancelled: {error.message}", kind=error.kind))

    def check(self) -> None:
        """Raise in the run's own thread the run-ending error a future met (a Stop at a pause
        point inside it, a strict replay's divergence)."""
        failure = self.failure
        if failure is not None:
            raise TypedError(failure.message, kind=failure.kind)

    def close(self, message: str = "Future cancelled: the run ended") -> None:
        """The run ended: no new futures; queued ones fail, running ones are told to end and
        waited for a moment (one inside a long host call ends when that returns)."""
        err = TypedError(message, kind="cancelled")
        with self._lock:
            if self._closed is None:
                self._closed = err
        running = self._cancel_all(err)
        until = time.monotonic() + JOIN_SECONDS
        for fut in running:
            fut._done.wait(max(0.0, until - time.monotonic()))

    def _cancel_all(self, err: TypedError) -> list[HostFuture]:
        with self._lock:
            queued = list(self._queue)
            self._queue.clear()
            running = [f for f in self._live if f.state == RUNNING]
        for fut in queued:
            fut.finish(error=err)
        for fut in running:
            fut.cancel(err)
        return running

    def watch(self, key: Any, claim: Any) -> bool:
        """Make ``claim`` the one watcher of ``key`` (``!ask-await``: an agent and a future);
        False when another is out already."""
        with self._lock:
            if key in self._watched:
                return False
            self._watched[key] = claim
            return True

    def unwatch(self, key: Any, claim: Any) -> None:
        """The watcher ``claim`` of ``key`` is done (or its wait was refused)."""
        with self._lock:
            if self._watched.get(key) is claim:
                del self._watched[key]

    def live(self) -> int:
        """Futures not finished yet (queued or running)."""
        with self._lock:
            return len(self._live)


def start_thread(target: Callable[[], None], name: str) -> bool:
    """Start a daemon thread with a future's stack size in the calling thread's context (the
    run's memory limit goes along); False when there is no room for one."""
    context = contextvars.copy_context()
    with _STACK_LOCK:
        previous = threading.stack_size()
        try:
            threading.stack_size(STACK_BYTES)
            threading.Thread(target=context.run, args=(target,), name=name, daemon=True).start()
            return True
        except (RuntimeError, MemoryError):
            return False
        finally:
            threading.stack_size(previous)


FUTURE_STAR_DOC = ("(future* f): evaluate (f) concurrently; the value is a future, "
                   "{:spell/future true :ref ...}, for blocking/await (inside futures) and "
                   "!ask-await (in an agent turn). (future e) is (future* (fn [] e)).")

# Futures of evaluations outside a run (``make_context`` + ``evaluate``): no effects to key,
# nothing to close.
DEFAULT_POOL = FuturePool()

_BLOCKING_NS: Optional[Map] = None


def blocking_namespace() -> Map:
    """The ``blocking/`` map bound in every future's context (``effects/blocking.py``)."""
    global _BLOCKING_NS
    if _BLOCKING_NS is None:
        from .effects.blocking import make_namespace
        _BLOCKING_NS = make_namespace()
    return _BLOCKING_NS


def futures_in(value: Any, limit: int = 10_000) -> list[HostFuture]:
    """The host futures a value holds (in collections, at most ``limit`` elements looked at),
    and those held by the values of the ones already done."""
    found: list[HostFuture] = []
    seen: set[int] = set()
    stack = [value]
    looked = 0
    while stack and looked < limit:
        x = stack.pop()
        looked += 1
        if isinstance(x, HostFuture):
            if id(x) not in seen:
                seen.add(id(x))
                found.append(x)
                if x.done() and x._error is None:
                    stack.append(x._value)
        elif isinstance(x, Map):
            stack.extend(x.values())
            stack.extend(x.keys())
        elif isinstance(x, (tuple, list, frozenset, set)):
            stack.extend(x)
    return found


def settle(pool: FuturePool, value: Any, deadline: Callable[[], Optional[float]],
           message: Callable[[], Optional[str]]) -> None:
    """Wait for the futures a run's value holds (a run that returns ``(future ...)`` returns
    its result, not a future its end cancelled), up to the run's deadline; a run-ending error
    of a future (Stop, divergence) is raised."""
    def past_deadline() -> bool:
        until = deadline()
        return until is not None and time.monotonic() > until

    pending = futures_in(value)
    while pending:
        fut = pending.pop()
        while not fut._done.wait(POLL_SECONDS):
            pool.check()
            if past_deadline():
                break
        pending.extend(f for f in futures_in(fut._value) if f is not fut and not f.done())
    pool.check()
    if past_deadline():   # whether the futures noticed first or not: the run ran out of time
        raise TypedError(message() or "Run time limit exceeded", kind="timeout")
