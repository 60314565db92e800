"""Caps on how many runs hold a process (issue 11 item 6): each active run (queued, running,
paused) is a child process of the server, and a paused one keeps its process, with the
program's whole state, for as long as nobody resumes it. Without a cap one person (or a
script) could hold the server's memory with paused runs.

Two settings, 0 switching either off:
- ``SPELLIDE_MAX_ACTIVE_RUNS_PER_USER``: a user's queued + running + paused runs;
- ``SPELLIDE_MAX_PAUSED_RUNS``: paused runs on the whole server (all users).

They are checked where a run gets a process (start, fork, resume after a restart) and
where a person asks a run to pause. A breakpoint still pauses a run that is already going
(refusing it there would change what the run does); the per-user cap bounds those.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Iterator, Optional

from django.conf import settings

from .models import ACTIVE_STATUSES, Run

STATUS = 429   # Too Many Requests: come back when a run has ended

# Check-then-start is one step for the requests of this process (the embedded server); in
# scale mode several servers may each let one more run through at the same moment.
_lock = threading.Lock()


class QuotaExceeded(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def paused_refusal() -> Optional[str]:
    """Why one more run may not pause now (None when it may)."""
    limit = settings.SPELLIDE_MAX_PAUSED_RUNS
    if limit and Run.objects.filter(status=Run.Status.PAUSED).count() >= limit:
        return (f"the server already holds {limit} paused runs (SPELLIDE_MAX_PAUSED_RUNS), each "
                f"keeping a process: resume or stop a paused run first")
    return None


def start_refusal(user: Any) -> Optional[str]:
    """Why ``user`` may not give one more run a process now (None when they may)."""
    limit = settings.SPELLIDE_MAX_ACTIVE_RUNS_PER_USER
    if limit:
        active = Run.objects.filter(owner=user, status__in=ACTIVE_STATUSES).count()
        if active >= limit:
            return (f"you have {active} active runs (queued, running or paused; the limit is {limit}, "
                    f"SPELLIDE_MAX_ACTIVE_RUNS_PER_USER): stop a run or let one finish first")
    return paused_refusal()


@contextmanager
def run_slot(user: Any) -> Iterator[None]:
    """Around starting a run: raises ``QuotaExceeded`` when ``user`` is at a cap, else holds
    the check until the run's row exists, so two requests at once cannot both pass it."""
    with _lock:
        refused = start_refusal(user)
        if refused is not None:
            raise QuotaExceeded(refused)
        yield
