"""Where futures meet agents: ``!ask-await`` and the token of ``blocking/request``.

``(!ask-await f)`` (spell-agents.md section 5) joins future ``f`` from an agent turn without
blocking the agent's thread on it: it registers an external wait with the run's coordinator
(``external_wait_begin``: status ``:external-wait``, refused like a sleep when an incoming
request is not dominated by a newer outgoing edge) and sleeps until **any** message. One
*watcher* thread per (agent, future) waits for the future and delivers
``{:from :future :body v}`` (on failure the body is ``{:future-await/error "message" :class
"kind"}``) through ``external_wait_complete``. Calling it again while that watcher is out
re-joins without a second watcher (the future never runs twice: it is one object); once the
result was delivered, a new ``!ask-await`` of the done future delivers it again. Its value is
the value of the resumed program, like ``agents/!wait``.

``blocking/request`` (inside a future) creates a single-target edge owned by the agent whose
turn created the future (``coordinator.request_token``); the ``RequestToken`` it returns is
what ``blocking/await`` waits on: the exact reply value, ``:request-cancelled`` (catchable) or
``:coordinator-closed`` (not). No report message is sent for such an edge. A request from a
future whose agent lifecycle has ended fails with ``:stale-computation-lifecycle``.

Both are coordinator transitions: they go through the run's gate as *internal* effects
(keyed, recorded, executed again on replay rather than served from the cache), with the
future's own ``ctx`` in the key when made inside one. Journal actors: the future's is
``(handle, generation, "f<i>")``, a watcher's ``(handle, generation, "watch:<future>")``.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Optional

from ..data import Builtin, Keyword, Map, Vector, kw, smap
from ..errors import SpellError, TypedError
from ..evaluator import Context
from ..futures import (POLL_SECONDS, HostFuture, refuse_in_future, require_future_thread,
                      start_thread, wait_until, waitable, future_value)
from ..printer import pr_str

NO_CONTEXT = "!ask-await: requires an active agent context"
K_FROM, K_BODY = kw("from"), kw("body")
K_ERROR, K_CLASS = kw("future-await/error"), kw("class")


def _coordinated_run(ctx: Any, what: str) -> Any:
    """The run of this evaluation, when it has an agent coordinator."""
    run = getattr(ctx.machine, "run", None)
    if run is None or getattr(run, "coordinator", None) is None:
        raise TypedError(f"{what} is not available here: it needs the run's agent coordinator",
                         kind="unavailable")
    return run


def _batch_text(batch: Any) -> str:
    """A wait's result as its effect records it: the names of the messages it received."""
    return "nil" if batch is None else pr_str(Vector(name for name, _, _ in batch))


# --- !ask-await --------------------------------------------------------------------------------
def ask_await(ctx: Context, env: Any, fut: Any, *rest: Any, tail: bool = False) -> Any:
    """(!ask-await f): wait, from an agent turn, for future f; its result arrives as the
    message {:from :future :body v} and the turn continues with it received."""
    refuse_in_future(NO_CONTEXT)
    if rest:
        raise SpellError("!ask-await expects one future")
    target = waitable(fut)
    if not isinstance(target, HostFuture):
        raise SpellError("!ask-await requires a future")
    run = _coordinated_run(ctx, "!ask-await")
    actor = run.actor
    if actor is None or actor.ctx != "main":
        raise SpellError(NO_CONTEXT)
    coord = run.coordinator
    key = f"future {target.label}"

    def begin() -> Any:
        abandoned = threading.Event()   # set: this call's wait was refused
        wid = _watch(run, actor, key, target, abandoned)
        try:
            return coord.external_wait_begin(actor.key, actor.handle, key)
        except BaseException:
            abandoned.set()
            run.futures.unwatch(wid, abandoned)   # a later call may watch again
            raise

    batch = run.gate.perform("!ask-await", (fut,), begin, internal=True, encode=_batch_text)
    return run.resume_after_wait(ctx, actor, batch, "wait-resume", tail)


ASK_AWAIT = Builtin("!ask-await", ask_await, needs_ctx=True, tail_aware=True,
                    doc="(!ask-await f): wait for future f from an agent turn; its result "
                        "arrives as the message {:from :future :body v}")

def _watch(run: Any, actor: Any, key: str, fut: HostFuture, abandoned: threading.Event) -> tuple:
    """Start the watcher of ``fut`` for ``actor`` unless one is out already (its claim is
    ``abandoned``, set when this call's wait is refused); returns the watch's key."""
    wid = (actor.handle, actor.generation, id(fut))
    if not run.futures.watch(wid, abandoned):
        return wid
    coord = run.coordinator
    watcher_key = (actor.key[0], actor.key[1], f"watch:{fut.label}")

    def deliver() -> None:
        try:
            try:
                body: Any = fut.wait(None)
            except SpellError as e:
                body = smap(K_ERROR, e.message, K_CLASS, e.kind)
            message = smap(K_FROM, Keyword("future"), K_BODY, body)
            # the result goes to the wait once the agent registered it (begin runs meanwhile)
            while not abandoned.is_set() and not coord.closed:
                rec = coord.agents.get(actor.handle)
                if rec is None or rec.generation != actor.generation or rec.status == "finished":
                    return   # the lifecycle that waited is over: its external waits are gone
                if key in rec.external:
                    coord.external_wait_complete(watcher_key, actor.handle, key, message)
                    return
                time.sleep(POLL_SECONDS / 10)
        except SpellError:   # the coordinator closed meanwhile: nobody waits any more
            return
        finally:
            run.futures.unwatch(wid, abandoned)

    if not start_thread(deliver, "spell-future-watcher"):
        run.futures.unwatch(wid, abandoned)
        raise TypedError("!ask-await: no room for a watcher thread (the run's memory limit)",
                         kind="memory-limit")
    return wid


# --- blocking/request --------------------------------------------------------------------------
class RequestToken:
    """What ``blocking/await`` waits on for a request from a future: resolved by the
    coordinator with ``completed`` (the reply), ``cancelled`` or ``closed``."""

    is_spell_request_token = True

    def __init__(self) -> None:
        self.edge_id: Optional[int] = None
        self._done = threading.Event()
        self._kind: Optional[str] = None
        self._value: Any = None

    def resolve(self, kind: str, value: Any) -> None:
        if not self._done.is_set():
            self._kind, self._value = kind, value
            self._done.set()

    def wait(self, waiter: Optional[Context]) -> Any:
        wait_until(self._done, waiter)
        if self._kind == "completed":
            return self._value
        if self._kind == "cancelled":
            raise SpellError(f"Request {self.edge_id} was cancelled", kind="request-cancelled")
        raise TypedError("Coordinator closed: the run ended", kind="coordinator-closed")

    def spell_pr(self) -> str:
        return f"#<request {self.edge_id}>"


def request_from_future(ctx: Context, target: Any, body: tuple) -> Map:
    """``(blocking/request h [v])`` in a future: an edge owned by the future's agent, to
    ``h``; its token value ``{:spell/future true :ref … :edge-id id :request-result true}``."""
    fut = require_future_thread("blocking/request")
    run = _coordinated_run(ctx, "blocking/request")
    agent = fut.agent
    if agent is None:
        raise SpellError("blocking/request: requires a future created by an agent turn")
    if not isinstance(target, Keyword):
        raise SpellError(f"blocking/request: a handle must be a keyword, got {pr_str(target)}")
    from .coordinator import ABSENT
    coord = run.coordinator
    actor_key = (agent.key[0], agent.key[1], fut.name)
    token = RequestToken()

    def send() -> RequestToken:
        rec = coord.agents.get(agent.handle)
        if rec is None or rec.generation != agent.generation or rec.status == "finished":
            raise TypedError("blocking/request: the agent lifecycle that created this future "
                             "has ended", kind="stale-computation-lifecycle")
        token.edge_id = coord.request_token(actor_key, agent.handle, target,
                                            body[0] if body else ABSENT, token.resolve)
        return token

    run.gate.perform("blocking/request", (target, *body), send, internal=True,
                     encode=lambda t: str(t.edge_id))
    return future_value(token, **{"edge-id": token.edge_id, "request-result": True})
