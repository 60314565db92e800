"""System prompts, one per transport, versioned with the repository.

Each ``sysprompt-<transport>.txt`` holds the transport-specific instructions (how the answer
must be shaped) and a ``{{spell-guide}}`` placeholder for the shared guide to the language
(``spell-guide.txt``: the wrapper, the effect boundary, the turn helpers, the edit markers,
worked examples), whose ``{{effect-namespaces}}`` is the list of effect namespaces from their
declarations (``namespaces.effects_guide``). ``system_prompt(transport)`` returns the assembled text; that text is what
providers send and what the IDE shows for a run.

``PROMPT_VERSION`` must be bumped whenever a prompt file changes: it is part of every model
call's effect key (via ``Model.cache_settings()``), so replays of runs recorded with an older
prompt are visible misses. ``prompt_digest`` (also in the key) catches a forgotten bump.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

PROMPT_VERSION = "2026-12-03.1"

_DIR = Path(__file__).resolve().parent
_FILES = {"prefill": "sysprompt-prefill.txt", "message": "sysprompt-message.txt",
          "tool-call": "sysprompt-toolcall.txt"}


@lru_cache(maxsize=None)
def system_prompt(transport: str) -> str:
    """The full system prompt for ``prefill``, ``message`` or ``tool-call``."""
    try:
        name = _FILES[transport]
    except KeyError:
        raise ValueError(f"no system prompt for transport {transport!r}; "
                         f"known: {', '.join(_FILES)}") from None
    from ..namespaces import effects_guide
    head = (_DIR / name).read_text(encoding="utf-8")
    guide = (_DIR / "spell-guide.txt").read_text(encoding="utf-8")
    guide = guide.replace("{{effect-namespaces}}", effects_guide())
    return head.replace("{{spell-guide}}", guide.strip()).strip() + "\n"


@lru_cache(maxsize=None)
def prompt_digest(transport: str) -> str:
    """Short SHA-256 of the assembled prompt text ("" for transports without one)."""
    if transport not in _FILES:
        return ""
    return hashlib.sha256(system_prompt(transport).encode("utf-8")).hexdigest()[:12]


def transports() -> list[str]:
    return list(_FILES)
