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
    """

    transport = PREFILL

    def __init__(self, script: list[Any], name: str = "scripted"):
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
        if isinstance(data, dict):
            data = data.get("completions")
        if not isinstance(data, list):
            raise ValueError(f"scripted model file {p}: expected a JSON list of completion strings")
        for i, entry in enumerate(data):
            if not (isinstance(entry, str) or (isinstance(entry, dict) and isinstance(entry.get("text"), str))):
                raise ValueError(f"scripted model file {p}: entry {i} is not a string or {{\"text\": ...}}")
        return cls(data, name=f"scripted:{p.name}")

    def complete(self, request: ModelRequest) -> Completion:
        with self._lock:
            index = request.extra.get("call_index", self._calls)
            self._calls = index + 1
        if index >= len(self.script):
            raise ModelError(f"the scripted model has no completion #{index + 1} "
                             f"(the script has {len(self.script)})")
        entry = self.script[index]
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
