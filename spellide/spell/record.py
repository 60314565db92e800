"""A run's record: everything needed to replay it, fork it, or resume it after a crash.

The record is the run's configuration, its seed, the model settings, its steps, every
effect entry, and every human edit (with the pause point it was made at), as JSON. It can
be written by ``spellide run --record`` or rebuilt from the events the IDE persisted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

from . import events as ev
from .effects.cache import EffectRecord

FORMAT_VERSION = 2
# Version 2 adds ``agents`` (handle, parent, status, generation, calls), ``warnings`` and the
# coordinator's ``journal`` (spell-agents.md section 8.1) and the ``turns`` order a strict
# replay follows, of multi-agent runs; version 1
# records (no agents) are read as before.
READ_VERSIONS = (1, 2)


@dataclass
class RecordedEdit:
    step: int
    point: str
    text: str
    author: Optional[str] = None
    at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "point": self.point, "text": self.text, "author": self.author, "at": self.at}


@dataclass
class Record:
    config: dict[str, Any] = field(default_factory=dict)
    model_settings: dict[str, Any] = field(default_factory=dict)
    steps: list[dict[str, Any]] = field(default_factory=list)
    effects: list[EffectRecord] = field(default_factory=list)
    edits: list[RecordedEdit] = field(default_factory=list)
    value: Optional[str] = None
    error: Optional[str] = None
    agents: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    journal: list[dict[str, Any]] = field(default_factory=list)
    turns: dict[str, Any] = field(default_factory=dict)   # the turnstile's order (coordinator.py)

    def to_json(self) -> dict[str, Any]:
        return {"format": "spellide-record", "version": FORMAT_VERSION, "config": self.config,
                "model_settings": self.model_settings, "steps": self.steps,
                "effects": [e.to_json() for e in self.effects],
                "edits": [e.to_json() for e in self.edits], "value": self.value, "error": self.error,
                "agents": self.agents, "warnings": self.warnings, "journal": self.journal,
                "turns": self.turns}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Record":
        if not isinstance(d, dict) or d.get("format") != "spellide-record":
            raise ValueError("not a spellide run record (expected a JSON object with \"format\": \"spellide-record\")")
        if d.get("version") not in READ_VERSIONS:
            raise ValueError(f"unsupported record version {d.get('version')!r} (this build reads "
                             f"{' and '.join(map(str, READ_VERSIONS))})")
        return cls(config=d.get("config") or {}, model_settings=d.get("model_settings") or {},
                   steps=list(d.get("steps") or []),
                   effects=[EffectRecord.from_json(e) for e in d.get("effects") or []],
                   edits=[RecordedEdit(int(e["step"]), e["point"], e["text"], e.get("author"), float(e.get("at") or 0))
                          for e in d.get("edits") or []],
                   value=d.get("value"), error=d.get("error"), agents=list(d.get("agents") or []),
                   warnings=list(d.get("warnings") or []), journal=list(d.get("journal") or []),
                   turns=dict(d.get("turns") or {}))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "Record":
        """A record file (``--record``), or a run bundle exported by the IDE (its record is
        rebuilt from the bundle's events)."""
        from . import bundle
        p = Path(path)
        try:
            with open(p, "rb") as f:   # bounded: a record or bundle, not any file (/dev/zero)
                raw = f.read(bundle.MAX_BUNDLE_BYTES + 1)
        except FileNotFoundError:
            raise ValueError(f"record file not found: {p}") from None
        if len(raw) > bundle.MAX_BUNDLE_BYTES:
            raise ValueError(f"record file {p} is larger than the limit of {bundle.MAX_BUNDLE_BYTES // 2 ** 20} MB")
        if raw[:2] == b"\x1f\x8b":
            return bundle.record_of_bundle(bundle.loads(raw, str(p)))
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            where = f"line {e.lineno} column {e.colno}: {e.msg}" if isinstance(e, json.JSONDecodeError) else "not UTF-8"
            raise ValueError(f"record file {p}: invalid JSON at {where}") from None
        if bundle.is_bundle(data):
            return bundle.record_of_bundle(data)
        return cls.from_json(data)

    @classmethod
    def from_events(cls, events: Iterable[ev.Event | dict]) -> "Record":
        """Rebuild a record from a run's persisted events (the IDE's replays, forks and
        crash-resume; a bundle's record), equal for replay to the one the run returns
        (``Run.record``): a step's ``program`` is its own (the last program event not made by
        a receipt; a receipt's rewrites go to ``received``, as ``RunResult`` keeps them), and
        a multi-agent run's agents, warnings, journal and turn order come from its
        ``agents_ended`` event. Events of a run whose process was killed have none: that
        record's turns are the ones its step and effect events carried, as far as they go
        (``partial``): a resumed run follows them, then its agents go free."""
        rec = cls()
        steps: dict[int, dict[str, Any]] = {}
        order: dict[int, int] = {}       # the turn order the step and effect events carry
        actors: dict[int, list] = {}
        for e in events:
            t, data = (e.type, e.data) if isinstance(e, ev.Event) else (e["type"], e["data"])
            delta = data.get("turns") if t in (ev.STEP_STARTED, ev.EFFECT) else None
            if isinstance(delta, dict):
                order.update(enumerate(delta.get("order") or [], int(delta.get("at") or 0)))
                actors.update(enumerate(delta.get("actors") or [], int(delta.get("actors_at") or 0)))
            if t == ev.RUN_STARTED:
                rec.config = data.get("config") or {}
                rec.model_settings = data.get("model_settings") or {}
                # a resumed run's next execution starts its order afresh (it follows the
                # previous one's as far as that went, and its own events carry it again)
                order.clear()
                actors.clear()
            elif t == ev.STEP_STARTED:
                steps[data["step"]] = {"id": data["step"], "parent": data.get("parent"),
                                       "depth": data.get("depth"), "prefix": data.get("prefix"),
                                       "agent": data.get("agent"), "generation": data.get("generation")}
            elif t == ev.COMPLETION and data["step"] in steps:
                steps[data["step"]]["completion"] = data.get("completion")
            elif t == ev.PROGRAM and data["step"] in steps:
                if data.get("receipt"):
                    steps[data["step"]].setdefault("received", []).append(data.get("program"))
                else:
                    steps[data["step"]]["program"] = data.get("program")
            elif t == ev.STEP_FINISHED and data["step"] in steps:
                steps[data["step"]].update(value=data.get("value"), error=data.get("error"))
            elif t == ev.EFFECT:
                rec.effects.append(EffectRecord.from_json(data["effect"]))
            elif t == ev.RESUMED and data.get("edited"):
                rec.edits.append(RecordedEdit(int(data["step"]), data["point"], data["text"],
                                              data.get("author"), float(data.get("at") or 0)))
            elif t == ev.RUN_FINISHED:
                rec.value = data.get("value")
            elif t == ev.RUN_FAILED:
                rec.error = data.get("error")
            elif t == ev.AGENTS_ENDED:
                rec.agents = list(data.get("agents") or [])
                rec.warnings = list(data.get("warnings") or [])
                rec.journal = list(data.get("journal") or [])
                rec.turns = dict(data.get("turns") or {})
        rec.steps = [steps[k] for k in sorted(steps)]
        if not rec.turns and order:   # no agents_ended event: the order as far as the events go
            rec.turns = _partial_turns(order, actors)
        return rec

    def edits_by_point(self, through: Optional[int] = None) -> dict[tuple[int, str], RecordedEdit]:
        out: dict[tuple[int, str], RecordedEdit] = {}
        for e in self.edits:
            if through is None or e.step <= through:
                out[(e.step, e.point)] = e
        return out


def _partial_turns(order: dict[int, int], actors: dict[int, list]) -> dict[str, Any]:
    """The turn order of a run whose events end early (its process died): the unbroken run of
    turns from the first, whose actors are known. ``partial``: a resumed run follows it as far
    as it goes (``Coordinator.replay(prefix=True)``); a strict replay diverges where it ends."""
    names: list[list] = []
    while len(names) in actors:
        names.append(actors[len(names)])
    out: list[int] = []
    while len(out) in order and 0 <= order[len(out)] < len(names):
        out.append(order[len(out)])
    return {"actors": names, "order": out, "partial": True}
