"""The turn machine: runs a Spell agent step by step.

A *step* is one model call and the evaluation of the program it completes. Extension chains
(``'(!extend)`` as the trailing expression, ``!call-now``, recovery) are nested self-calls in
the language; here a self-call in tail position comes back from the evaluator as a
``TailCall`` and the machine loops instead of recursing, so a chain of 10,000 steps uses
constant Python stack and keeps only the live program in memory. Self-calls whose value the
program goes on to use (``(cat "a" (!llm-self ...))``) recurse as usual.

Everything observable leaves through events (``events.py``); everything effectful goes
through the ``EffectGate``; a ``Controller`` decides at every pause point.

Agents (spell-agents.md). The root program is the lifecycle of agent ``:main``; agents it
spawns run their lifecycles through the same methods in threads of their own
(``agents/runtime.py``), sharing the run's coordinator, globals, gate, bus, budget and model.
What belongs to one agent lives in its ``Actor``, bound to the thread (``actor``): its prefix
carry, edit traces and current step. Step ids stay unique and ordered across agents, and every
step records its ``agent`` and ``generation``. A wait continues the program: in tail position
it comes back as a ``Resume`` and ``_run_program`` / ``_drive`` evaluate the received program
in their loop, so waits are trampolined like self-calls.
"""

from __future__ import annotations

import random
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import immutables

from . import api, edits, namespaces, program_trace
from . import events as ev
from .api import (AFTER_COMPLETION, BEFORE_EFFECT, BEFORE_MODEL, ON_ERROR, ON_MODEL_ERROR,
                  Controller, Decision, PausePoint, RunConfig)
from .assembly import assemble, balance_parens, span_in_text
from .prefix import check_prefix
from .data import Builtin, List, Map, Symbol, Vector, kw
from .effects.cache import EffectCache, EffectRecord, digest
from .effects.gate import LIVE_MODE, REPLAY_MODE, STRICT_MODE, EffectGate
from .errors import ReadError, SpellError, TypedError
from .evaluator import TailCall, core_builtins, evaluate, make_context, make_eval, apply_fn
from .agents.future_waits import ASK_AWAIT
from .futures import SELF_CALL_IN_FUTURE, FuturePool, refuse_in_future, settle
from .limits import RunClock, memory_error, memory_limit
from .models.base import Completion, Model, ModelError, ModelRequest, Usage
from .printer import pr_str
from .reader import read_all, read_one
from .record import Record, RecordedEdit
from .turns import turn_builtins
from .agents import receipt as rcpt
from .agents.coordinator import K_BODY, show as show_handle
from .agents.runtime import MAIN, Actor, AgentRuntime, Resume
from .pause_turns import PauseTurns, Stepping

RECOVERY_ATTEMPTS = 2
_GATED_HINT = "{ns}/ is an effect namespace - use it in the trailing expression via eval"


@dataclass
class Frame:
    """What evaluation-time builtins need to know about where they run."""

    run: "Run"
    step: int          # -1 for the root program (not a model call)
    depth: int         # depth of the program being evaluated (root = 1)


@dataclass
class RunResult:
    value: Any = None
    value_text: Optional[str] = None
    error: Optional[str] = None
    error_kind: Optional[str] = None
    error_span: Optional[dict] = None
    steps: list[dict] = field(default_factory=list)
    effects: list[dict] = field(default_factory=list)   # all effects, root program's included
    effects_executed: int = 0
    effects_reused: int = 0
    cost: float = 0.0
    status: str = "finished"   # finished | failed | stopped | diverged
    agents: list[dict] = field(default_factory=list)     # {handle, parent, status, generation, calls}
    warnings: list[dict] = field(default_factory=list)   # coordinator warnings {message, data, timestamp_ms}
    journal: list[dict] = field(default_factory=list)    # the coordinator's transitions (section 8.1)

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value_text, "error": self.error, "error_kind": self.error_kind,
                "status": self.status, "steps": self.steps, "effects": self.effects,
                "effects_executed": self.effects_executed, "effects_reused": self.effects_reused,
                "cost": self.cost, "agents": self.agents, "warnings": self.warnings}


def resolve_model(spec: str, record: Optional[Record] = None) -> tuple[Model, Optional[Record]]:
    """``hello`` | ``scripted:FILE`` | ``replay:FILE`` | ``profile:NAME``."""
    from .models.local import HelloModel, NoLiveModel, ScriptedModel
    if spec == "hello":
        return HelloModel(), record
    kind, _, arg = spec.partition(":")
    if kind == "scripted" and arg:
        return ScriptedModel.from_file(arg), record
    if kind == "replay" and arg:
        rec = Record.load(arg)
        return NoLiveModel(rec.model_settings), rec
    if kind == "profile" and arg:
        from .models.profiles import get_model
        return get_model(arg), record
    raise ValueError(f"unknown model {spec!r}: use hello, scripted:FILE, replay:FILE or profile:NAME")


INLINE_ARG_CHARS = 2000
_RECEIVE_KEY = kw("receive?")


def _receive_option(opts: Any) -> bool:
    """``!llm-self``'s options: nil or ``{:receive? bool}``, anything else refused before any
    model call (spell-agents.md section 2.2). A receiving self-call takes the messages waiting
    when its completion returns, before its program runs."""
    if opts is None:
        return False
    if opts is True:   # the machine's own continuations (TailCall.opts)
        return True
    if isinstance(opts, Map) and set(opts) <= {_RECEIVE_KEY} and isinstance(opts.get(_RECEIVE_KEY, False), bool):
        return bool(opts.get(_RECEIVE_KEY, False))
    raise SpellError(f"!llm-self options must be {{:receive? true|false}}, got {pr_str(opts)}")


def _text_arg(text: str) -> str:
    """A model call's prompt as it appears in the effect key and record.

    Prefixes grow with the program; storing each one whole in every effect entry would make
    records grow with steps x program size. Long text is named by its length and digest (so
    the key still changes with any change of the text) with a readable head; the full prefix
    is kept once, with its step.
    """
    if len(text) <= INLINE_ARG_CHARS:
        return text
    return f"{text[:200]}… [{len(text)} chars, sha256 {digest(text)}]"


def _human_range(before: str, after: str, offset: int = 0) -> tuple[int, int]:
    """The region of ``after`` that differs from ``before`` (common prefix/suffix trimmed)."""
    n = min(len(before), len(after))
    i = 0
    while i < n and before[i] == after[i]:
        i += 1
    j = 0
    while j < n - i and before[len(before) - 1 - j] == after[len(after) - 1 - j]:
        j += 1
    return offset + i, offset + len(after) - j


class Run:
    def __init__(self, config: RunConfig, *, model: Optional[Model] = None,
                 listeners: list[Callable[[ev.Event], None]] | tuple = (),
                 controller: Optional[Controller] = None, record: Optional[Record] = None,
                 fork_at: Optional[int] = None, start_seq: int = 0, keep_history: bool = True,
                 effect_namespaces: Optional[dict[str, dict[str, Callable[..., Any]]]] = None,
                 max_edges: Optional[int] = None, scheduler: str = "free"):
        """``max_edges``: the coordinator's capacity of pending edges (default 10,000);
        ``scheduler``: ``free`` (agents run at once) or ``rtb`` (run-to-block, one at a time)."""
        self.config = config
        self._local = threading.local()
        self._count_lock = threading.Lock()
        self._extra_namespaces = dict(effect_namespaces or {})
        if model is None:
            model, spec_record = resolve_model(config.model, record)
            record = record or spec_record
        self.model = model
        self.record_in = record
        self.controller = controller or Controller()
        self.bus = ev.EventBus(list(listeners), start_seq)
        self.agents = AgentRuntime(self, max_edges, scheduler)
        self.coordinator = self.agents.coordinator
        if record is not None and getattr(record, "turns", None):
            if config.cache_mode == STRICT_MODE:
                self.coordinator.replay(record.turns)   # the agents interleave as recorded
            elif config.cache_mode == REPLAY_MODE and fork_at is None:
                # a resumed (or non-strict) replay follows the order as far as the record has
                # it, so its steps get the recorded ids and effects; past it the agents go free
                self.coordinator.replay(record.turns, prefix=True)
        self.keep_history = keep_history
        mode = config.cache_mode if record is not None else LIVE_MODE
        if mode not in api.CACHE_MODES:
            raise ValueError(f"unknown cache mode {mode!r}")
        cache = EffectCache.from_records(record.effects, fork_at) if record else EffectCache()
        self.gate = EffectGate(mode=mode, cache=cache, on_record=self._on_effect,
                               approve=self._approve, printer=pr_str, reader=read_one)
        self.replay_edits = record.edits_by_point(fork_at) if record else {}
        self.recorded_steps = ({s["id"]: s for s in record.steps}
                               if record and mode == STRICT_MODE else {})
        self.store = edits.ValueStore()
        self.model_settings = dict(model.cache_settings())
        self._settings_map = Map({kw(str(k)): v if isinstance(v, (str, int, float, bool)) or v is None
                                  else str(v) for k, v in self.model_settings.items()})
        self.next_step = 0
        self.model_calls = 0
        self.root_actor = Actor(MAIN, 1)
        self.cost = 0.0
        self._stepping = Stepping()         # the agents that pause at their next pause point
        self._pauses = PauseTurns()          # one pause shown at a time; the whole-run hold
        self.clock = RunClock(config.step_time_limit, config.run_time_limit)
        self.steps: dict[int, dict] = {}
        self.root_effects: list[dict] = []
        self.edits_made: list[RecordedEdit] = []
        self.futures = FuturePool(self.gate, self._run_deadline, self._run_limit_message)
        self._builtins = {**core_builtins(), **turn_builtins(), Symbol("future*"): self.futures.builtin}
        self._effects = self._make_effects()
        self._eval = make_eval(self._effects)
        declared = [ns for ns in namespaces.effect_namespaces() if ns.bound]
        gated = {n: _GATED_HINT.format(ns=n)
                 for n in (*(ns.name for ns in declared), "web", *self._extra_namespaces)}
        for ns in declared:
            if not ns.enabled(config):
                gated[ns.name] = ns.unavailable or f"{ns.name}/ is not available in this run"
        self._gated = gated

    # --- effects ---------------------------------------------------------------------------
    def _make_effects(self) -> dict:
        """The effect builtins of this run: the model calls and every declared effect
        namespace its settings enable (``namespaces.py``), each function through the gate."""
        from .agents.namespace import bind_op
        effects: dict[Any, Any] = {
            Symbol("!llm-self"): Builtin("!llm-self", self._llm_self, needs_ctx=True, tail_aware=True),
            Symbol("leaf-llm"): Builtin("leaf-llm", self._leaf_llm, needs_ctx=True),
            Symbol("!ask-await"): ASK_AWAIT,
            Symbol("receive"): Builtin("receive", self._receive, needs_ctx=True,
                                       doc="(receive completion): the program with the messages "
                                           "waiting now received (not evaluated)"),
        }
        setup = namespaces.Setup(self.config, self._apply_spell_fn)
        for ns in namespaces.effect_namespaces():
            if ns.bound and ns.make is not None and ns.enabled(self.config):
                # agents/ ops see their evaluation context (who calls, from which step)
                wrap = ((lambda name, fn, **kw: bind_op(self, name, fn, **kw)) if ns.name == "agents"
                        else self.gate.builtin)
                impls = ns.make(setup)
                if ns.name == "globals":
                    # with several agents, globals operations are internal transitions: taken
                    # in turn, and executed again by a replay (not answered from the cache)
                    impls = {k: self._in_turn(f, k != "wait-until") for k, f in impls.items()}
                    coord = self.coordinator
                    wrap = (lambda name, fn, **kw: self.gate.builtin(
                        name, fn, internal=lambda: len(coord.agents) >= 2, **kw))
                effects[Symbol(ns.name)] = namespaces.bind(ns, impls, wrap)
        self.globals = setup.state.get("globals")
        for name, fns in self._extra_namespaces.items():
            effects[Symbol(name)] = namespaces.bind(name, fns, self.gate.builtin)
        return effects

    def _in_turn(self, fn: Callable[..., Any], atomic: bool) -> Callable[..., Any]:
        """A globals operation as a turn of the agent calling it (``atomic``: the operation
        itself runs in the turn; ``wait-until``, which blocks, only starts in it), so that a
        replay sees the agents' reads and writes in the recorded order."""
        coord = self.coordinator

        def call(*args: Any) -> Any:
            actor = self.actor
            if actor is None:
                return fn(*args)
            if atomic:
                return coord.solo_or_turn(actor.key, lambda: fn(*args))
            coord.solo_or_turn(actor.key, lambda: None)
            return fn(*args)
        call.__doc__ = fn.__doc__
        return call

    def _apply_spell_fn(self, f: Any, args: list) -> Any:
        """Call a Spell function an effect was given (``globals/update``'s f): it runs where
        effects are available, as the ``eval`` that called the effect was (an agent's update
        function may ask ``agents/current-handle``)."""
        caller = self.gate.call_env()
        if caller is not None:   # where the effect was called: its env (dynamic scope), effects
            return apply_fn(f, list(args), caller[1], caller[0])
        ctx = self._ctx(self.gate.scope.step, 1)
        ctx = ctx.derive(builtins={**ctx.builtins, **self._effects, Symbol("eval"): self._eval})
        return apply_fn(f, list(args), immutables.Map(), ctx)

    def _on_effect(self, rec: EffectRecord) -> None:
        data = rec.to_json()
        if self.keep_history:
            if rec.step in self.steps:
                self.steps[rec.step]["effects"].append(data)
            else:
                self.root_effects.append(data)
        self.bus.emit(ev.EFFECT, step=rec.step, effect=data, **self._turns_so_far())

    def _turns_so_far(self) -> dict[str, Any]:
        """``{turns: ...}`` for a step or effect event of a multi-agent run: the turn order
        committed since the last such event (``Coordinator.take_turns``), so the persisted
        events keep the order up to where they end (``Record.from_events``); a single-agent
        run's events carry nothing."""
        coord = self.coordinator
        if len(coord.agents) < 2:
            return {}
        turns = coord.take_turns()
        return {"turns": turns} if turns is not None else {}

    def _approve(self, name: str, args_text: str, step: int, replay_miss: bool) -> None:
        self._pauses.wait_while_held()
        kinds = self.config.breakpoints.effect_kinds
        ns = name.split("/", 1)[0]
        matched = name in kinds or ns in kinds or ("model" in kinds and name.startswith("model/"))
        # a step's own model call was just offered as its before-model pause point: stepping
        # from there goes on to the call (one model call, one stop)

        def stepping() -> bool:
            return self._steps() and name != "model/spell"

        def wanted() -> bool:
            return matched or replay_miss or stepping() or self._requested(BEFORE_EFFECT)
        if not wanted():
            return
        with self._pauses.turn():
            if not wanted():   # waited for another agent's pause, which took the request
                return
            reason = ("replay miss of an unsafe effect" if replay_miss else
                      "breakpoint" if matched else "stepping" if stepping() else "pause requested")
            point = self._point(BEFORE_EFFECT, step, None, {"name": name, "args": args_text}, None, reason)
            decision = self._checkpoint(point)
        if decision.action == api.REJECT:
            raise SpellError(f"Effect rejected by the user: {name}", kind="rejected")

    def _run_deadline(self) -> Optional[float]:
        return self.clock.run_deadline

    def _run_limit_message(self) -> str:
        return f"Run time limit exceeded ({self.clock.run_seconds or 0:g} s)"

    # --- pause points ----------------------------------------------------------------------
    # Several agents may reach pause points at once: ``pause_turns`` says how they take turns.
    def _agent_here(self) -> tuple[Optional[str], Optional[int], Any]:
        """The agent this thread runs: its handle as shown, its generation, and the key its
        stepping is kept under (a future's thread has one of its own)."""
        actor = self.actor
        if actor is None:
            return None, None, threading.get_ident()
        return show_handle(actor.handle), actor.generation, actor.key

    @property
    def stepping(self) -> bool:
        """Whether the agent this thread runs steps (pauses at its next pause point)."""
        return self._agent_here()[2] in self._stepping

    def _steps(self) -> bool:
        """This agent steps, or the whole run does (a Step answered a held pause)."""
        return self._pauses.run_stepping or self.stepping

    def _requested(self, kind: str) -> bool:
        """A pause (or Stop) was requested for the whole run, or for the agent this thread runs."""
        if self.controller.wants_pause(kind):
            return True
        requests = self.controller.agent_pause_requests()
        return bool(requests) and self._agent_here()[0] in requests

    def _point(self, kind: str, step: Optional[int], text: Optional[str], effect: Optional[dict],
               error: Optional[str], reason: str) -> PausePoint:
        agent, generation, _ = self._agent_here()
        hold = self._pauses.run_stepping or self.controller.wants_pause(kind)
        return PausePoint(kind, step, text, effect, error, reason, agent, generation, hold)

    def _checkpoint(self, point: PausePoint) -> Decision:
        """Show ``point`` and wait for the decision; the caller owns the turn."""
        _, _, key = self._agent_here()
        if point.hold:
            self._pauses.run_stepping = False   # this pause is the step the run took
        self._pauses.hold(point.hold)
        self.bus.emit(ev.PAUSED, point=point.kind, step=point.step, text=point.text,
                      effect=point.effect, error=point.error, reason=point.reason,
                      agent=point.agent, generation=point.generation, hold=point.hold)
        try:
            with self.clock.off_step_clock(paused=True):   # a person's time is on no clock
                decision = self.controller.checkpoint(point)
        finally:
            self._pauses.hold(False)
        if decision.action == api.STOP:
            self.bus.emit(ev.RESUMED, action=api.STOP, edited=False, step=point.step, point=point.kind,
                          agent=point.agent, generation=point.generation)
            raise TypedError("Run stopped by the user", kind="stopped")
        stepping = decision.action == api.STEP
        if point.hold:   # a held pause: Step steps the run, not only this agent
            self._pauses.run_stepping = stepping
            self._stepping.set(key, False)
        else:
            self._stepping.set(key, stepping)
        return decision

    def _validate(self, kind: str, text: str) -> Optional[str]:
        try:
            if kind in (BEFORE_MODEL, ON_MODEL_ERROR):
                problem = check_prefix(text)   # open forms are fine; an open string is not
                if problem is not None:
                    raise problem
            else:
                assemble(text, "", allow_multiple=self.config.allow_multiple_top_level)
        except SpellError as e:
            return e.message
        return None

    def _pause(self, kind: str, step: int, text: str, error: Optional[str] = None) -> Optional[str]:
        """Offer a pause point; returns the edited text, or None when nothing was edited."""
        self._pauses.wait_while_held()
        replayed = self.replay_edits.get((step, kind))
        if replayed is not None:
            return self._record_edit(step, kind, replayed.text, replayed.author, "replayed edit")
        bp = self.config.breakpoints
        matched = ((kind == BEFORE_MODEL and bp.before_model)
                   or (kind == AFTER_COMPLETION and bp.after_completion)
                   or (kind in (ON_ERROR,) and bp.on_error)
                   or kind == ON_MODEL_ERROR)
        if not (matched or self._steps() or self._requested(kind)):
            return None
        with self._pauses.turn():
            if not (matched or self._steps() or self._requested(kind)):
                return None   # waited for another agent's pause, which took the request
            return self._paused(kind, step, text, error, matched)

    def _paused(self, kind: str, step: int, text: str, error: Optional[str], matched: bool) -> Optional[str]:
        """Show a pause (the turn is this thread's) until its decision is one the machine takes:
        an edit that does not read is refused and the pause is shown again."""
        reason = ("error" if kind in (ON_ERROR, ON_MODEL_ERROR) else "breakpoint" if matched
                  else "stepping" if self._steps() else "pause requested")
        problem = None
        while True:
            point = self._point(kind, step, text, None, problem or error, reason)
            decision = self._checkpoint(point)
            if decision.text is None or decision.text == text:
                self.bus.emit(ev.RESUMED, action=decision.action, edited=False, step=step, point=kind,
                              agent=point.agent, generation=point.generation)
                return None
            problem = self._validate(kind, decision.text)
            if problem is None:
                return self._record_edit(step, kind, decision.text, decision.author, decision.action)
            text = decision.text  # keep what the person typed; ask again with the problem shown
            reason = "edit refused"

    def _record_edit(self, step: int, kind: str, text: str, author: Optional[str], action: str) -> str:
        at = time.time()
        self.edits_made.append(RecordedEdit(step, kind, text, author, at))
        if self.gate._scopes:
            self.gate.scope.edited = True
        agent, generation, _ = self._agent_here()
        self.bus.emit(ev.RESUMED, action=action, edited=True, step=step, point=kind, text=text,
                      author=author, at=at, agent=agent, generation=generation)
        return text

    # --- evaluation ------------------------------------------------------------------------
    def _ctx(self, step: int, depth: int) -> Any:
        rng = random.Random(f"{self.config.seed}:{step}")
        ctx = make_context(self._builtins, rng=rng, gated=self._gated)
        ctx.machine = Frame(self, step, depth)
        return ctx

    def _evaluate(self, form: Any, step: int, depth: int) -> Any:
        env = immutables.Map({Symbol("eval"): self._eval})
        ctx = self._ctx(step, depth)
        with self.clock.evaluating(ctx.shared):
            try:
                value, _ = evaluate(form, env, ctx, tail=True)
            except MemoryError:   # outside a builtin (those report which one)
                raise memory_error() from None
        return value

    # --- actors ----------------------------------------------------------------------------
    @property
    def actor(self) -> Optional[Actor]:
        """The agent this thread runs (None in a thread that runs no agent, e.g. a future)."""
        return getattr(self._local, "actor", None)

    def bind_actor(self, actor: Optional[Actor]) -> None:
        """This thread runs ``actor`` from now on (a lifecycle's thread; a future's thread
        binds an ``Actor`` with its own ``ctx`` so that agent-context ops refuse it)."""
        self._local.actor = actor

    def _agent_actor(self, what: str) -> Actor:
        actor = self.actor
        if actor is None or actor.ctx != "main":
            raise SpellError(f"{what} cannot run inside computation futures")
        return actor

    def _normalize_prefix(self, prefix: Any, env: Any) -> str:
        if isinstance(prefix, str):
            if prefix.lstrip().startswith("("):
                return prefix
            return edits.wrap_prompt(prefix)
        if edits.is_quine(prefix):
            actor = self._agent_actor("Self-calls")
            # The last prefix printed from a quine, with what reading it gives: the next
            # program starts with it, so only the completion is read (edits.carry_quine_prefix).
            text, actor.carry = edits.carry_quine_prefix(prefix, actor.carry)
            trace = getattr(prefix, "edit_trace", None)
            if trace is not None:
                actor.edit_traces[text] = trace   # prefix text or step -> the EditTrace that made it
            return text
        if isinstance(prefix, List):
            return pr_str(edits.expand_expr(prefix, env))
        raise SpellError(f"!llm-self expects a string or a program form, got {pr_str(prefix)}")

    def _llm_self(self, ctx: Any, env: Any, prefix: Any, opts: Any = None, *, tail: bool = False) -> Any:
        refuse_in_future(SELF_CALL_IN_FUTURE)
        receive = _receive_option(opts)
        self._agent_actor("Self-calls")
        text = self._normalize_prefix(prefix, env)
        frame: Frame = ctx.machine
        if tail:
            return TailCall(text, receive)
        with self.clock.off_step_clock():   # the nested steps have clocks of their own
            return self._chain(text, frame.step if frame.step >= 0 else None, frame.depth, receive)

    # --- receipt (spell-agents.md section 2) ------------------------------------------------
    def _receipt(self, actor: Actor, program: Any, site: str, batch: list, step: Optional[int]) -> tuple[Any, str]:
        """``program`` with ``batch`` received at ``site``: the form to evaluate and its text,
        which becomes the agent's resumable context."""
        form, text, _ = rcpt.apply_receipt(program, site, batch, self.store, self.config.inline_limit)
        self.coordinator.checkpoint(actor.handle, text)
        self.bus.emit(ev.RECEIPT, agent=show_handle(actor.handle), step=step, site=site,
                      messages=[{"id": mid, "name": name} for name, mid, _ in batch])
        return form, text

    def resume_after_wait(self, ctx: Any, actor: Actor, batch: Optional[list], site: str, tail: bool) -> Any:
        """A wait woke with ``batch`` (None: it did not wait): its value is the value of the
        agent's checkpoint evaluated with the batch received. In tail position the machine's
        loop evaluates it (``Resume``); elsewhere it is evaluated here, like a nested self-call."""
        if batch is None:
            return None
        frame: Frame = ctx.machine
        raw = self.coordinator.agents[actor.handle].last_raw
        form, text = self._receipt(actor, raw, site, batch, frame.step if frame.step >= 0 else None)
        if tail:
            return Resume(form, text, site)
        with self.clock.off_step_clock():
            return self._drive(self._evaluate_resumed(form, text, frame.step, frame.depth),
                               frame.step, frame.depth)

    def _evaluate_resumed(self, form: Any, text: str, step: int, depth: int) -> Any:
        """A received program, evaluated from scratch (a new evaluation of the same step)."""
        if step >= 0:
            self._emit_receipt_program(step, form, text)
        return self._evaluate(form, step, depth)

    def _drive(self, value: Any, step: int, depth: int, parent: Optional[int] = None) -> Any:
        """Go on from a value that may continue the program: a ``Resume`` is evaluated, a
        ``TailCall`` runs its chain of steps (under ``parent``, by default ``step``); the
        first plain value is the result."""
        if parent is None and step >= 0:
            parent = step
        while isinstance(value, TailCall):
            if type(value) is Resume:
                value = self._evaluate_resumed(value.form, value.text, step, depth)
            else:
                value = self._chain(value.prefix, parent, depth, bool(value.opts))
        return value

    def _init_form(self, text: str) -> Any:
        forms = read_all(text)
        if len(forms) != 1:
            if len(forms) > 1 and self.config.allow_multiple_top_level:
                return List((Symbol("do"), *forms))
            raise SpellError(f"Expected exactly one top-level form in the init program, got {len(forms)}",
                             kind="multiple-top-level-forms")
        return forms[0]

    def run_lifecycle(self, actor: Actor, text: Optional[str], site: str,
                      parent: Optional[int] = None) -> Any:
        """One lifecycle of an agent: its program (an init program at startup, its
        checkpoint at a dormant resume) with the messages waiting received first, evaluated
        and continued to a value. Its steps hang under ``parent`` (the spawning step)."""
        coord = self.coordinator
        if text is None:
            raise SpellError(f"Agent {show_handle(actor.handle)} has no program to resume", kind="startup")
        try:
            form = self._init_form(text)
        except SpellError as err:
            err.phase = "startup"   # type: ignore[attr-defined]
            raise
        coord.checkpoint(actor.handle, text)
        if coord.has_mail(actor.key, actor.handle):
            batch = coord.drain(actor.key, actor.handle, site)
            if batch:
                form, text = self._receipt(actor, text, site, batch, None)
        self.gate.push(-1)
        try:
            value = self._evaluate(form, -1, 1)
            return self._drive(value, -1, 1, parent)
        finally:
            self.gate.pop()

    def _receive(self, ctx: Any, env: Any, program: Any) -> Any:
        """``(receive completion)``: drain the mailbox into the program without evaluating it."""
        actor = self._agent_actor("receive")
        problem = rcpt.check_receivable(program)
        if problem is not None:
            raise SpellError(problem)
        batch = self.gate.perform("receive", (), lambda: self.coordinator.drain(actor.key, actor.handle, "receive"),
                                  internal=True, encode=lambda b: pr_str(Vector(n for n, _, _ in b)))
        if not batch:
            return program
        frame: Frame = ctx.machine
        return self._receipt(actor, program, "receive", batch, frame.step if frame.step >= 0 else None)[0]

    def _emit_receipt_program(self, sid: int, form: Any, text: str) -> None:
        """The program a receipt made, with its edit trace (forms added ``by`` receipt)."""
        if self.keep_history and sid in self.steps:   # "program" stays the step's own (strict replay checks it)
            self.steps[sid].setdefault("received", []).append(text)
        trace = getattr(form, "edit_trace", None)
        provenance = [{"start": 0, "end": len(text), "source": "prefix"}]
        report = None
        if trace is not None:
            report = program_trace.trace_program(trace.base, form, provenance, trace, [])
            span = getattr(trace.base, "span", None)
            report["base"] = [span.start, span.end] if span is not None else None
        self.bus.emit(ev.PROGRAM, step=sid, program=text, provenance=provenance, receipt=True,
                      **({"trace": report} if report is not None else {}))

    def _leaf_llm(self, ctx: Any, env: Any, prompt: Any, *rest: Any) -> str:
        text = prompt if isinstance(prompt, str) else pr_str(prompt)

        def call() -> Completion:
            return self.model.complete(ModelRequest(text, kind="text"))

        comp = self._model_effect("model/text", text, call)
        return comp.text

    def _model_effect(self, name: str, text: str, thunk: Callable[[], Completion]) -> Completion:
        budget = self.config.budget
        if self.coordinator.closed and self.actor is not self.root_actor:
            raise TypedError("Coordinator closed: the run has ended", kind="coordinator-closed")
        if budget and self.cost >= budget:
            raise TypedError(f"Budget exceeded: ${self.cost:.4f} spent of ${budget:.2f}",
                             kind="budget-exceeded")
        args_text = pr_str(Vector((_text_arg(text), self._settings_map)))
        estimate = getattr(self.model, "estimate_input_cost", None)
        if budget and estimate is not None and not self.gate.would_reuse(name, args_text):
            # stop before a call whose input alone would overspend (its output is bounded by
            # the profile's max_tokens; the bill is checked again when the usage is known)
            need = estimate(text, "text" if name == "model/text" else "spell")
            if self.cost + need > budget:
                raise TypedError(
                    f"Budget exceeded: the next model call's input alone would cost about "
                    f"${need:.4f}, and ${max(budget - self.cost, 0.0):.4f} of ${budget:.2f} is left",
                    kind="budget-exceeded")
        before = self.gate.executed
        with self.clock.off_step_clock():   # a provider has timeouts of its own
            comp = self.gate.perform(
                name, (), thunk, args_text=args_text,
                encode=lambda c: c.text,
                decode=lambda t, rec: Completion(t, Usage.from_json(rec.usage), self.model.name,
                                                 self.model.transport),
                usage_of=lambda c: c.usage.to_json())
        if self.gate.executed > before:
            with self._count_lock:   # agents spend from one budget
                self.cost += comp.usage.cost
            if budget and self.cost > budget:
                raise TypedError(f"Budget exceeded: ${self.cost:.4f} spent of ${budget:.2f}",
                                 kind="budget-exceeded")
        return comp

    # --- steps -----------------------------------------------------------------------------
    def _new_step_id(self) -> int:
        """Step ids are unique and ordered across every agent of the run (a turn: a replay
        numbers the steps as the record did)."""
        def take() -> int:
            with self._count_lock:
                sid = self.next_step
                self.next_step += 1
            return sid
        actor = self.actor
        return self.coordinator.solo_or_turn(actor.key, take) if actor is not None else take()

    def _chain(self, prefix: str, parent: Optional[int], depth: int, receive: bool = False) -> Any:
        """Run a step and every step that continues it in tail position; return the value.
        ``receive``: the self-call receives messages before its program runs (section 2.2)."""
        chain: list[int] = []
        recoveries = [0]
        sid = self._new_step_id()
        try:
            while True:
                out = self._step(sid, prefix, parent, depth, recoveries, receive)
                chain.append(sid)
                if isinstance(out, TailCall):
                    nxt = self._new_step_id()
                    self._finish(sid, continued_by=nxt)
                    prefix, parent, depth, receive, sid = out.prefix, sid, depth + 1, bool(out.opts), nxt
                    continue
                break
        except SpellError as err:
            for sid in chain:
                if sid in self.steps and self.steps[sid].get("error") is None:
                    self.steps[sid]["error"] = err.message
            raise
        if self.keep_history:
            printed = pr_str(out)
            for sid in chain[:-1]:
                self.steps[sid]["value"] = printed
        return out

    def _finish(self, sid: int, *, value: Any = None, error: Optional[SpellError] = None,
                continued_by: Optional[int] = None, recovered: bool = False) -> None:
        printed = None if (error is not None or continued_by is not None) else pr_str(value)
        span = None
        if error is not None and error.span is not None:
            span = {"line": error.span.line, "col": error.span.col}
        elif isinstance(error, ReadError):
            span = {"line": error.line, "col": error.col}
        if self.keep_history and sid in self.steps:
            s = self.steps[sid]
            s.update(value=printed, error=error.message if error else None, error_span=span,
                     continued_by=continued_by, finished=time.time())
        self.bus.emit(ev.STEP_FINISHED, step=sid, value=printed,
                      error=error.message if error else None, error_span=span,
                      continued_by=continued_by, recovered=recovered)

    def _step(self, sid: int, prefix: str, parent: Optional[int], depth: int, recoveries: list[int],
              receive: bool = False) -> Any:
        limit = self.config.depth
        if limit and depth > limit:
            raise TypedError(f"LLM recursion limit exceeded (depth {limit})", kind="depth-exceeded")
        self.clock.check_run()
        self.futures.check()   # a Stop or a divergence inside a future ends the run
        actor = self._agent_actor("Self-calls")
        agent = show_handle(actor.handle)
        if self.keep_history:
            self.steps[sid] = {"id": sid, "parent": parent, "depth": depth, "prefix": prefix,
                               "completion": None, "program": None, "value": None, "error": None,
                               "effects": [], "usage": None, "model": self.model.name,
                               "transport": self.model.transport, "started": time.time(),
                               "agent": agent, "generation": actor.generation}
        outer_step = actor.step
        actor.step = sid
        self.coordinator.current_step[actor.handle] = sid
        self.bus.emit(ev.STEP_STARTED, step=sid, parent=parent, depth=depth, prefix=prefix,
                      model=self.model.name, agent=agent, generation=actor.generation,
                      **self._turns_so_far())
        traces = actor.edit_traces
        trace = traces.pop(prefix, None)
        traces.clear()   # a prefix that no step took is not waited for
        if trace is not None:
            traces[sid] = trace
        scope = self.gate.push(sid)
        try:
            edited = self._pause(BEFORE_MODEL, sid, prefix)
            human: list[tuple[int, int]] = []
            if edited is not None:
                human.append(_human_range(prefix, edited))
                prefix = edited
            comp = self._call_model(sid, prefix)
            scope.base = scope.ordinal
            if self.keep_history:
                self.steps[sid].update(completion=comp.text, usage=comp.usage.to_json(), prefix=prefix)
            sent = comp.raw.get("request") if isinstance(comp.raw, dict) else None  # None: cache hit or local model
            self.bus.emit(ev.COMPLETION, step=sid, completion=comp.text, usage=comp.usage.to_json(),
                          model=comp.model or self.model.name, transport=comp.transport,
                          **({"request": sent} if sent is not None else {}))
            raw = prefix + comp.text
            edited = self._pause(AFTER_COMPLETION, sid, raw)
            if edited is not None:
                human = [_human_range(raw, edited)]
                raw = edited
            return self._run_program(sid, depth, prefix, raw, human, recoveries, receive)
        finally:
            self.gate.pop()
            actor.step = outer_step
            self.coordinator.current_step[actor.handle] = outer_step

    def _call_model(self, sid: int, prefix: str) -> Completion:
        actor = self._agent_actor("Self-calls")
        with self._count_lock:
            index = self.model_calls
            self.model_calls += 1
        agent_index = self.coordinator.count_call(actor.handle)

        def on_delta(chunk: str) -> None:
            self.bus.emit(ev.COMPLETION_DELTA, step=sid, text=chunk)

        def on_restart(reason: str) -> None:
            # The provider retried or re-sent the answer whole: text streamed so far is void.
            self.bus.emit(ev.COMPLETION_DELTA, step=sid, text="", reset=True, reason=reason)

        while True:
            self.gate.scope.ordinal = 0
            request = ModelRequest(prefix, on_delta=on_delta,
                                   extra={"call_index": index, "on_restart": on_restart,
                                          "agent": actor.handle.full, "agent_call_index": agent_index})
            try:
                return self._model_effect("model/spell", prefix, lambda: self.model.complete(request))
            except ModelError as err:
                spent = getattr(err, "usage", None)
                if spent is not None:  # failed attempts cost money too
                    self.cost += getattr(spent, "cost", 0.0) or 0.0
                if not self.controller.interactive:
                    raise SpellError(f"Model call failed: {err.message}", kind="model-error") from None
                edited = self._pause(ON_MODEL_ERROR, sid, prefix, error=err.message)
                if edited is not None:
                    prefix = edited

    def _provenance(self, prefix_len: int, program: str, raw_len: int,
                    human: list[tuple[int, int]], recovery: bool) -> list[dict]:
        if recovery:
            return [{"start": 0, "end": len(program), "source": "recovery"}]
        cuts = sorted({0, min(prefix_len, len(program)), min(raw_len, len(program)), len(program),
                       *[min(a, len(program)) for a, _ in human], *[min(b, len(program)) for _, b in human]})
        segs = []
        for a, b in zip(cuts, cuts[1:]):
            if a == b:
                continue
            if any(h0 <= a and b <= h1 for h0, h1 in human):
                src = "human"
            elif b <= prefix_len:
                src = "prefix"
            elif b <= raw_len:
                src = "model"
            else:
                src = "assembly"  # closers added by paren balancing
            if segs and segs[-1]["source"] == src:
                segs[-1]["end"] = b
            else:
                segs.append({"start": a, "end": b, "source": src})
        for s in segs:
            if s["source"] == "human":
                e = self.edits_made[-1] if self.edits_made else None
                if e:
                    s.update(author=e.author, at=e.at)
        return segs

    def _emit_program(self, sid: int, text: str, provenance: list[dict], form: Any = None) -> None:
        if self.keep_history:
            self.steps[sid]["program"] = text
        trace = self._program_trace(sid, form, provenance)
        self.bus.emit(ev.PROGRAM, step=sid, program=text, provenance=provenance,
                      **({"trace": trace} if trace is not None else {}))

    def _program_trace(self, sid: int, form: Any, provenance: list[dict]) -> Optional[dict]:
        """The program's edit trace against the program edit time made its prefix from
        (``program_trace``), when this step's prefix came from an edit."""
        actor = self.actor
        edit = actor.edit_traces.get(sid) if actor is not None else None
        if edit is None or form is None:
            return None
        human = [{"author": e.author, "at": e.at} for e in self.edits_made if e.step == sid]
        report = program_trace.trace_program(edit.base, form, provenance, edit, human)
        span = getattr(edit.base, "span", None)
        report["base"] = [span.start, span.end] if span is not None else None
        return report

    def _check_strict(self, sid: int, program: str) -> None:
        rec = self.recorded_steps.get(sid)
        if rec is None or rec.get("program") is None or rec["program"] == program:
            return
        old = rec["program"]
        i = next((i for i, (a, b) in enumerate(zip(old, program)) if a != b), min(len(old), len(program)))
        what = (f"the program differs from the record at character {i}: "
                f"recorded {old[i:i + 60]!r}, now {program[i:i + 60]!r}")
        self.bus.emit(ev.DIVERGED, step=sid, what=what)
        raise TypedError(f"Strict replay diverged at step {sid}: {what}", kind="divergence")

    def _run_program(self, sid: int, depth: int, prefix: str, raw: str,
                     human: list[tuple[int, int]], recoveries: list[int], receive: bool = False) -> Any:
        text = raw
        recovery_form = None
        resumed: Optional[Resume] = None
        actor = self.actor
        while True:
            if resumed is not None:   # a wait woke: the received program, evaluated afresh
                carried = False
                form, text = resumed.form, resumed.text
                resumed = None
                self._emit_receipt_program(sid, form, text)
            elif recovery_form is None:
                carry = actor.carry
                carried = carry is not None and text.startswith(carry.text)
                try:
                    text, form = assemble(text, "", allow_multiple=self.config.allow_multiple_top_level,
                                          carry=carry)
                except SpellError as err:
                    fixed = self._pause(ON_ERROR, sid, text, error=err.message)
                    if fixed is not None:
                        human = [(0, len(fixed))]
                        text = fixed
                        continue
                    if not self._can_recover(err, recoveries):
                        self._emit_program(sid, text, self._provenance(len(prefix), text, len(raw), human, False))
                        self._finish(sid, error=err)
                        self._raise_unrecovered(err, recoveries)
                    recoveries[0] += 1
                    recovery_form = self._reader_recovery(text, err)
                    continue
                self._emit_program(sid, text, self._provenance(len(prefix), text, len(raw), human, False), form)
                self._check_strict(sid, text)
                if receive:   # a receiving self-call: checkpoint, then messages come in first
                    coord = self.coordinator
                    coord.checkpoint(actor.handle, text)
                    if coord.has_mail(actor.key, actor.handle):
                        batch = coord.drain(actor.key, actor.handle, "pre-eval")
                        if batch:
                            form, text = self._receipt(actor, form, "pre-eval", batch, sid)
                            carried = False
                            self._emit_receipt_program(sid, form, text)
            else:
                carried = False
                form = recovery_form
                self._emit_program(sid, pr_str(form), self._provenance(0, pr_str(form), 0, [], True))
            try:
                value = self._evaluate(form, sid, depth + 1)
            except SpellError as err:
                if carried:
                    err.span = span_in_text(err.span, form, text,
                                            allow_multiple=self.config.allow_multiple_top_level)
                if isinstance(err, TypedError):
                    self._finish(sid, error=err)
                    raise
                fixed = self._pause(ON_ERROR, sid, text, error=err.message)
                if fixed is not None:
                    self.gate.restart_step()
                    human = [(0, len(fixed))]
                    text, recovery_form = fixed, None
                    continue
                if self.config.recover:
                    fixed_form = self._namespace_fixup(form, err)
                    if fixed_form is not None:
                        self.gate.restart_step()
                        recovery_form = fixed_form
                        continue
                if not self._can_recover(err, recoveries):
                    self._finish(sid, error=err)
                    self._raise_unrecovered(err, recoveries)
                recoveries[0] += 1
                recovery_form = self._quine_recovery(form, err)
                self.gate.restart_step()
                self._finish(sid, error=err, recovered=True)
                continue
            if type(value) is Resume:
                resumed = value
                continue
            if not isinstance(value, TailCall):
                self._finish(sid, value=value)
            elif recovery_form is not None and not value.opts:
                value.opts = True   # a recovery continuation receives (section 2.2)
            return value

    # --- recovery --------------------------------------------------------------------------
    def _raise_unrecovered(self, err: SpellError, recoveries: list[int]) -> None:
        if self.config.recover and recoveries[0] >= RECOVERY_ATTEMPTS and not isinstance(err, TypedError):
            raise SpellError(f"Recovery limit exceeded: {err.message}", kind=err.kind, form=err.form,
                             span=err.span) from None
        raise err

    def _can_recover(self, err: SpellError, recoveries: list[int]) -> bool:
        return (self.config.recover and not isinstance(err, TypedError)
                and err.kind in ("eval", "read", "multiple-top-level-forms", "sleep-refused")
                and recoveries[0] < RECOVERY_ATTEMPTS)

    def _namespace_fixup(self, form: Any, err: SpellError) -> Any:
        msg = err.message
        while msg.startswith("Function call failed: "):
            msg = msg.split(": ", 2)[-1] if msg.count(": ") >= 2 else msg
            break
        marker = "Unbound symbol: "
        if marker not in msg:
            return None
        name = msg.split(marker, 1)[1].split()[0].strip()
        if "/" in name:
            return None
        homes = [ns for ns in ("math", "strings")
                 if isinstance(self._builtins.get(Symbol(ns)), Map) and kw(name) in self._builtins[Symbol(ns)]]
        if len(homes) != 1:
            return None
        target, replacement = Symbol(name), Symbol(name, homes[0])

        def walk(f: Any) -> Any:
            if isinstance(f, Symbol):
                return replacement if f == target else f
            if isinstance(f, List):
                return List(walk(x) for x in f)
            if isinstance(f, tuple):
                return type(f)(walk(x) for x in f)
            if isinstance(f, Map):
                m = Map()
                for k, v in f.items():
                    dict.__setitem__(m, walk(k), walk(v))
                return m
            return f
        return walk(form)

    def _quine_recovery(self, form: Any, err: SpellError) -> Any:
        quine = form if edits.is_quine(form) else List((Symbol("quine"), Symbol("completion"), form))
        failing = err.containing_form if err.containing_form is not None else err.form
        error_map = Map({kw("error"): err.message, kw("in"): List((Symbol("quote"), failing))})
        prompt = ("Error recovery: the program above failed. Read _error, then continue the "
                  "program from here; the failed part is pruned on the next extension.")
        recovery = read_one("(eval (do (def _recovery_prompt nil) (def _error nil) "
                            "(quote (!llm-self (reopen completion)))))")
        body = list(recovery[1][1:])
        body[0] = List((Symbol("def"), Symbol("_recovery_prompt"), prompt))
        body[1] = List((Symbol("def"), Symbol("_error"), error_map))
        recovery = List((recovery[0], List((recovery[1][0], *body))))
        rethink = List((Symbol("rethink"), "Error recovery: the failed attempt was removed."))
        return List((*quine, rethink, recovery))

    def _reader_recovery(self, raw: str, err: SpellError) -> Any:
        message = f"Reader error: {err.message}"
        prompt = ("Your last program could not be read. _previous_program holds its text and "
                  "_error says what is wrong; write the program again, correctly.")
        return List((Symbol("quine"), Symbol("completion"), List((Symbol("eval"), List((
            Symbol("do"),
            List((Symbol("def"), Symbol("_recovery_prompt"), prompt)),
            List((Symbol("def"), Symbol("_previous_program"), raw)),
            List((Symbol("def"), Symbol("_error"), Map({kw("error"): message, kw("raw"): raw}))),
            List((Symbol("quote"), List((Symbol("!extend"), Symbol("completion"))))),
        ))))))

    # --- the run ---------------------------------------------------------------------------
    def execute(self) -> RunResult:
        with memory_limit(self.config.memory_mb):
            return self._execute()

    def _execute(self) -> RunResult:
        cfg = self.config
        self.bus.emit(ev.RUN_STARTED, config=cfg.to_json(), model_settings=self.model_settings,
                      model=self.model.name)
        result = RunResult()
        root = self.root_actor
        self.bind_actor(root)
        self.agents.scheduler.enter()
        ended = False
        try:
            if cfg.init is None and cfg.prompt is None:
                raise SpellError("a run needs a prompt or an init program", kind="usage")
            text = cfg.init if cfg.init is not None else edits.build_init(cfg.prompt or "")
            self.coordinator.register_root(MAIN)
            try:
                value = self.run_lifecycle(root, text, "startup")
                settle(self.futures, value, self._run_deadline, self._run_limit_message)
            except SpellError as err:
                self._end_agents(root, err)
                ended = True
                raise
            self._end_agents(root, None, value)
            ended = True
            result.value = value
            result.value_text = pr_str(value)
            self.bus.emit(ev.RUN_FINISHED, value=result.value_text)
        except SpellError as err:
            result.error = err.message
            result.error_kind = err.kind
            if isinstance(err, ReadError):
                result.error_span = {"line": err.line, "col": err.col}
            elif err.span is not None:
                result.error_span = {"line": err.span.line, "col": err.span.col}
            result.status = {"stopped": "stopped", "budget-exceeded": "stopped",
                             "divergence": "diverged"}.get(err.kind, "failed")
            self.bus.emit(ev.RUN_FAILED, error=err.message, kind=err.kind, span=result.error_span)
        except RecursionError:
            result.error = "Stack depth exceeded while running the program"
            result.error_kind = "stack"
            result.status = "failed"
            self.bus.emit(ev.RUN_FAILED, error=result.error, kind="stack", span=None)
        except MemoryError:   # outside evaluation (printing a value, an event): the same limit
            result.error = memory_error(cfg.memory_mb).message
            result.error_kind = "memory-limit"
            result.status = "failed"
            self.bus.emit(ev.RUN_FAILED, error=result.error, kind="memory-limit", span=None)
        finally:
            if not ended:   # a stack or memory error: the agents end with the run all the same
                self._end_agents(root, SpellError("the run failed", kind="internal"))
            self.futures.close()
        if self.coordinator.divergence is not None and result.status != "diverged":
            # an agent's transition left the record (it may have been any agent's thread)
            result.error = f"Strict replay diverged: {self.coordinator.divergence}"
            result.error_kind = "divergence"
            result.status = "diverged"
            self.bus.emit(ev.DIVERGED, step=None, what=self.coordinator.divergence)
        result.agents = self.coordinator.summary()
        result.warnings = list(self.coordinator.warnings)
        result.journal = list(self.coordinator.journal)
        result.steps = [self.steps[k] for k in sorted(self.steps)]
        result.effects = list(self.root_effects) + [e for s in result.steps for e in s["effects"]]
        result.effects_executed = self.gate.executed
        result.effects_reused = self.gate.reused
        result.cost = self.cost
        self._result = result
        return result

    def _end_agents(self, root: Actor, error: Optional[SpellError], value: Any = None) -> None:
        """The root lifecycle returned (or failed): it finishes like any lifecycle (its
        claimed slots are filled, its open edges detached with a warning), the test hook
        ``agents.at_end`` runs, then the coordinator closes and the agents unwind."""
        from .agents.runtime import child_failure
        coord = self.coordinator
        try:
            if MAIN in coord.agents:
                if error is None:
                    coord.finish(root.key, MAIN, root.generation, value, rewake=False)
                else:
                    coord.finish(root.key, MAIN, root.generation, child_failure(MAIN, error), failed=True,
                                 rewake=False)
            if self.agents.at_end is not None:
                self.agents.at_end(self)
        finally:
            self.agents.end()
            if len(coord.agents) > 1:   # a single-agent run's events stay as they were
                self.bus.emit(ev.AGENTS_ENDED, **self._agents_record())

    def _agents_record(self) -> dict[str, Any]:
        """What a record keeps of the run's agents (``Record`` version 2): their summary, the
        coordinator's warnings, and for a multi-agent run its journal and the turn order a
        strict replay follows. ``record()`` and the ``agents_ended`` event both take it from
        here, so a record rebuilt from the events is the run's own."""
        coord = self.coordinator
        multi = len(coord.agents) > 1
        return {"agents": coord.summary(), "warnings": list(coord.warnings),
                "journal": _json_journal(coord.journal) if multi else [],
                "turns": coord.recorded_turns() if multi else {}}

    def globals_closed(self) -> None:
        """The run ended: ``globals/wait-until`` of abandoned agents stops waiting."""
        if self.globals is not None:
            self.globals.close()

    def record(self) -> Record:
        """The run as a record for later replay (``--record``)."""
        res = getattr(self, "_result", None)
        steps = [{k: s.get(k) for k in RECORD_STEP_KEYS if k in s or k not in OPTIONAL_STEP_KEYS}
                 for s in (res.steps if res else [])]
        effects = [EffectRecord.from_json(e) for e in (res.effects if res else [])]
        agents = self._agents_record() if res else {}
        return Record(config=self.config.to_json(), model_settings=self.model_settings,
                      steps=steps, effects=effects, edits=list(self.edits_made),
                      value=res.value_text if res else None, error=res.error if res else None,
                      **agents)


# a step as a record keeps it; ``received``: the programs receipts made of it (only when a
# wait in it resumed with messages), beside its own ``program``, which strict replay checks
RECORD_STEP_KEYS = ("id", "parent", "depth", "prefix", "completion", "program", "received",
                    "value", "error", "agent", "generation")
OPTIONAL_STEP_KEYS = ("received",)


def _json_journal(journal: list[dict]) -> list[dict]:
    """The coordinator's journal as JSON (actors as lists, results printed when not plain)."""
    out = []
    for e in journal:
        result = e["result"]
        if not (result is None or isinstance(result, (str, int, float, bool, list))):
            result = pr_str(result)
        actor = list(e["actor"]) if isinstance(e["actor"], tuple) else e["actor"]
        out.append({"seq": e["seq"], "actor": actor, "kind": e["kind"], "payload": e["payload"],
                    "result": result})
    return out


def execute_with_deep_stack(fn: Callable[[], Any], stack_mb: int = 512, recursion: int = 200_000) -> Any:
    """Run ``fn`` in a thread with a large stack: Spell evaluation recurses on nested forms and
    on non-tail self-calls. Extension chains do not (they are trampolined)."""
    box: dict[str, Any] = {}

    def target() -> None:
        old = sys.getrecursionlimit()
        sys.setrecursionlimit(max(old, recursion))
        try:
            box["value"] = fn()
        except BaseException as e:  # re-raised in the caller
            box["error"] = e

    prev = threading.stack_size()
    threading.stack_size(stack_mb * 1024 * 1024)
    try:
        t = threading.Thread(target=target, name="spell-run")
        t.start()
    finally:
        threading.stack_size(prev)
    t.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")
