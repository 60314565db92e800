"""Downloads of a run in interchange formats: OTLP/JSON spans and an ATIF trajectory.

Same access rule as the run's pages (owner or staff, or the run's share link), so a reviewer
with a share link can take the trace into their own tools.
"""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Callable, Optional

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from spellide.web.interchange import atif, otel
from spellide.web.views.pages import _public, _resolve


def _version() -> str:
    try:
        return version("spellide")
    except PackageNotFoundError:
        return "0"


def _download(build: Callable[..., dict], suffix: str) -> Callable[..., HttpResponse]:
    @require_GET
    def view(request: HttpRequest, public_id: Any = None, token: Optional[str] = None) -> HttpResponse:
        nav = _resolve(request, public_id, token)
        body = json.dumps(build(nav.run, version=_version()), ensure_ascii=False)
        resp = HttpResponse(body, content_type="application/json; charset=utf-8")
        resp["Content-Disposition"] = f'attachment; filename="run-{nav.run.public_id}.{suffix}"'
        return resp

    return view


otel_json = _download(otel.export_run, "otel.json")
atif_json = _download(atif.export_run, "atif.json")
share_otel_json = _public(otel_json)
share_atif_json = _public(atif_json)
