"""The public API of the Spell core: the one module anything outside ``spellide/spell/`` imports.

The IDE (``spellide/web``), the benchmarks and any other program built on the core import from
here only, never from ``machine``, ``reader``, ``evaluator`` & co. (``tests/test_architecture.py``
fails when they do). What a client can do, by group (the names are listed in ``__all__``):

* **runs**: configure (``RunConfig``, ``Breakpoints``), start in this thread (``Run``,
  ``execute_with_deep_stack``) or in a child process (``ProcessRun``), steer at pause points
  (``Controller``, ``PausePoint``, ``Decision`` and the pause-kind and action constants
  defined here) and get the result (``RunResult``);
* **observation**: the event stream (``events``: the event type constants, ``Event``), the
  effect journal (``EffectJournal``, ``read_journal``) and run records (``Record``,
  ``RecordedEdit``, ``EffectRecord``) for replay, forks and resume, also as a trace directory
  in the reference's layout (``write_trace_dir``, ``import_trace_dir``; ``trace_message_receipts``
  reads the messages a multi-agent run's prompts received back out of them);
* **forms**: read (``read_all``, ``read_all_spans``, ``read_one``; ``reader_fast_path`` says
  whether the C reader is in use, ``read_all_spans_python`` reads without it), print (``pr_str``),
  analyse (``split_program``, ``balance_open``, ``assemble``) and the value types
  a reader returns (``Symbol``, ``Keyword``, ``List``, ``Vector``, ``Map``, ``Set``, ``Char``,
  ``Regex``, ``Span``); errors carry what and where (``SpellError``, ``ReadError``);
* **evaluation without a machine** (tools, baselines): ``evaluate``, ``make_context``,
  ``core_builtins``, ``Builtin``;
* **the language's vocabulary**: the edit markers (``MARKERS``; ``THINK``, the note a
  ``rethink`` leaves) and their application
  (``apply_edits``); the **edit trace** of a program version, which forms each marker, edit
  time, the model, a person or recovery removed, replaced or added (``trace_program``,
  ``EditTrace``, the ``TRACE_BY`` words, ``opcodes`` for aligning sequences);
  ``build_init`` (the root program of a prompt);
* **namespaces**: each namespace declared once (``Namespace``, ``NamespaceFn``,
  ``declare_namespace``; ``effect_namespaces`` lists the effect ones with their docs);
* **models**: ``resolve_model``, profiles (``load_profiles``, ``get_model``), the model
  interface (``Model``, ``ModelRequest``, ``Completion``, ``Usage``, ``ModelError``), a
  model that answers from a list (``ScriptedModel``), the model that answers from a record
  only (``NoLiveModel``) and the versioned system prompts
  (``system_prompt``, ``prompt_digest``, ``transports``, ``PROMPT_VERSION``).

The run-control vocabulary is defined in this module itself (the machine imports it from
here); everything else is defined in its own core module and resolved on first use, so
importing the API stays cheap and the core's modules can import this one without a cycle.

A run executes synchronously in the calling thread (``ProcessRun`` executes it in a child
process instead, as the IDE does); a ``Controller`` is asked at every pause point what to do
next, which is how a person pauses, hand-edits, steps, approves effects and stops a run.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field, asdict
from typing import TYPE_CHECKING, Any, Callable, Optional

from .limits import DEFAULT_MEMORY_MB, DEFAULT_RUN_SECONDS, DEFAULT_STEP_SECONDS, MIN_MEMORY_MB  # noqa: F401

# Pause point kinds.
BEFORE_MODEL = "before_model"          # text = the prefix; an edit replaces the prefix
AFTER_COMPLETION = "after_completion"  # text = the whole program; an edit replaces it
BEFORE_EFFECT = "before_effect"        # effect = {name, args}; approve / reject / edit args
ON_ERROR = "on_error"                  # text = the program, error = message; edit = retry with it
ON_MODEL_ERROR = "on_model_error"      # the provider failed after its retries; retry or edit prefix

# Decision actions.
CONTINUE = "continue"   # go on (after an edit, with the edited text)
STEP = "step"           # go on, and pause again at the next pause point
STOP = "stop"           # end the run as stopped by the user
REJECT = "reject"       # for BEFORE_EFFECT: do not run it; the program sees an error

CACHE_MODES = ("live", "replay", "strict")


@dataclass
class Breakpoints:
    before_model: bool = False
    after_completion: bool = False
    on_error: bool = False
    effect_kinds: list[str] = field(default_factory=list)  # effect names or namespaces: "io", "io/spit", "model"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: Optional[dict]) -> "Breakpoints":
        d = d or {}
        return cls(bool(d.get("before_model")), bool(d.get("after_completion")),
                   bool(d.get("on_error")), list(d.get("effect_kinds") or []))


@dataclass
class RunConfig:
    prompt: Optional[str] = None       # natural-language root prompt (wrapped by build-init)
    init: Optional[str] = None         # or a complete program
    model: str = "hello"               # hello | scripted:FILE | replay:FILE | profile:NAME
    depth: Optional[int] = None        # max model-call depth (None = unlimited)
    budget: Optional[float] = 1.0      # USD; None or 0 = unlimited
    recover: bool = True
    workspace: Optional[str] = None    # io/ root; None = no io/ namespace
    allow_shell: bool = False
    shell_timeout: float = 30.0
    seed: int = 0                      # per-step RNG seeds derive from it
    cache_mode: str = "live"           # live | replay | strict
    allow_multiple_top_level: bool = False
    inline_limit: int = 10000
    memory_mb: Optional[int] = DEFAULT_MEMORY_MB          # the run's memory; None = unlimited
    step_time_limit: Optional[float] = DEFAULT_STEP_SECONDS  # a step's own evaluation, seconds
    run_time_limit: Optional[float] = DEFAULT_RUN_SECONDS    # the run, pauses excluded; None = none
    breakpoints: Breakpoints = field(default_factory=Breakpoints)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["breakpoints"] = self.breakpoints.to_json()
        return d

    @classmethod
    def from_json(cls, d: dict) -> "RunConfig":
        d = dict(d)
        d["breakpoints"] = Breakpoints.from_json(d.get("breakpoints"))
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class PausePoint:
    kind: str
    step: Optional[int]
    text: Optional[str] = None           # prefix or program, editable
    effect: Optional[dict] = None        # {name, args} for BEFORE_EFFECT
    error: Optional[str] = None
    reason: str = "breakpoint"           # breakpoint | pause requested | stepping | error
    agent: Optional[str] = None          # the agent paused here (its handle, ":main"), None: no agent
    generation: Optional[int] = None     # of that agent (a handle is reused by a new generation)
    hold: bool = False                   # a whole-run pause: every other agent waits at its pause points


@dataclass
class Decision:
    action: str = CONTINUE
    text: Optional[str] = None           # edited text (prefix / program / effect args)
    author: Optional[str] = None         # who edited, for provenance


class Controller:
    """Default controller: never pauses. The IDE subclasses it to hold the run until a
    person acts; the machine calls ``wants_pause`` cheaply at every pause point and
    ``checkpoint`` only when it answers true (or a breakpoint matched).

    A non-interactive controller is never asked about model errors: they fail the run. An
    interactive one (the IDE) pauses there, so a person can retry or edit the prefix."""

    interactive = False

    def wants_pause(self, kind: str) -> bool:
        """Whether the whole run should pause at its next pause point of ``kind`` (the first
        agent to reach one shows it and every other agent waits: ``pause_turns``)."""
        return False

    def agent_pause_requests(self) -> frozenset[str]:
        """The agents (handles, ``":w"``) that should pause at their next pause point, while the
        others go on. Asked as cheaply as ``wants_pause``."""
        return frozenset()

    def checkpoint(self, point: PausePoint) -> Decision:
        """The decision for ``point``. The machine asks for one pause at a time, whichever
        agent reached it (``point.agent``)."""
        return Decision()

    def watch(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever ``wants_pause`` may have started answering differently
        (a pause or stop was requested). A run executing in another process (``process``)
        mirrors the answers there, so its machine asks them as cheaply as in-process. This
        controller's answers never change."""

    def pause_coming(self) -> None:
        """The run announced a pause (its ``paused`` event) whose ``checkpoint`` follows: a
        run in another process (``process``) tells this before its listeners see the event,
        so a person who acts on the shown pause meanwhile is not refused."""

    def close(self) -> None:
        """The run ended, or its process died: release a ``checkpoint`` that is waiting (it
        answers stop) and any later one."""


@dataclass
class ReadProblem:
    """Why a text does not read: the reader's message and where (1-based line and column)."""
    message: str
    line: Optional[int] = None
    col: Optional[int] = None


def init_problem(text: str, allow_multiple_top_level: bool = False) -> Optional[ReadProblem]:
    """Why ``text`` would fail to read as a run's init program (None when it reads). The same
    reading a run does first, so a form can refuse the program before any run exists: it must
    read completely (an unclosed form or string is an error here, unlike in a prefix) and be
    one top-level form unless several are allowed."""
    from .errors import ReadError, SpellError
    from .reader import read_all_spans
    try:
        forms, spans = read_all_spans(text)
    except ReadError as e:
        return ReadProblem(getattr(e, "reason", None) or e.message, e.line, e.col)
    except SpellError as e:
        return ReadProblem(e.message)
    if not forms:
        return ReadProblem("there is no form to evaluate")
    if len(forms) > 1 and not allow_multiple_top_level:
        return ReadProblem(f"expected exactly one top-level form, got {len(forms)} (the second starts here)",
                           spans[1].line, spans[1].col)
    return None


# --- the rest of the surface, defined in the core's modules --------------------------------
# name -> module (relative to this package) that defines it; ``events`` is the module itself.
_EXPORTS: dict[str, str] = {
    # runs
    "Run": "machine", "RunResult": "machine", "execute_with_deep_stack": "machine",
    "resolve_model": "machine",
    "ProcessRun": "process", "RunProcessDied": "process", "RunProcessFailed": "process",
    # observation
    "events": "events", "Event": "events",
    "RUN_STARTED": "events", "STEP_STARTED": "events", "COMPLETION": "events", "PROGRAM": "events",
    "EFFECT": "events", "STEP_FINISHED": "events", "RUN_FINISHED": "events", "RUN_FAILED": "events",
    "EffectJournal": "journal", "read_journal": "journal",
    "Record": "record", "RecordedEdit": "record", "EffectRecord": "effects.cache",
    "write_trace_dir": "trace", "import_trace_dir": "trace", "trace_message_receipts": "trace",
    # run bundles: the format (the IDE writes them; replay:FILE reads them)
    "BUNDLE_FORMAT": "bundle", "BUNDLE_VERSION": "bundle", "MAX_BUNDLE_BYTES": "bundle",
    "BundleError": "bundle", "BundleTexts": "bundle", "check_bundle": "bundle", "text_digest": "bundle",
    "dump_bundle": "bundle", "load_bundle_bytes": "bundle", "load_bundle": "bundle",
    # forms
    "read_all": "reader", "read_all_spans": "reader", "read_one": "reader",
    "read_all_spans_python": "reader", "reader_fast_path": "reader",
    "pr_str": "printer", "assemble": "assembly", "carry_quine_prefix": "edits",
    "pretty_str": "pretty", "pretty_forms": "pretty", "pretty_text": "pretty", "Layout": "pretty",
    "check_prefix": "prefix",
    "split_program": "analysis", "balance_open": "analysis",
    "Symbol": "data", "Keyword": "data", "List": "data", "Vector": "data", "Map": "data",
    "Set": "data", "Char": "data", "Regex": "data", "Span": "data", "Builtin": "data",
    "SpellError": "errors", "ReadError": "errors",
    # evaluation without a machine
    "evaluate": "evaluator", "make_context": "evaluator", "core_builtins": "evaluator",
    # the language's vocabulary
    "MARKERS": "edits", "THINK": "edits", "apply_edits": "edits", "build_init": "edits",
    "EditTrace": "edits", "trace_program": "program_trace", "opcodes": "program_trace",
    "TRACE_BY": "program_trace",
    # futures (futures.py): the host side of a (future ...) value, and the run's pool of them
    "HostFuture": "futures", "FuturePool": "futures", "waitable_future": "futures",
    # namespaces: one declaration each (namespaces.py)
    "Namespace": "namespaces", "NamespaceFn": "namespaces", "declare_namespace": "namespaces",
    "effect_namespaces": "namespaces",
    # models, profiles, prompts
    "Model": "models.base", "ModelRequest": "models.base", "Completion": "models.base",
    "Usage": "models.base", "ModelError": "models.base", "NoLiveModel": "models.local",
    "ScriptedModel": "models.local",
    "load_profiles": "models.profiles", "get_model": "models.profiles",
    "system_prompt": "prompts", "prompt_digest": "prompts", "transports": "prompts",
    "PROMPT_VERSION": "prompts",
    "rebuild_request": "models.sent", "MissingText": "models.sent",
    # limits: reading inputs bounded, a process's memory limit, the long-call watchdog
    "read_input": "limits", "process_memory": "limits", "watch_overrun": "limits", "OVERRUN_GRACE": "limits",
    # multi-agent runs: the coordinator (its journal, agents and edges) and its statuses
    "Coordinator": "agents.coordinator", "AGENT_STACK_MB": "agents.runtime",
}

_RENAMED = {"waitable_future": "waitable", "TRACE_BY": "BY", "NamespaceFn": "Fn", "declare_namespace": "declare",
            "BUNDLE_FORMAT": "FORMAT", "BUNDLE_VERSION": "VERSION", "BundleTexts": "TextTable",
            "check_bundle": "check", "text_digest": "digest", "dump_bundle": "dumps",
            "load_bundle_bytes": "loads", "load_bundle": "load",
            "trace_message_receipts": "message_receipts"}   # names that are shorter in their own module

__all__ = sorted({
    "BEFORE_MODEL", "AFTER_COMPLETION", "BEFORE_EFFECT", "ON_ERROR", "ON_MODEL_ERROR",
    "CONTINUE", "STEP", "STOP", "REJECT", "CACHE_MODES",
    "Breakpoints", "RunConfig", "PausePoint", "Decision", "Controller", "ReadProblem", "init_problem",
    *_EXPORTS})


def __getattr__(name: str) -> Any:
    """Resolve a name of the surface from the core module that defines it (once)."""
    where = _EXPORTS.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__package__}.{where}")
    value = module if name == where else getattr(module, _RENAMED.get(name, name))
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # the same names, for type checkers and editors
    from . import events
    from .analysis import balance_open, split_program
    from .assembly import assemble
    from .data import Builtin, Char, Keyword, List, Map, Regex, Set, Span, Symbol, Vector
    from .edits import MARKERS, THINK, EditTrace, apply_edits, build_init
    from .program_trace import BY as TRACE_BY, opcodes, trace_program
    from .effects.cache import EffectRecord
    from .errors import ReadError, SpellError
    from .evaluator import core_builtins, evaluate, make_context
    from .events import Event
    from .journal import EffectJournal, read_journal
    from .machine import Run, RunResult, execute_with_deep_stack, resolve_model
    from .models.base import Completion, Model, ModelError, ModelRequest, Usage
    from .namespaces import Fn as NamespaceFn, Namespace, declare as declare_namespace, effect_namespaces
    from .models.local import NoLiveModel, ScriptedModel
    from .models.profiles import get_model, load_profiles
    from .printer import pr_str
    from .process import ProcessRun, RunProcessDied, RunProcessFailed
    from .prompts import PROMPT_VERSION, prompt_digest, system_prompt, transports
    from .reader import read_all, read_all_spans, read_all_spans_python, read_one, reader_fast_path
    from .record import Record, RecordedEdit
    from .trace import import_trace_dir, message_receipts as trace_message_receipts, write_trace_dir
    from .bundle import (FORMAT as BUNDLE_FORMAT, MAX_BUNDLE_BYTES, VERSION as BUNDLE_VERSION, BundleError,
                         TextTable as BundleTexts, check as check_bundle, digest as text_digest,
                         dumps as dump_bundle, load as load_bundle, loads as load_bundle_bytes)
    from .edits import carry_quine_prefix
    from .events import (COMPLETION, EFFECT, PROGRAM, RUN_FAILED, RUN_FINISHED, RUN_STARTED, STEP_FINISHED,
                         STEP_STARTED)
    from .models.sent import MissingText, rebuild_request
    from .prefix import check_prefix
    from .pretty import Layout, pretty_forms, pretty_str, pretty_text
