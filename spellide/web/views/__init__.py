"""The IDE's views: pages (``pages``) and control endpoints (``controls``)."""

from __future__ import annotations

from django.http import HttpRequest


def is_htmx(request: HttpRequest) -> bool:
    """True for a request htmx made (it answers with a fragment, not a page)."""
    return request.headers.get("HX-Request") == "true"
