"""The effect journal: a crash cannot make an effect run twice.

Events reach the database through the persister thread, a few milliseconds behind the run. An
effect that ran just before the server process died could therefore be missing from the
database, and a resume would run it again. So the worker thread itself appends every *executed*
effect (status live or miss) to ``var/journal/<run>.jsonl`` before the run goes on: one short
JSON line (the effect's key, result, status, timing and usage; not its arguments, only their
digest), flushed to the operating system, which keeps it when the process is killed. Resuming an
interrupted run adds the journal's effects that the database lacks to the run's record (and to
its effect rows), so they are served from the cache instead of running again. The journal of a
run is removed when the run ends.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Optional

from django.conf import settings

log = logging.getLogger("spellide.runner")


def journal_path(public_id: Any) -> Path:
    return Path(settings.VAR_DIR) / "journal" / f"{public_id}.jsonl"


class EffectJournal:
    def __init__(self, public_id: Any, segment: int) -> None:
        self.segment = segment
        self.path = journal_path(public_id)
        self._f: Optional[Any] = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._f = os.fdopen(fd, "a", encoding="utf-8")
        except OSError:
            log.exception("cannot open the effect journal %s", self.path)

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


def read_journal(public_id: Any) -> list[dict[str, Any]]:
    """The journal's entries; a torn last line (the process died mid-write) is skipped."""
    path = journal_path(public_id)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
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


def remove_journal(public_id: Any) -> None:
    try:
        journal_path(public_id).unlink()
    except FileNotFoundError:
        pass
    except OSError:
        log.exception("cannot remove the effect journal of %s", public_id)
