"""The public API of the Spell core: configure a run, observe it, steer it, get its result.

The IDE and the CLI use only this module, ``events`` and ``record``; they never reach into
the evaluator. A run executes synchronously in the calling thread (``process.ProcessRun``
executes it in a child process instead, as the IDE does); a ``Controller`` is asked at every
pause point what to do next, which is how a person pauses, hand-edits, steps, approves effects
and stops a run.
"""

from __future__ import annotations

from dataclasses import dataclass, field, asdict
from typing import Any, Callable, Optional

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
        return False

    def checkpoint(self, point: PausePoint) -> Decision:
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
