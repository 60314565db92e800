"""Who may see and steer a run.

A run is visible to its owner and to staff, read-only to anyone holding its share token
(an explicit, revocable link), and read-only with comments to signed-in users who opened its
review link (revocable too). Only the owner controls it (pause, edit, fork into their own
runs, share); staff may view but not steer someone else's run.

Controls sent over a run's websocket carry a per-page token (``control_token``), as HTTP
controls carry a CSRF token: a socket opened by a page that did not get the token from this
server (another origin riding on the user's cookies) can at most watch, never steer.
"""

from __future__ import annotations

from typing import Any, Optional

from django.utils.crypto import constant_time_compare, salted_hmac

CONTROL_TOKEN_SALT = "spellide.web.access.control_token"


def can_view(user: Any, run: Any, token: Optional[str] = None) -> bool:
    if token and run.share_token and constant_time_compare(str(token), run.share_token):
        return True
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    return run.owner_id == user.pk or bool(getattr(user, "is_staff", False)) or is_reviewer(user, run)


def is_reviewer(user: Any, run: Any) -> bool:
    """Whether ``user`` opened the run's current review link (read and comment, never steer)."""
    if not getattr(run, "review_token", None) or not getattr(user, "is_authenticated", False):
        return False
    from spellide.web.models import Reviewer
    return Reviewer.objects.filter(run_id=run.pk, user_id=user.pk, token=run.review_token).exists()


def can_comment(user: Any, run: Any) -> bool:
    """Review comments and verdicts: signed-in users who may see the run (owner, staff, or
    through its review link); never a share link's anonymous viewer."""
    return can_view(user, run)


def can_control(user: Any, run: Any) -> bool:
    return bool(user is not None and getattr(user, "is_authenticated", False) and run.owner_id == user.pk)


def can_fork(user: Any, run: Any) -> bool:
    """Forking creates a new run owned by the user: anyone who may view the run (not by token)."""
    return can_view(user, run)


def control_token(user: Any, run: Any, session_key: Optional[str]) -> str:
    """The token a run page sends with every control over the run's websocket: an HMAC of
    the user, the run and the session (so it is useless in another session or for another
    run). Rendered only into pages of users who may control the run."""
    value = f"{user.pk}:{run.public_id}:{session_key or ''}"
    return salted_hmac(CONTROL_TOKEN_SALT, value, algorithm="sha256").hexdigest()


def check_control_token(user: Any, run: Any, session_key: Optional[str], token: Any) -> bool:
    if not isinstance(token, str) or not token or not session_key:
        return False
    return constant_time_compare(token, control_token(user, run, session_key))
