"""A run of the turn machine in a child process, observed and steered as if it ran here.

Why a process: evaluating an agent's program is CPU-bound Python. In the process of a server
it shares one interpreter lock with everything the server does for the run (storing each
event, rendering it, the websocket loop, page requests), so watching a run made it markedly
slower. In a child it has a core of its own, and the agent's code is behind a process
boundary: a crash of the interpreter, runaway memory or a kill ends the child, not the server.

``ProcessRun.execute`` starts the child (forked from a fork server that imported the runtime
once: measured here, the first event of a run arrives ~0.1 s after the start on a loaded
machine, where importing the runtime alone takes ~0.3 s) and relays, in the calling thread:
each event to the listeners, each pause point to the controller's ``checkpoint`` and its
decision back (decided in a thread of its own: while one agent of a multi-agent run is paused
the others' events keep arriving; the machine shows one pause at a time, ``pause_turns``). Messages are pickled tuples over a pipe, in order:

* child -> parent: ``("event", seq, type, data, ts)``, ``("pause", PausePoint)``, ``("done",)``,
  ``("crashed", message, traceback)``, ``("limit", message, kind)`` (the run's time limit passed
  inside one long call: the child ends itself, ``limits.watch_overrun``), ``("pulse",)``;
* parent -> child: ``("flags", {kind: wants_pause, "agents": [handle]})``, ``("decision", Decision)``,
  ``("ack", seq)``.

The run may be at most ``AHEAD`` events ahead of what the parent's listeners took: with a
core of its own, a fast run would otherwise outpace storing and showing its events, and what
a person watches would lag further and further behind the run (measured: ~1 s behind after
300 fast steps). The parent acknowledges when it has caught up with the pipe, and also every
``ACK_EVERY`` events while it has not: acknowledging only when caught up stalled the run
whenever the parent stayed a few events behind, although it never fell ``AHEAD`` behind.

The controller's answers to ``wants_pause`` are mirrored into the child whenever they may have
changed (``Controller.watch``), so the machine asks them as cheaply as in-process. The child
writes the run's effect journal itself (``journal.py``), before it goes on, since events in
the pipe are lost if the parent dies. If the parent goes away, the child ends at once: a run
nobody stores must not go on performing effects.

The child runs under the run's limits (``limits.py``): its data limit is the run's memory
limit, and a watchdog thread ends it once its evaluation is well past its time limit inside
one long call. ``kill`` ends it from here: the IDE's Stop when the run reaches no pause point.

A watchdog thread needs the interpreter lock, and one call in C (squaring a huge integer)
holds it until it returns. So the child also sends a ``pulse`` every ``PULSE`` seconds from a
thread of its own, and the parent ends a child it has heard nothing from for longer than the
run's time limit plus ``SILENCE_GRACE``: only a call that kept every thread of the child from
running that long is that silent (model calls, pauses and effects wait with the lock
released), and no evaluation may run that long.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import queue
import sys
import threading
import time
import traceback
import types
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from . import api
from . import events as ev
from .api import Controller, Decision, PausePoint, RunConfig
from .limits import process_memory, watch_overrun

PAUSE_KINDS = (api.BEFORE_MODEL, api.AFTER_COMPLETION, api.BEFORE_EFFECT, api.ON_ERROR, api.ON_MODEL_ERROR)
AGENT_FLAGS = "agents"   # in the mirrored flags: the agents a pause was requested for
AHEAD = 16            # events the run may be ahead of the parent's listeners before it waits
ACK_EVERY = AHEAD // 2
EXIT_ORPHANED = 75    # the child's exit status when its parent went away
EXIT_LIMIT = 76       # the child's exit status when it ended itself past its time limit
PULSE = 0.5           # seconds between the child's pulses
SILENCE_GRACE = 5.0   # a child silent for its time limit plus this is inside one long C call
LONG_CALL = "Time limit exceeded (the run was ended inside one long call)"


class RunProcessFailed(Exception):
    """The run ended with an error outside the language (a bad model spec, an internal bug)."""

    def __init__(self, message: str, detail: str = "", kind: str = "internal") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail
        self.kind = kind   # "internal", or the kind of the limit that ended the run


class RunProcessDied(Exception):
    """The child ended before the run did (killed, out of memory, the interpreter crashed)."""

    def __init__(self, exitcode: Optional[int]) -> None:
        how = ("was killed by signal %d" % -exitcode if exitcode is not None and exitcode < 0
               else f"exited with status {exitcode}")
        super().__init__(f"the run's process {how} before the run ended")
        self.exitcode = exitcode


@dataclass
class _Payload:
    config: dict[str, Any]
    record: Any
    fork_at: Optional[int]
    start_seq: int
    journal_path: Optional[str]
    segment: int
    interactive: bool
    flags: dict[str, bool]
    stack_mb: int
    recursion: int
    env: dict[str, str] = field(default_factory=dict)


_context_lock = threading.Lock()
_start_lock = threading.Lock()
_context: Any = None


def _mp_context() -> Any:
    """The fork server context. Its server imports the runtime once; each run is a fork of it:
    no inherited threads, sockets or database connections of the parent."""
    global _context
    with _context_lock:
        if _context is None:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload([__name__, "spellide.spell.machine"])
            _context = ctx
        return _context


@contextmanager
def _without_main_module() -> Iterator[None]:
    """While a child starts, the parent's main module is hidden. multiprocessing runs the
    parent's main script again in every child it starts this way (to find objects defined
    there): a run's child needs none of them, and that script may be a server's entry point
    (slow to import) or a script without a main guard (which would start itself again)."""
    with _start_lock:
        main = sys.modules.get("__main__")
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            yield
        finally:
            if main is not None:
                sys.modules["__main__"] = main


class ProcessRun:
    """``machine.Run`` in a child process; ``execute`` blocks the calling thread like
    ``Run.execute`` and raises ``RunProcessFailed`` / ``RunProcessDied`` for a run that did not
    end by the language's rules (those end with a ``run_finished`` / ``run_failed`` event)."""

    def __init__(self, config: RunConfig, *, listeners: list[Callable[[ev.Event], None]] | tuple = (),
                 controller: Optional[Controller] = None, record: Any = None, fork_at: Optional[int] = None,
                 start_seq: int = 0, journal_path: Optional[str | Path] = None, segment: int = 0,
                 stack_mb: int = 512, recursion: int = 200_000) -> None:
        self.config = config
        self.listeners = list(listeners)
        self.controller = controller or Controller()
        self.record = record
        self.fork_at = fork_at
        self.start_seq = start_seq
        self.last_seq = start_seq
        self.journal_path = None if journal_path is None else str(journal_path)
        self.segment = segment
        self.stack_mb = stack_mb
        self.recursion = recursion
        self.process: Any = None
        self._conn: Any = None
        self._send_lock = threading.Lock()
        self._ended = False
        self.killed = False   # ended by ``kill`` (its ``RunProcessDied`` is expected)

    def _watch_child(self) -> None:
        """A child that dies while its run waits at a pause point for a person: release the
        pause, so the death is reported now rather than at the person's next action."""
        multiprocessing.connection.wait([self.process.sentinel])
        if not self._ended:
            self.controller.close()

    def _flags(self) -> dict[str, Any]:
        flags: dict[str, Any] = {kind: bool(self.controller.wants_pause(kind)) for kind in PAUSE_KINDS}
        flags[AGENT_FLAGS] = sorted(self.controller.agent_pause_requests())
        return flags

    def _send(self, message: tuple) -> None:
        with self._send_lock:
            if self._conn is None:
                return
            try:
                self._conn.send(message)
            except (OSError, ValueError):   # the child is gone; the relay loop sees it next
                pass

    def more_waiting(self) -> bool:
        """Whether more of the run's messages wait in the pipe (for a listener, on the relaying
        thread: it may batch what it does with them)."""
        try:
            return self._conn is not None and self._conn.poll()
        except (OSError, ValueError):   # closed meanwhile: nothing more comes
            return False

    def _send_flags(self) -> None:
        self._send(("flags", self._flags()))

    def kill(self) -> None:
        """End the child now: a Stop it cannot see (its run is inside one long builtin or loop,
        away from any pause point) must still end it. ``execute`` then raises
        ``RunProcessDied`` with ``killed`` set; the journal has every effect it executed."""
        self.killed = True
        process = self.process
        if process is not None and process.is_alive():
            process.kill()

    def execute(self) -> None:
        ctx = _mp_context()
        parent_conn, child_conn = ctx.Pipe(duplex=True)
        payload = _Payload(self.config.to_json(), self.record, self.fork_at, self.start_seq, self.journal_path,
                           self.segment, bool(self.controller.interactive), self._flags(), self.stack_mb,
                           self.recursion, dict(os.environ))
        self.process = ctx.Process(target=_child_main, args=(child_conn, payload), daemon=True,
                                   name="spell-run")
        with _without_main_module():
            self.process.start()
        child_conn.close()
        with self._send_lock:
            self._conn = parent_conn
        self.controller.watch(self._send_flags)
        self._send_flags()   # a request that came while the child started
        threading.Thread(target=self._watch_child, name="spell-run-watch", daemon=True).start()
        try:
            self._relay(parent_conn)
        finally:
            self._ended = True
            with self._send_lock:
                self._conn = None
                parent_conn.close()   # the child ends when it sees the pipe close
            self.process.join(5)
            if self.process.is_alive():
                self.process.kill()
                self.process.join(5)

    def _decide(self, point: PausePoint) -> None:
        """Ask the controller for ``point``'s decision and send it. The machine shows one pause
        at a time (``pause_turns``), so at most one of these waits at once."""
        decision = self.controller.checkpoint(point)
        self._send_flags()    # the pause consumed a pause request: before the decision
        self._send(("decision", decision))

    def _silence_limit(self) -> Optional[float]:
        """How long the child may be silent (see the module's docstring); None: no limit."""
        limits = [t for t in (self.config.step_time_limit, self.config.run_time_limit) if t]
        return min(limits) + SILENCE_GRACE if limits else None

    def _relay(self, conn: Any) -> None:
        acked = self.last_seq
        silence = self._silence_limit()
        while True:
            if self.last_seq > acked and (self.last_seq - acked >= ACK_EVERY or not self.more_waiting()):
                self._send(("ack", self.last_seq))   # the run may go on
                acked = self.last_seq
            try:
                if silence is not None and not conn.poll(silence):
                    self.process.kill()
                    self.process.join(5)
                    raise RunProcessFailed(LONG_CALL, kind="timeout")
                message = conn.recv()
            except (EOFError, OSError):
                self.process.join(5)
                if self.process.exitcode == EXIT_LIMIT:   # its message could not be sent in time
                    raise RunProcessFailed(LONG_CALL, kind="timeout") from None
                raise RunProcessDied(self.process.exitcode) from None
            kind = message[0]
            if kind == "pulse":
                continue
            if kind == "event":
                event = ev.Event(message[1], message[2], message[3], message[4])
                self.last_seq = event.seq
                if event.type == ev.PAUSED:
                    self.controller.pause_coming()
                for listener in self.listeners:
                    listener(event)
            elif kind == "pause":
                # decided in a thread of its own: while one agent is paused, the others' events
                # must go on reaching the listeners (and their acknowledgements the child)
                threading.Thread(target=self._decide, args=(message[1],), name="spell-run-pause",
                                 daemon=True).start()
            elif kind == "done":
                self._ended = True
                return
            elif kind == "crashed":
                self._ended = True
                raise RunProcessFailed(message[1], message[2])
            elif kind == "limit":
                self._ended = True
                raise RunProcessFailed(message[1], kind=message[2])


# --- the child ------------------------------------------------------------------------------
class _ChildController(Controller):
    """Answers ``wants_pause`` from the parent's mirrored flags; a checkpoint is a round trip."""

    def __init__(self, interactive: bool, flags: dict[str, Any], outbox: "queue.Queue[Any]") -> None:
        self.interactive = interactive
        self.decisions: "queue.Queue[Decision]" = queue.Queue()
        self._outbox = outbox
        self._round_trip = threading.Lock()
        self.set_flags(flags)

    def set_flags(self, flags: dict[str, Any]) -> None:
        """The parent's answers, mirrored (``ProcessRun._flags``)."""
        self._agents = frozenset(flags.get(AGENT_FLAGS) or ())
        self.flags = flags

    def wants_pause(self, kind: str) -> bool:
        return bool(self.flags.get(kind, False))

    def agent_pause_requests(self) -> frozenset[str]:
        return self._agents

    def checkpoint(self, point: PausePoint) -> Decision:
        # one round trip at a time: a decision is the answer to the last pause sent, so two
        # threads asking at once must not take each other's (the machine serialises them too)
        with self._round_trip:
            self._outbox.put(("pause", point))
            return self.decisions.get()


def _child_main(conn: Any, payload: _Payload) -> None:
    os.environ.clear()
    os.environ.update(payload.env)   # the parent's, now (the fork server's is from its start)
    from .journal import EffectJournal
    from .machine import Run, execute_with_deep_stack

    outbox: "queue.Queue[Any]" = queue.Queue()
    controller = _ChildController(payload.interactive, payload.flags, outbox)
    acked = threading.Condition()
    taken = [payload.start_seq]   # the last event the parent's listeners took
    started_sent = threading.Event()

    def send_loop() -> None:
        while True:
            message = outbox.get()
            if message is None:
                return
            try:
                conn.send(message)
            except (OSError, ValueError):
                os._exit(EXIT_ORPHANED)
            if message[0] == "event" and message[2] == ev.RUN_STARTED:
                started_sent.set()

    def receive_loop() -> None:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                os._exit(EXIT_ORPHANED)
            if message[0] == "flags":
                controller.set_flags(message[1])
            elif message[0] == "decision":
                controller.decisions.put(message[1])
            elif message[0] == "ack":
                with acked:
                    taken[0] = max(taken[0], message[1])
                    acked.notify_all()

    sender = threading.Thread(target=send_loop, name="spell-run-send", daemon=True)
    sender.start()
    threading.Thread(target=receive_loop, name="spell-run-receive", daemon=True).start()
    journal = (EffectJournal(payload.journal_path, payload.segment)
               if payload.journal_path is not None else None)

    def forward(event: ev.Event) -> None:
        with acked:
            while event.seq - taken[0] > AHEAD:
                acked.wait()
        outbox.put(("event", event.seq, event.type, event.data, event.ts))
        if event.type == ev.RUN_STARTED:
            # sent before the evaluation starts: one long call that holds the interpreter lock
            # (a C builtin) would keep it from the sender, and the run would show as queued
            started_sent.wait(5)

    def run() -> None:
        listeners = [forward] if journal is None else [journal, forward]   # journaled before sent
        config = RunConfig.from_json(payload.config)
        # the limit is set here, in the thread with the run's big stack, so that it counts the
        # stack as already there (limits.process_memory)
        with process_memory(config.memory_mb):
            machine = Run(config, listeners=listeners, controller=controller, record=payload.record,
                          fork_at=payload.fork_at, start_seq=payload.start_seq)
            clock[0] = machine.clock
            machine.execute()

    def end_past_limit(message: str) -> None:
        outbox.put(("limit", message, "timeout"))   # after every event sent so far
        outbox.put(None)
        sender.join(5)
        os._exit(EXIT_LIMIT)

    def pulse() -> None:
        while True:
            time.sleep(PULSE)
            outbox.put(("pulse",))

    clock: list[Any] = [None]
    watch_overrun(lambda: clock[0], end_past_limit)
    threading.Thread(target=pulse, name="spell-run-pulse", daemon=True).start()   # before the run's thread
    try:
        execute_with_deep_stack(run, payload.stack_mb, payload.recursion)
        outbox.put(("done",))
    except BaseException as e:  # not a Spell error (those end the run with an event)
        message = str(e) if isinstance(e, ValueError) else f"internal error: {type(e).__name__}: {e}"
        outbox.put(("crashed", message, traceback.format_exc()))
    finally:
        if journal is not None:
            journal.close()
        outbox.put(None)
        sender.join()
