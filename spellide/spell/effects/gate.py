"""The one gate every effect of a run goes through.

Effect namespaces (``io/``, ``globals/``, model calls, later ``agents/``) are plain Python
functions; the gate wraps them so that each call gets a key (step, ordinal, name, argument
digest), is looked up in the effect cache when replaying, may be held for a person's approval,
is timed, and is reported as an ``EffectRecord``. Nothing effectful reaches a program except
through ``EffectGate.builtin``.

Futures (``futures.py``) run effects in threads of their own while the step's evaluation goes
on. Each future thread has its own scope (``enter_future``): same step, its own context name
(``ctx`` = ``f<i>`` by the ordinal of the ``future*`` call in the creating evaluation, nested
``f<i>.f<j>``) and its own ordinal counter, so an effect's key never depends on how the
threads happened to interleave (spell-agents.md section 8.2).
"""

from __future__ import annotations

import contextvars
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional

from ..data import Builtin, Vector
from ..errors import SpellError, TypedError
from .cache import (BLOCKED, CACHE_DISABLED, HIT, LIVE, MISS, EffectCache, EffectRecord,
                    Lookup, digest)

LIVE_MODE, REPLAY_MODE, STRICT_MODE = "live", "replay", "strict"


@dataclass
class StepScope:
    """Per-step effect state: the ordinal counter and whether a person edited this step."""

    step: int
    ordinal: int = 0
    base: int = 0        # ordinal of the program's first effect (after the step's model call)
    edited: bool = False
    ctx: str = ""        # "" = the step's own evaluation; "f0", "f0.f1"... = a future's
    futures: int = 0     # future* calls made so far in this scope: names the next one's ctx


# The scope of the future whose body this thread runs, with its gate and the thread's id (None:
# the thread runs a step's own evaluation and uses the gate's stack). A thread started from a
# future's body copies the context; the id keeps it from using the future's scope.
_FUTURE_SCOPE: contextvars.ContextVar[Optional[tuple["EffectGate", StepScope, int]]] = \
    contextvars.ContextVar("spell_future_scope", default=None)


# approve(name, args_text, step, replay_miss) -> None to go on, or raises SpellError to block
Approver = Callable[[str, str, int, bool], Optional[str]]


@dataclass
class EffectGate:
    mode: str = LIVE_MODE
    cache: EffectCache = field(default_factory=EffectCache)
    on_record: Callable[[EffectRecord], None] = lambda r: None
    approve: Optional[Approver] = None
    printer: Callable[[Any], str] = repr
    reader: Callable[[str], Any] = eval
    executed: int = 0
    reused: int = 0
    # one approval at a time: futures' effects may reach a pause point while the step's do
    _approving: threading.Lock = field(default_factory=threading.Lock)
    _loose: StepScope = field(default_factory=lambda: StepScope(-1, ctx="loose"))
    # Each thread (an agent's lifecycle) has its own stack of step scopes; the counters
    # are shared and counted under a lock.
    _local: threading.local = field(default_factory=threading.local)
    _count_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def _scopes(self) -> list[StepScope]:
        try:
            return self._local.scopes
        except AttributeError:
            scopes = self._local.scopes = []
            return scopes

    def _count(self, executed: int = 0, reused: int = 0) -> None:
        with self._count_lock:
            self.executed += executed
            self.reused += reused

    # --- step scopes -------------------------------------------------------------------
    def push(self, step: int) -> StepScope:
        scope = StepScope(step)
        self._scopes.append(scope)
        return scope

    def pop(self) -> None:
        self._scopes.pop()

    def _future_scope(self) -> Optional[StepScope]:
        mine = _FUTURE_SCOPE.get()
        if mine is not None and mine[0] is self and mine[2] == threading.get_ident():
            return mine[1]
        return None

    @property
    def scope(self) -> StepScope:
        return self._future_scope() or self._scopes[-1]

    def restart_step(self) -> None:
        """The current step's program is evaluated again (recovery, or a person's edit):
        its effects are numbered from the start again, so unchanged ones hit the cache; so
        are its futures, whose effects then get the same keys again."""
        self.scope.ordinal = self.scope.base
        self.scope.futures = 0

    # --- futures -------------------------------------------------------------------------
    def next_future(self) -> tuple[int, str]:
        """(step, ctx) of a future that a ``future*`` call in this thread starts now."""
        if not self._scopes and self._future_scope() is None:
            # a thread in no step (a bare gate): numbered for the gate as a whole
            scope = self._loose
        else:
            scope = self.scope
        i = scope.futures
        scope.futures += 1
        return scope.step, f"{scope.ctx}.f{i}" if scope.ctx else f"f{i}"

    @contextmanager
    def enter_future(self, step: int, ctx: str) -> Iterator[StepScope]:
        """This thread runs the body of future ``ctx`` of ``step`` meanwhile: its effects are
        keyed (step, ctx, own ordinal)."""
        scope = StepScope(step, ctx=ctx)
        token = _FUTURE_SCOPE.set((self, scope, threading.get_ident()))
        try:
            yield scope
        finally:
            _FUTURE_SCOPE.reset(token)

    # --- performing ----------------------------------------------------------------------
    def would_reuse(self, name: str, args_text: str) -> bool:
        """Whether the next effect ``perform`` gets, with these arguments, would be served from
        the cache (nothing executed). Lets a caller check a cost only for what will run."""
        if self.mode == LIVE_MODE:
            return False
        scope = self.scope
        return self.cache.lookup(scope.step, scope.ordinal, name, args_text, digest(args_text),
                                 scope.edited, scope.ctx).record is not None

    def perform(self, name: str, args: tuple, thunk: Callable[[], Any], *,
                args_text: Optional[str] = None,
                encode: Optional[Callable[[Any], str]] = None,
                decode: Optional[Callable[[str, EffectRecord], Any]] = None,
                usage_of: Optional[Callable[[Any], Optional[dict]]] = None,
                unsafe: bool = False, internal: bool = False) -> Any:
        """Run one effect. ``internal`` effects (coordinator transitions) are never answered
        from the cache: they are executed in every mode (a replay rebuilds the coordinator's
        state by executing them again) and recorded as live."""
        scope = self.scope
        ordinal = scope.ordinal
        scope.ordinal += 1
        if args_text is None:
            args_text = self.printer(Vector(args))
        dig = digest(args_text)
        encode = encode or self.printer
        started = time.time()

        lookup = Lookup(None, CACHE_DISABLED)
        if self.mode != LIVE_MODE and not internal:
            lookup = self.cache.lookup(scope.step, ordinal, name, args_text, dig, scope.edited,
                                       scope.ctx)
            rec = lookup.record
            if rec is not None:
                self._count(reused=1)
                hit = EffectRecord(scope.step, ordinal, name, args_text, dig, rec.result, HIT,
                                   "recorded result reused", rec.error, rec.error_kind, started,
                                   0.0, rec.usage, saved_ms=rec.duration_ms, ctx=scope.ctx)
                self.on_record(hit)
                if rec.error is not None:
                    raise SpellError(rec.error, kind=rec.error_kind or "eval")
                return decode(rec.result, rec) if decode else self.reader(rec.result)
            if self.mode == STRICT_MODE:
                where = f"future {scope.ctx} " if scope.ctx else ""
                raise TypedError(
                    f"Strict replay diverged at step {scope.step}: {where}effect #{ordinal} "
                    f"{name}: {lookup.reason}", kind="divergence")

        status = MISS if self.mode != LIVE_MODE and not internal else LIVE
        reason = lookup.reason if self.mode != LIVE_MODE and not internal else ""
        if self.approve is not None:
            try:
                with self._approving:
                    self.approve(name, args_text, scope.step,
                                 self.mode != LIVE_MODE and unsafe and not internal)
            except SpellError as err:
                self.on_record(EffectRecord(scope.step, ordinal, name, args_text, dig, None,
                                            BLOCKED, err.message, err.message, "rejected", started,
                                            ctx=scope.ctx))
                raise
        t0 = time.perf_counter()
        try:
            value = thunk()
        except SpellError as err:
            blocked = err.kind == "io-refused"
            self._count(executed=0 if blocked or internal else 1)
            self.on_record(EffectRecord(scope.step, ordinal, name, args_text, dig, None,
                                        BLOCKED if blocked else status,
                                        err.message if blocked else reason, err.message, err.kind,
                                        started, (time.perf_counter() - t0) * 1000, ctx=scope.ctx,
                                        internal=internal))
            raise
        duration = (time.perf_counter() - t0) * 1000
        self._count(executed=0 if internal else 1)   # internal ones are not the world's
        self.on_record(EffectRecord(scope.step, ordinal, name, args_text, dig, encode(value),
                                    status, reason, None, None, started, duration,
                                    usage_of(value) if usage_of else None, ctx=scope.ctx,
                                    internal=internal))
        return value

    def builtin(self, name: str, fn: Callable[..., Any], *, unsafe: bool = False,
                doc: str = "", internal: Optional[Callable[[], bool]] = None) -> Builtin:
        """Wrap a plain effect function as a Spell builtin that goes through this gate. The
        caller's context and env are kept meanwhile (``call_env``): a Spell function the
        effect is given (``globals/update``'s f) runs in the env it was called from, as every
        higher-order builtin does (dynamic scope). ``internal()`` true: this call is an internal
        transition (``perform``), executed even when replaying."""

        def call(ctx: Any, env: Any, *args: Any) -> Any:
            local = self._local
            outer = getattr(local, "env", None)
            local.env = (ctx, env)
            try:
                return self.perform(name, args, lambda: fn(*args), unsafe=unsafe,
                                    internal=internal is not None and internal())
            finally:
                local.env = outer

        return Builtin(name, call, needs_ctx=True, doc=doc)

    def call_env(self) -> Optional[tuple[Any, Any]]:
        """(ctx, env) of the effect call in progress in this thread (None: none)."""
        return getattr(self._local, "env", None)
