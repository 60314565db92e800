"""Replaying a stored run from its own record: the run's effects are served from its effect
cache and nothing executes live, so a run imported from another server replays offline.
In strict mode any difference from the record (the code, the model settings or a program
changed) ends the replay as diverged, at the first divergent step, saying what differs."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from django.conf import settings

from spellide.spell.api import RunConfig
from spellide.web.models import Run

from .service import make_workspace, record_of, start_run


def record_file(src: Run) -> Path:
    """The run's record, rebuilt from its events, written where ``replay:FILE`` reads it."""
    path = Path(settings.RECORDS_DIR) / f"{src.public_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record_of(src).save(path)
    return path


def replay_run(src: Run, user: Any, *, strict: bool = True) -> Run:
    """Start a new run that replays ``src`` from its record (``strict``: a miss is a divergence)."""
    config = RunConfig.from_json(src.config or {})
    config.model = f"replay:{record_file(src)}"
    config.cache_mode = "strict" if strict else "replay"
    new_id = uuid.uuid4()
    if config.workspace:
        config.workspace = make_workspace(new_id)   # io/ results come from the cache; reads see an empty dir
    title = f"{'strict ' if strict else ''}replay of {src.title or 'run'}"
    return start_run(user, config, title, public_id=new_id)
