"""The websocket origin check: a socket is accepted only from a page of this server's own
origin (scheme, host *and* port of the Host the request came to) or of a configured trusted
origin (``CSRF_TRUSTED_ORIGINS``).

Why not Channels' ``AllowedHostsOriginValidator``: it compares the Origin's host with
ALLOWED_HOSTS and ignores scheme and port, so a page on another port of the same host
(``http://127.0.0.1:9999``, which the browser sends the IDE's cookies from, as cookies are
not scoped by port) could open a run's socket and steer it.
"""

from __future__ import annotations

from typing import Any, Optional

from channels.security.websocket import OriginValidator
from django.conf import settings
from django.http.request import split_domain_port, validate_host


def _header(scope: dict, name: bytes) -> Optional[str]:
    for key, value in scope.get("headers") or []:
        if key == name:
            try:
                return value.decode("latin-1")
            except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
                return None
    return None


def own_origin(scope: dict) -> Optional[str]:
    """``scheme://host[:port]`` of the Host this socket request came to, if that host is one
    of ALLOWED_HOSTS (else None: no origin is this server's)."""
    host = _header(scope, b"host")
    if not host and scope.get("server"):
        name, port = scope["server"][0], scope["server"][1]
        host = f"[{name}]:{port}" if ":" in str(name) else f"{name}:{port}"
    if not host:
        return None
    domain, _port = split_domain_port(host)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return None
    scheme = "https" if scope.get("scheme") in ("wss", "https") else "http"
    return f"{scheme}://{host.lower()}"


def trusted_origins() -> list[str]:
    """CSRF_TRUSTED_ORIGINS in the pattern form ``OriginValidator`` matches (Django's
    ``https://*.example.com`` wildcard is Channels' ``https://.example.com``)."""
    return [o.replace("://*.", "://.", 1) for o in settings.CSRF_TRUSTED_ORIGINS]


class SameOriginValidator:
    """Channels' ``OriginValidator`` with the allowed origins computed per request: this
    server's own origin plus the trusted ones. Scheme, host and port must all match."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict, receive: Any, send: Any) -> Any:
        origin = own_origin(scope)
        allowed = ([origin] if origin else []) + trusted_origins()
        return await OriginValidator(self.application, allowed)(scope, receive, send)
