"""The effect journal: a crash cannot make an effect run twice.

Whoever stores a run's events (the IDE's database writer) is a little behind the run, and a
process can die between an effect and the storing of its event; a resume from the stored
record would then run that effect again. So the run itself appends every *executed* effect
(status live or miss) to a journal file before it goes on: one short JSON line (the effect's
key, result, status, timing and usage; not its arguments, only their digest), flushed to the
operating system, which keeps it when the process is killed. Whoever resumes the run adds the
journal's effects that the stored record lacks, so they are served from the cache instead of
running again.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Optional

from . import events as ev

log = logging.getLogger("spellide.spell")

EXECUTED = ("live", "miss")


class EffectJournal:
    """A run listener (``Run(listeners=[journal])``) that journals executed effects."""

    def __init__(self, path: str | Path, segment: int) -> None:
        self.segment = segment
        self.path = Path(path)
        self._f: Optional[Any] = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._f = os.fdopen(fd, "a", encoding="utf-8")
        except OSError:
            log.exception("cannot open the effect journal %s", self.path)

    def __call__(self, event: ev.Event) -> None:
        if event.type == ev.EFFECT:
            effect = event.data.get("effect") or {}
            if effect.get("status") in EXECUTED:
                self.append(event.seq, effect)

    def append(self, seq: int, effect: dict[str, Any]) -> None:
        if self._f is None:
            return
        entry = {"segment": self.segment, "seq": seq,
                 "effect": {k: v for k, v in effect.items() if k != "args"}}
        try:
            self._f.write(json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n")
            self._f.flush()
        except (OSError, TypeError, ValueError):
            log.exception("cannot write the effect journal %s", self.path)

    def close(self) -> None:
        if self._f is not None:
            try:
                self._f.close()
            except OSError:
                pass
            self._f = None


def read_journal(path: str | Path) -> list[dict[str, Any]]:
    """The journal's entries; a torn last line (the process died mid-write) is skipped."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("effect"), dict):
            out.append(entry)
    return out
