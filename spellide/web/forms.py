"""The new-run form: every field checked on the server, so a bad value comes back as an error
next to its field with everything typed kept (issue 10 rough edge 2, issue 11 item 4), and a
program that will not read is refused before a run exists.

The form speaks the start page's vocabulary: ``model`` is ``hello``, ``demo:NAME``,
``profile:NAME`` or ``replay`` with the recorded run in ``replay_of`` (``replay:RUN_ID`` is
still accepted); ``workspace`` is ``""``, ``none``, ``empty`` or ``demo:NAME``. File paths are
never taken from the form.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from django import forms
from django.conf import settings

from spellide.spell import api
from spellide.spell.api import Breakpoints, RunConfig

from .access import can_view
from .demos import Demo, get_demo
from .models import Run

MAX_TEXT = 5_000_000     # characters of a prompt or program (the upload limit usually bites first)
MAX_DEPTH = 1000         # the CLI's bound too (spellide.spell.cli.MAX_DEPTH)
MAX_BUDGET = 10_000.0    # USD: more is a typo, not a budget
MAX_MEMORY_MB = 65_536   # a run's memory limit
MAX_STEP_SECONDS = 86_400.0
MAX_KINDS = 50
REPLAYABLE = ("finished", "failed", "stopped")
_KIND = re.compile(r"^[A-Za-z][\w.*+!?<>=-]*(/[\w.*+!?<>=-]+)?$")


@dataclass
class NewRun:
    """What the form asks for: the run's configuration and how to set it up."""
    config: RunConfig
    title: str
    demo: Optional[str]
    seed: Any          # False: no workspace; None: an empty one; a Path: a copy of that directory


class NewRunForm(forms.Form):
    title = forms.CharField(required=False, max_length=200, error_messages={
        "max_length": "a title has at most %(limit_value)d characters (this one has %(show_value)d)"})
    prompt = forms.CharField(required=False, max_length=MAX_TEXT, strip=False)
    program = forms.CharField(required=False, max_length=MAX_TEXT, strip=False)
    demo = forms.CharField(required=False, max_length=64)
    model = forms.CharField(required=False, max_length=300)
    replay_of = forms.CharField(required=False, max_length=64)
    depth = forms.IntegerField(required=False, min_value=1, max_value=MAX_DEPTH, error_messages={
        "invalid": "depth must be a whole number (leave it empty for no limit)",
        "min_value": "depth must be at least %(limit_value)s (leave it empty for no limit)",
        "max_value": "depth must be at most %(limit_value)s"})
    budget = forms.FloatField(required=False, min_value=0, max_value=MAX_BUDGET, error_messages={
        "invalid": "budget must be a finite number of dollars (0 means no limit)",
        "min_value": "budget must not be negative (0 means no limit)",
        "max_value": "budget must be at most $%(limit_value)s"})
    memory_mb = forms.IntegerField(required=False, min_value=api.MIN_MEMORY_MB, max_value=MAX_MEMORY_MB, error_messages={
        "invalid": "memory limit (MB) must be a whole number (leave it empty for the default)",
        "min_value": "memory limit (MB) must be at least %(limit_value)s",
        "max_value": "memory limit (MB) must be at most %(limit_value)s"})
    step_time = forms.FloatField(required=False, min_value=1, max_value=MAX_STEP_SECONDS, error_messages={
        "invalid": "step time limit (s) must be a positive number of seconds",
        "min_value": "step time limit (s) must be a positive number of seconds (at least %(limit_value)s)",
        "max_value": "step time limit (s) must be at most %(limit_value)s seconds"})
    workspace = forms.CharField(required=False, max_length=100)
    breakpoints_set = forms.BooleanField(required=False)
    bp_before_model = forms.BooleanField(required=False)
    bp_after_completion = forms.BooleanField(required=False)
    bp_on_error = forms.BooleanField(required=False)
    effect_kinds = forms.CharField(required=False, max_length=2000)

    def __init__(self, *args: Any, user: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        self.program_problem: Optional[api.ReadProblem] = None

    # --- fields -------------------------------------------------------------------------
    def clean_demo(self) -> Optional[Demo]:
        name = self.cleaned_data.get("demo") or ""
        if not name:
            return None
        demo = get_demo(name)
        if demo is None:
            raise forms.ValidationError(f"unknown demo {name!r}")
        return demo

    def clean_prompt(self) -> Optional[str]:
        return _lines(self.cleaned_data.get("prompt")).strip() or None

    def clean_program(self) -> Optional[str]:
        return _lines(self.cleaned_data.get("program")).strip() or None

    def clean_replay_of(self) -> Optional[Run]:
        value = (self.cleaned_data.get("replay_of") or "").strip()
        return _recorded_run(self.user, value) if value else None

    def clean_effect_kinds(self) -> list[str]:
        kinds = [k for k in re.split(r"[\s,]+", self.cleaned_data.get("effect_kinds") or "") if k]
        bad = [k for k in kinds if not _KIND.match(k)]
        if bad:
            raise forms.ValidationError(f"{bad[0]!r} is not an effect kind (a namespace such as io, "
                                        "or a name such as io/spit)")
        if len(kinds) > MAX_KINDS:
            raise forms.ValidationError(f"at most {MAX_KINDS} effect kinds")
        return kinds

    def clean_workspace(self) -> str:
        ws = (self.cleaned_data.get("workspace") or "").strip()
        if ws in ("", "none", "empty"):
            return ws
        seed = get_demo(ws.removeprefix("demo:"))
        if seed is None or seed.workspace_seed is None:
            raise forms.ValidationError("unknown workspace seed")
        return f"demo:{seed.name}"

    # --- the form as a whole ------------------------------------------------------------
    def clean(self) -> dict[str, Any]:
        data = super().clean()
        demo: Optional[Demo] = data.get("demo")
        prompt, program = data.get("prompt"), data.get("program")
        if prompt and program:
            self.add_error("program", "give a prompt or a program, not both")
        elif demo is None and not (prompt or program) and "prompt" in data and "program" in data:
            self.add_error("prompt", "a run needs a prompt or a program")
        if program is None and prompt is None and demo is not None:
            program = demo.program
        if program and not self.has_error("program"):
            allow = bool(demo.run_config().allow_multiple_top_level) if demo is not None else False
            problem = api.init_problem(program, allow)
            if problem is not None:
                self.program_problem = problem
                where = f" at line {problem.line}, column {problem.col}" if problem.line is not None else ""
                self.add_error("program", f"the program does not read: {problem.message}{where}")
        if "model" in data:
            try:
                data["model"] = self._model(data["model"], demo, data.get("replay_of"))
            except forms.ValidationError as e:
                self.add_error("replay_of" if data["model"].strip() == "replay" else "model", e)
        return data

    def _model(self, spec: str, demo: Optional[Demo], replay_of: Optional[Run]) -> str | Run:
        """A known model: a spec string, or the recorded run to replay."""
        spec = (spec or "").strip() or (f"demo:{demo.name}" if demo else "hello")
        kind, _, arg = spec.partition(":")
        if spec == "replay":
            if replay_of is None and not self.has_error("replay_of"):
                raise forms.ValidationError("choose the recorded run to replay")
            return replay_of
        if kind == "replay":
            return _recorded_run(self.user, arg)
        if kind in ("demo", "scripted"):
            if get_demo(arg) is None:
                raise forms.ValidationError(f"unknown demo model {arg!r}")
            return f"demo:{arg}"
        if spec == "hello" or spec in known_models():
            return spec
        raise forms.ValidationError(f"unknown model {spec!r}")

    # --- the run it asks for ------------------------------------------------------------
    def new_run(self) -> NewRun:
        """The run this (valid) form asks for. A replayed run's record is written out here."""
        d = self.cleaned_data
        demo: Optional[Demo] = d["demo"]
        prompt, program = d["prompt"], d["program"]
        if demo is not None and not (prompt or program):
            prompt, program = demo.prompt, demo.program
        model, cache_mode = _model_spec(d["model"])
        config = RunConfig(prompt=prompt if not program else None, init=program, model=model)
        if demo is not None:
            base = demo.run_config()
            for k in ("depth", "budget", "recover", "seed", "allow_multiple_top_level", "inline_limit"):
                setattr(config, k, getattr(base, k))
            config.breakpoints = base.breakpoints
        if d["depth"] is not None:
            config.depth = d["depth"]
        if d["budget"] is not None:
            config.budget = d["budget"] or None
        if d["memory_mb"] is not None:
            config.memory_mb = d["memory_mb"]
        if d["step_time"] is not None:
            config.step_time_limit = d["step_time"]
        if cache_mode:
            config.cache_mode = cache_mode
        if d["breakpoints_set"] or d["bp_before_model"] or d["bp_after_completion"] or d["bp_on_error"] \
                or d["effect_kinds"]:
            config.breakpoints = Breakpoints(d["bp_before_model"], d["bp_after_completion"], d["bp_on_error"],
                                             d["effect_kinds"])
        ws, seed = d["workspace"], None
        if ws in ("", "none"):
            use_ws = demo is not None and demo.uses_workspace and ws != "none"
            seed = demo.workspace_seed if use_ws and demo is not None else None
        elif ws == "empty":
            use_ws = True
        else:
            use_ws, seed = True, get_demo(ws.removeprefix("demo:")).workspace_seed
        title = d["title"].strip() or (demo.title if demo else (prompt or "program")[:80])
        return NewRun(config, title, demo.name if demo else None, seed if use_ws else False)


def known_models() -> set[str]:
    """Model specs the form offers besides replays (hello, the demos, the provider profiles)."""
    from .stepinfo import model_choices
    return {value for _, choices in model_choices(None) for value, _ in choices}


def _recorded_run(user: Any, value: str) -> Run:
    try:
        run = Run.objects.filter(public_id=uuid.UUID(value)).first()
    except (ValueError, TypeError):
        run = None
    if run is None or not can_view(user, run):
        raise forms.ValidationError("unknown recorded run")
    if run.status not in REPLAYABLE:
        raise forms.ValidationError(f"that run is {run.status}: only a finished, failed or stopped run "
                                    "can be replayed")
    return run


def _model_spec(model: str | Run) -> tuple[str, Optional[str]]:
    """RunConfig.model and a cache mode override for a cleaned model value."""
    if isinstance(model, Run):
        from . import runner
        path = Path(settings.RECORDS_DIR) / f"{model.public_id}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        runner.record_of(model).save(path)
        return f"replay:{path}", "replay"
    if model.startswith("demo:"):
        return get_demo(model.removeprefix("demo:")).model_spec, None
    return model, None


def _lines(text: Optional[str]) -> str:
    return (text or "").replace("\r\n", "\n")
