"""Who may see and steer a run.

A run is visible to its owner and to staff, and read-only to anyone holding its share token
(an explicit, revocable link). Only the owner controls it (pause, edit, fork into their own
runs, share); staff may view but not steer someone else's run.
"""

from __future__ import annotations

from typing import Any, Optional

from django.utils.crypto import constant_time_compare


def can_view(user: Any, run: Any, token: Optional[str] = None) -> bool:
    if token and run.share_token and constant_time_compare(str(token), run.share_token):
        return True
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    return run.owner_id == user.pk or bool(getattr(user, "is_staff", False))


def can_control(user: Any, run: Any) -> bool:
    return bool(user is not None and getattr(user, "is_authenticated", False) and run.owner_id == user.pk)


def can_fork(user: Any, run: Any) -> bool:
    """Forking creates a new run owned by the user: anyone who may view the run (not by token)."""
    return can_view(user, run)
