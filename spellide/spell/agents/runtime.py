"""Agents as actors: each lifecycle of a spawned or woken agent runs the turn machine's step
chain in a thread of its own, in the run's process, sharing the run's coordinator, globals,
effect gate, event bus, budget and model.

``Actor`` is what a thread knows about the agent it runs (handle, generation, its own prefix
carry and edit traces); the machine keeps it thread-local. ``Resume`` is how a wait continues
the program: in tail position it goes up to the machine like a ``TailCall`` and the machine
evaluates the received program in its loop (trampolined: a thousand waits use no more host
stack than one); elsewhere the wait evaluates it in place, as a non-tail self-call recurses.

Thread stacks. A lifecycle thread gets ``AGENT_STACK_MB`` of stack (the root keeps the big
stack of ``execute_with_deep_stack``): fifty sleeping agents must fit under the run's memory
limit, which counts every thread's reserved stack (50 x 8 MB = 400 MB of the default 1 GB).
8 MB holds the evaluator's own limit of 3,000 nested calls and printing 2,500-deep data. An
agent whose thread cannot start is a ``memory-limit`` error of the spawner.
"""

from __future__ import annotations

import contextvars
import threading
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

from ..data import Keyword, Map, kw, smap
from ..errors import SpellError, TypedError
from ..evaluator import TailCall
from .coordinator import MAIN, Coordinator, Launch, Scheduler, show

AGENT_STACK_MB = 8
JOIN_SECONDS = 5.0   # how long the end of a run waits for abandoned agents to unwind
_stack_lock = threading.Lock()


@dataclass
class Actor:
    """The agent a thread runs (``ctx`` = ``main``: the agent's runner; futures use others)."""

    handle: Keyword
    generation: int
    ctx: str = "main"
    carry: Any = None                       # edits.PrefixCarry of this agent's last prefix
    edit_traces: dict = field(default_factory=dict)
    step: Optional[int] = None              # the step this actor is in (None: between steps)

    @property
    def key(self) -> tuple:
        return (show(self.handle), self.generation, self.ctx)


class Resume(TailCall):
    """A wait's continuation in tail position: evaluate ``form`` (printed: ``text``) next."""

    __slots__ = ("form", "text", "site")

    def __init__(self, form: Any, text: str, site: str):
        super().__init__(None, None)
        self.form = form
        self.text = text
        self.site = site


class RunToBlock(Scheduler):
    """The run-to-block scheduler of spell-agents.md section 10 [RTB]: one actor runs until it
    blocks in a wait or ends; actors that start or wake queue FIFO for their turn. Model calls
    do not hand the turn on. Deterministic interleaving for tests and replays."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._owner: Optional[int] = None
        self._queue: deque = deque()

    def enter(self) -> None:
        me = threading.get_ident()
        with self._cond:
            self._queue.append(me)
            while self._owner is not None or self._queue[0] != me:
                self._cond.wait()
            self._queue.popleft()
            self._owner = me

    def leave(self) -> None:
        with self._cond:
            if self._owner == threading.get_ident():
                self._owner = None
                self._cond.notify_all()

    @contextmanager
    def blocked(self) -> Iterator[None]:
        self.leave()
        try:
            yield
        finally:
            self.enter()


SCHEDULERS = {"free": Scheduler, "rtb": RunToBlock}


class AgentRuntime:
    """The run's multi-agent part: its coordinator and the threads of its lifecycles."""

    def __init__(self, run: Any, max_edges: Optional[int] = None, scheduler: str = "free"):
        if scheduler not in SCHEDULERS:
            raise ValueError(f"unknown scheduler {scheduler!r}: use {' or '.join(SCHEDULERS)}")
        self.run = run
        self.scheduler = SCHEDULERS[scheduler]()
        kwargs = {} if max_edges is None else {"max_edges": max_edges}
        self.coordinator = Coordinator(emit=run.bus.emit, launch=self._launch,
                                       scheduler=self.scheduler, **kwargs)
        self.threads: list[threading.Thread] = []
        self.failures: dict[Keyword, str] = {}
        self.at_end = None   # called with the run when the root returned, before close (tests)

    # --- lifecycles -------------------------------------------------------------------------
    def _launch(self, launch: Launch) -> None:
        context = contextvars.copy_context()   # the run's memory limit and friends go along

        def body() -> None:
            context.run(self._lifecycle, launch)

        with _stack_lock:
            prev = threading.stack_size()
            threading.stack_size(AGENT_STACK_MB * 1024 * 1024)
            try:
                t = threading.Thread(target=body, name=f"spell-agent-{launch.handle.full}", daemon=True)
                t.start()
            except RuntimeError:   # "can't start new thread": its stack is past the memory limit
                raise TypedError(f"Cannot start agent {show(launch.handle)}: another thread stack of "
                                 f"{AGENT_STACK_MB} MB does not fit under the run's memory limit "
                                 f"({len(self.threads)} agent threads started so far)",
                                 kind="memory-limit") from None
            finally:
                threading.stack_size(prev)
        self.threads.append(t)

    def _lifecycle(self, launch: Launch) -> None:
        coord = self.coordinator
        actor = Actor(launch.handle, launch.generation)
        self.scheduler.enter()
        try:
            self.run.bind_actor(actor)
            try:
                value = self.run.run_lifecycle(actor, launch.program, launch.site, launch.spawner_step)
            except SpellError as err:
                if err.kind == "coordinator-closed" or coord.closed:
                    return
                self.failures[launch.handle] = err.message
                self._finish_failed(actor, launch, err)
                return
            except RecursionError:
                err = SpellError("Stack depth exceeded while running the program", kind="stack")
                self.failures[launch.handle] = err.message
                self._finish_failed(actor, launch, err)
                return
            except Exception as e:  # noqa: BLE001 - a runtime bug ends this lifecycle, not the run
                err = SpellError(f"Internal error: {type(e).__name__}: {e}", kind="internal")
                self.failures[launch.handle] = err.message
                self._finish_failed(actor, launch, err)
                return
            try:
                coord.finish(actor.key, launch.handle, launch.generation, value)
            except SpellError:   # a strict replay diverged at this very transition
                return
        finally:
            self.scheduler.leave()

    def _finish_failed(self, actor: Actor, launch: Launch, err: SpellError) -> None:
        try:
            self.coordinator.finish(actor.key, launch.handle, launch.generation,
                                    child_failure(launch.handle, err), failed=True)
        except SpellError:   # the replay diverged or the run closed meanwhile: nothing to tell
            pass

    def end(self) -> None:
        """The root returned: close the coordinator and give abandoned agents a moment to
        unwind (sleepers wake with ``:coordinator-closed``; a model call in flight ends)."""
        self.coordinator.close()
        self.run.globals_closed()
        self.scheduler.leave()
        import time
        deadline = time.monotonic() + JOIN_SECONDS
        for t in list(self.threads):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            t.join(left)


def child_failure(handle: Keyword, err: SpellError) -> Map:
    """The value a failed lifecycle's claimed slots receive (spell-agents.md section 1.3)."""
    phase = getattr(err, "phase", None) or {"model-error": "completion-source"}.get(err.kind, "lifecycle")
    exc = smap(Keyword("exception", "spell"), True, kw("class"), type(err).__name__,
               kw("message"), err.message, kw("data"), smap(kw("kind"), kw(err.kind)))
    return smap(Keyword("child-failure", "spell"), True, kw("handle"), handle, kw("phase"), kw(phase),
                kw("exception"), exc)


__all__ = ["AGENT_STACK_MB", "Actor", "AgentRuntime", "MAIN", "Resume", "RunToBlock", "child_failure"]
