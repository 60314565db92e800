"""The one interface through which anything outside the core observes a run.

The turn machine emits these events as things happen, each with a per-run sequence
number, so a client that reconnects can ask for exactly what it missed. The IDE persists
and broadcasts them; the CLI collects them. Payloads are plain JSON-able dicts so that
events can cross process boundaries unchanged.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

# Event types, in the order a step normally produces them.
RUN_STARTED = "run_started"          # {config}
STEP_STARTED = "step_started"        # {step, parent, depth, prefix, model, agent?, generation?}
COMPLETION_DELTA = "completion_delta"  # {step, text}  (streaming providers only)
COMPLETION = "completion"            # {step, completion, usage, model, transport, request?} (request: models/sent.py)
PROGRAM = "program"                  # {step, program, provenance, receipt?}  (after assembly/edits;
#                                      receipt: true - a receipt's rewrite of the step's program, which
#                                      stays the step's own: a record keeps it under ``received``)
EFFECT = "effect"                    # {step, effect: EffectRecord.to_json()}
STEP_FINISHED = "step_finished"      # {step, value, error, continued_by}
PAUSED = "paused"                    # {point, step, text, effect, error, reason, agent, generation, hold}
RESUMED = "resumed"                  # {action, edited, step, point, agent, generation, text?}
RUN_FINISHED = "run_finished"        # {value}
RUN_FAILED = "run_failed"            # {error}
DIVERGED = "diverged"                # {step, what}   (strict replay)

# Multi-agent runs (spell-agents.md). Every step of such a run also carries ``agent`` (the
# handle as printed, e.g. ":main", ":w") and ``generation`` (the agent's lifecycle, from 1) in
# its STEP_STARTED; a single-agent run's steps belong to ":main" generation 1. Once the run has
# two agents, a STEP_STARTED or EFFECT may also carry ``turns`` {at, order, actors_at, actors}:
# the turnstile's order committed since the previous such event (Coordinator.take_turns), so the
# events keep the order as far as they go, even when the run's process dies (Record.from_events).
AGENT = "agent"          # {agent, parent, status, generation, step?}  an agent was registered or
#                          changed status: status is one of AGENT_STATUSES; parent None for :main
MESSAGE = "message"      # {id, kind, sender, targets, edge?, body?, step?}  a message was enqueued
#                          (kind: MESSAGE_KINDS; sender/targets handles as printed; body printed
#                          Spell, clipped; step: the sender's current step, None for the runtime)
RECEIPT = "receipt"      # {agent, step, site, messages: [{id, name}]}  a drain bound messages to
#                          msg-N names in the agent's program (site: startup, pre-eval,
#                          wait-resume, dormant-resume, receive)
WARNING = "warning"      # {message, data}  a coordinator warning (detached edges, ...)
AGENTS_ENDED = "agents_ended"   # {agents, warnings, journal, turns}  once, when a multi-agent run's
#                          agents have ended (before run_finished / run_failed, or after it when
#                          the run died of a stack or memory error): what a record keeps of them
#                          (record.py, version 2), so a record rebuilt from events replays strictly.
#                          A run whose process was killed has none: its rebuilt record has the
#                          ``turns`` its step and effect events carried, marked partial.

AGENT_STATUSES = ("running", "waiting", "sleeping", "finished", "failed")
MESSAGE_KINDS = ("send", "request", "report", "cancel", "future", "coordinator")

ALL_TYPES = (RUN_STARTED, STEP_STARTED, COMPLETION_DELTA, COMPLETION, PROGRAM, EFFECT,
             STEP_FINISHED, PAUSED, RESUMED, RUN_FINISHED, RUN_FAILED, DIVERGED,
             AGENT, MESSAGE, RECEIPT, WARNING, AGENTS_ENDED)


@dataclass(frozen=True)
class Event:
    seq: int
    type: str
    data: dict[str, Any]
    ts: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "type": self.type, "ts": self.ts, "data": self.data}


class Listener(Protocol):
    def __call__(self, event: Event) -> None: ...


class EventBus:
    """Assigns sequence numbers and fans events out to listeners (thread-safe)."""

    def __init__(self, listeners: list[Callable[[Event], None]] | None = None, start_seq: int = 0):
        self._listeners = list(listeners or [])
        self._seq = start_seq
        # re-entrant: the coordinator emits under its lock, and a listener (a test's hook)
        # may act on the coordinator, which emits again, from the same thread
        self._lock = threading.RLock()

    def subscribe(self, listener: Callable[[Event], None]) -> None:
        self._listeners.append(listener)

    def emit(self, type_: str, **data: Any) -> Event:
        with self._lock:
            self._seq += 1
            event = Event(self._seq, type_, data)
            for listener in self._listeners:
                listener(event)
        return event

    @property
    def seq(self) -> int:
        return self._seq
