"""Models that need no network: the reference's test model, scripted completions, and the
stand-in used when a replayed run asks for a completion that was never recorded."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, Optional

from ..limits import read_input
from .base import PREFILL, Completion, ModelError, ModelRequest, Usage


class HelloModel:
    """Every call returns the Spell string literal ``"hello world"`` (the reference's ``-t``)."""

    name = "hello"
    transport = PREFILL

    def complete(self, request: ModelRequest) -> Completion:
        text = "hello world" if request.kind == "text" else '"hello world"'
        if request.on_delta:
            request.on_delta(text)
        return Completion(text, Usage(), self.name, self.transport)

    def cache_settings(self) -> dict[str, Any]:
        return {"model": self.name}


class ScriptedModel:
    """The i-th model call of a run gets the i-th completion of the script.

    The index is the run's model-call count (``request.extra["call_index"]``, cache hits
    included), so a fork or a resumed run that replays its first k calls from the effect cache
    continues with completion k+1 rather than starting the script over. Entries may be strings
    or ``{"text": ..., "latency": seconds, "usage": {...}}``.

    A multi-agent script is a map from a handle without its colon (``"main"`` for the root) to
    that agent's list: the i-th call *of that agent* (``extra["agent"]``,
    ``extra["agent_call_index"]``, over all its lifecycles and nestings) gets its i-th entry,
    so how the agents interleave does not matter.
    """

    transport = PREFILL

    def __init__(self, script: "list[Any] | dict[str, list[Any]]", name: str = "scripted"):
        self.script = script
        self.name = name
        self._calls = 0
        self._lock = threading.Lock()

    @classmethod
    def from_file(cls, path: str | Path) -> "ScriptedModel":
        p = Path(path)
        try:
            data = json.loads(read_input(p, "scripted model file"))
        except FileNotFoundError:
            raise ValueError(f"scripted model file not found: {p}") from None
        except json.JSONDecodeError as e:
            raise ValueError(f"scripted model file {p}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
        if isinstance(data, dict) and "completions" in data:
            data = data.get("completions")
        if isinstance(data, dict):   # per agent: {"main": [...], "w": [...]}
            for handle, entries in data.items():
                if not isinstance(entries, list):
                    raise ValueError(f"scripted model file {p}: the script of agent {handle!r} is not a list")
                _check_entries(p, entries, f"agent {handle!r} ")
            return cls(data, name=f"scripted:{p.name}")
        if not isinstance(data, list):
            raise ValueError(f"scripted model file {p}: expected a JSON list of completion strings "
                             f"or an object mapping agent handles to lists")
        _check_entries(p, data, "")
        return cls(data, name=f"scripted:{p.name}")

    def _entry(self, request: ModelRequest) -> Any:
        if isinstance(self.script, dict):
            agent = str(request.extra.get("agent", "main"))
            index = int(request.extra.get("agent_call_index", 0))
            entries = self.script.get(agent)
            if entries is None:
                raise ModelError(f"the scripted model has no script for agent :{agent}")
            if index >= len(entries):
                raise ModelError(f"the scripted model has no completion #{index + 1} for agent "
                                 f":{agent} (its script has {len(entries)})")
            return entries[index]
        with self._lock:
            index = request.extra.get("call_index", self._calls)
            self._calls = index + 1
        if index >= len(self.script):
            raise ModelError(f"the scripted model has no completion #{index + 1} "
                             f"(the script has {len(self.script)})")
        return self.script[index]

    def complete(self, request: ModelRequest) -> Completion:
        entry = self._entry(request)
        usage = Usage()
        if isinstance(entry, dict):
            if entry.get("latency"):
                time.sleep(float(entry["latency"]))
            usage = Usage.from_json(entry.get("usage"))
            entry = entry["text"]
        if request.on_delta:
            request.on_delta(entry)
        return Completion(entry, usage, self.name, self.transport)

    def cache_settings(self) -> dict[str, Any]:
        return {"model": "scripted"}


def _check_entries(path: Path, entries: list, who: str) -> None:
    for i, entry in enumerate(entries):
        if not (isinstance(entry, str) or (isinstance(entry, dict) and isinstance(entry.get("text"), str))):
            raise ValueError(f"scripted model file {path}: {who}entry {i} is not a string or {{\"text\": ...}}")


class NoLiveModel:
    """Used by replay: a model call that was not recorded cannot be answered."""

    transport = PREFILL

    def __init__(self, settings: Optional[dict] = None, name: str = "replay"):
        self.name = name
        self.settings = settings or {"model": "scripted"}

    def complete(self, request: ModelRequest) -> Completion:
        raise ModelError("this replayed run has no recorded completion for this model call "
                         "(the prefix differs from the record, or the run went further)")

    def cache_settings(self) -> dict[str, Any]:
        return dict(self.settings)
