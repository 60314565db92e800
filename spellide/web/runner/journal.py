"""Where the IDE keeps each run's effect journal (``spellide.spell.journal``): one file per run
under ``var/journal/``, written by the run's process, read when an interrupted run resumes,
removed once every event of the run is in the database."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from django.conf import settings

from spellide.spell import api as core

log = logging.getLogger("spellide.runner")


def journal_path(public_id: Any) -> Path:
    return Path(settings.VAR_DIR) / "journal" / f"{public_id}.jsonl"


def read_journal(public_id: Any) -> list[dict[str, Any]]:
    return core.read_journal(journal_path(public_id))


def remove_journal(public_id: Any) -> None:
    try:
        journal_path(public_id).unlink()
    except FileNotFoundError:
        pass
    except OSError:
        log.exception("cannot remove the effect journal of %s", public_id)
