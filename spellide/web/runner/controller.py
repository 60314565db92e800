"""The IDE's controller: holds a run at a pause point until a person acts.

The turn machine asks ``wants_pause(kind)`` cheaply at every pause point (in the run's process,
from answers mirrored there: ``watch``) and calls ``checkpoint(point)`` when that answers true or
a breakpoint matched; ``checkpoint`` (in the thread relaying the run's process) waits on a
condition variable until ``act`` (called from a request or websocket handler thread) supplies a
decision. Stepping mode is the machine's (a ``step`` decision makes it pause at the next pause
point); the controller only remembers that a pause or a stop was requested.

In a multi-agent run the machine shows one pause at a time (``spellide/spell/pause_turns.py``),
whichever agent reached it (``PausePoint.agent``). A pause request is for the whole run (the
first agent to reach a pause point shows it and every other agent waits at its own until the
person resumes; Resume, Step and Stop then apply to the run) or, with ``agent``, for one agent
only (it stops at its next pause point, the others go on). An action naming an agent other
than the one whose pause is shown is refused, so a decision never reaches the wrong agent.
A whole-run Pause while one worker's own pause is shown stops the others too: each waits at its
next pause point, and after that worker resumes the next pause is shown, holding the run.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from spellide.spell import api
from spellide.spell.api import Controller, Decision, PausePoint

from ..models import MAIN_AGENT   # the root agent, a single-agent run's only one

# Actions a person can take (controls, websocket frames).
PAUSE = "pause"
RESUME = "resume"
STEP = "step"
STOP = "stop"
EDIT = "edit"          # with text: continue with the edited text (or step, with step=True)
APPROVE = "approve"
REJECT = "reject"
ACTIONS = (PAUSE, RESUME, STEP, STOP, EDIT, APPROVE, REJECT)

EDITABLE_POINTS = (api.BEFORE_MODEL, api.AFTER_COMPLETION, api.ON_ERROR, api.ON_MODEL_ERROR)
PAUSE_ARRIVING = 5.0   # seconds an action waits for a pause the run announced to arrive


@dataclass
class ActResult:
    ok: bool
    message: str = ""
    error: Optional[str] = None          # for refused edits: the reader's message
    line: Optional[int] = None
    col: Optional[int] = None
    text: Optional[str] = None           # the text the person typed (kept on refusal)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "message": self.message, "error": self.error, "line": self.line,
                "col": self.col, "text": self.text}


PREFIX_POINTS = (api.BEFORE_MODEL, api.ON_MODEL_ERROR)   # the edited text is a prefix the model continues


def check_parse(kind: str, text: str) -> Optional[ActResult]:
    """Refuse an edit that cannot be read, with line:col. Text that merely ends early (open
    forms) is accepted: a prefix is open by nature, and the machine closes a program's open
    forms when it assembles it (it validates again and re-asks if assembly fails). A prefix
    is checked as a prefix: ending inside a string, a comment or a character literal would
    swallow the model's completion, so that is refused too."""
    if kind in PREFIX_POINTS:
        err = api.check_prefix(text)
        if err is None:
            return None
        return ActResult(False, "edit refused", error=err.reason, line=err.line, col=err.col, text=text)
    from spellide.spell.api import ReadError, read_all
    try:
        read_all(text)
    except ReadError as e:
        if getattr(e, "incomplete", False):
            return None
        return ActResult(False, "edit refused", error=getattr(e, "reason", None) or e.message,
                         line=e.line, col=e.col, text=text)
    return None


class IdeController(Controller):
    interactive = True

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.pause_requested = False
        self.agent_pauses: set[str] = set()   # agents to pause at their next pause point
        self.stop_requested = False
        self.pending: Optional[PausePoint] = None
        self._decision: Optional[Decision] = None
        self.finished = False
        self.pauses = 0
        self.stop_answered = False   # the run reached a pause point after Stop: it is ending
        self._coming = False         # a pause was announced; its checkpoint has not arrived yet
        self._watchers: list[Callable[[], None]] = []
        self._on_stop: list[Callable[[], None]] = []

    def watch(self, callback: Callable[[], None]) -> None:
        self._watchers.append(callback)

    def _changed(self) -> None:
        for callback in self._watchers:
            callback()

    def on_stop(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when Stop is asked while the run is not at a pause point (it sees
        the request only when it reaches one; the service ends its process if it does not)."""
        self._on_stop.append(callback)

    # --- called by the thread relaying the run's process -------------------------------------
    def wants_pause(self, kind: str) -> bool:
        return self.pause_requested or self.stop_requested

    def agent_pause_requests(self) -> frozenset[str]:
        return frozenset(self.agent_pauses)

    def pause_coming(self) -> None:
        with self._cond:
            self._coming = True

    def checkpoint(self, point: PausePoint) -> Decision:
        with self._cond:
            self._coming = False
            if self.stop_requested or self.finished:
                self.stop_answered = self.stop_answered or self.stop_requested
                return Decision(api.STOP)
            self.pause_requested = False
            self.agent_pauses.discard(point.agent)
            self.pending = point
            self.pauses += 1
            self._decision = None
            self._cond.notify_all()   # an act() waiting for this announced pause
            while self._decision is None:
                self._cond.wait()
            decision = self._decision
            self._decision = None
            self.pending = None
            return decision

    def close(self) -> None:
        """The run ended: release anything still waiting."""
        with self._cond:
            self.finished = True
            if self.pending is not None and self._decision is None:
                self._decision = Decision(api.STOP)
            self._cond.notify_all()

    # --- called by controls (request / websocket threads) ----------------------------------
    @property
    def paused(self) -> bool:
        return self.pending is not None

    def act(self, action: str, text: Optional[str] = None, author: Optional[str] = None,
            *, step: bool = False, agent: Optional[str] = None) -> ActResult:
        """Take a person's action. ``agent`` (a handle of the run, checked by the caller) makes
        Pause and Resume one agent's; any other action naming it needs that agent's pause shown."""
        with self._cond:
            if self.finished:
                return ActResult(False, "the run is not active")
            if agent is not None and action in (PAUSE, RESUME) and not self._at(agent):
                return self._agent_request(action, agent)
            if agent is not None and action != STOP and self.pending is not None and self.pending.agent != agent:
                return ActResult(False, f"the pause shown is agent {self.pending.agent}'s, not {agent}'s",
                                 text=text)
            point = self.pending
            if action == PAUSE:
                if point is not None and (point.hold or point.agent in (None, MAIN_AGENT)):
                    return ActResult(True, "already paused")
                self.pause_requested = True
                self._changed()
                if point is not None:
                    # one worker's pause is shown and the others go on: now they stop too (each
                    # at its next pause point, waiting there; the next one's pause is shown next)
                    return ActResult(True, "pause requested: the other agents stop at their next pause point")
                return ActResult(True, "pause requested: the run stops at its next pause point")
            if action == STOP:
                first = not self.stop_requested
                self.stop_requested = True
                self._changed()
                if point is not None:
                    self.stop_answered = True
                    self._decide(Decision(api.STOP, None, author))
                elif first:
                    for callback in self._on_stop:
                        callback()
                return ActResult(True, "stop requested")
            if point is None and self._coming:
                # the run announced its pause (a page may show it already): its checkpoint is
                # on the way from the run's process
                self._cond.wait_for(lambda: self.pending is not None or not self._coming or self.finished,
                                    PAUSE_ARRIVING)
                point = self.pending
                if self.finished:
                    return ActResult(False, "the run is not active")
            if point is None:
                if action in (RESUME, STEP) and (self.pause_requested or self.agent_pauses):
                    # not yet at a pause point: cancel the requests (resume) or keep them (step)
                    if action == RESUME:
                        self.pause_requested = False
                        self.agent_pauses.clear()
                    self._changed()
                    return ActResult(True, "pause cancelled" if action == RESUME else "stepping")
                return ActResult(False, "the run is not paused")
            if action in (APPROVE, REJECT):
                if point.kind != api.BEFORE_EFFECT:
                    return ActResult(False, "there is no effect waiting for approval")
                self._decide(Decision(api.CONTINUE if action == APPROVE else api.REJECT, None, author))
                return ActResult(True, "effect approved" if action == APPROVE else "effect rejected")
            if action == EDIT or text is not None:
                if text is None:
                    return ActResult(False, "an edit needs the edited text")
                if point.kind not in EDITABLE_POINTS:
                    return ActResult(False, f"nothing to edit at a {point.kind} pause", text=text)
                refused = check_parse(point.kind, text)
                if refused is not None:
                    return refused
                kind = api.STEP if (step or action == STEP) else api.CONTINUE
                unchanged = text == point.text
                self._decide(Decision(kind, None if unchanged else text, author))
                return ActResult(True, "resumed" if unchanged else "edit accepted", text=text)
            if action in (RESUME, STEP):
                kind = api.STEP if action == STEP else api.CONTINUE
                if point.kind == api.BEFORE_EFFECT:
                    kind = api.CONTINUE if action == RESUME else api.STEP
                self._decide(Decision(kind, None, author))
                return ActResult(True, "stepping" if action == STEP else "resumed")
            return ActResult(False, f"unknown action {action!r}")

    def _at(self, agent: str) -> bool:
        """Whether the pause shown is ``agent``'s."""
        return self.pending is not None and self.pending.agent == agent

    def _agent_request(self, action: str, agent: str) -> ActResult:
        """Pause one agent at its next pause point (the others go on), or cancel that."""
        if action == PAUSE:
            self.agent_pauses.add(agent)
            self._changed()
            return ActResult(True, f"pause requested: agent {agent} stops at its next pause point")
        if agent not in self.agent_pauses:
            return ActResult(False, f"agent {agent} is not paused")
        self.agent_pauses.discard(agent)
        self._changed()
        return ActResult(True, f"pause of agent {agent} cancelled")

    def _decide(self, decision: Decision) -> None:
        self._decision = decision
        self._cond.notify_all()
