"""Runs in and out of this server: interchange downloads (OTLP/JSON spans, an ATIF trajectory),
run bundles (download, upload), and a strict replay of a stored run from its own record.

Downloads follow the run's page access rule (owner or staff, or its share link), so a reviewer
with a share link can take the trace into their own tools. Import and replay create runs, so
they need a signed-in user (and CSRF, as every POST).
"""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Callable, Optional

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from spellide.spell import api
from spellide.web import access, bundles
from spellide.web.interchange import atif, otel
from spellide.web.models import Run
from spellide.web.runner.replay import replay_run
from spellide.web.runner.service import RunRefused
from spellide.web.views.pages import _public, _resolve


def spellide_version() -> str:
    try:
        return version("spellide")
    except PackageNotFoundError:
        return "0"


def _download(build: Callable[..., Any], suffix: str, content_type: str) -> Callable[..., HttpResponse]:
    @require_GET
    def view(request: HttpRequest, public_id: Any = None, token: Optional[str] = None) -> HttpResponse:
        nav = _resolve(request, public_id, token)
        resp = HttpResponse(build(nav.run, request.user if token is None else None),
                            content_type=content_type)
        resp["Content-Disposition"] = f'attachment; filename="run-{nav.run.public_id}.{suffix}"'
        return resp

    return view


def _json(export: Callable[..., dict]) -> Callable[[Run, Any], str]:
    return lambda run, _user: json.dumps(export(run, version=spellide_version()), ensure_ascii=False)


def _bundle(run: Run, user: Any) -> bytes:
    return api.dump_bundle(bundles.export_bundle(run, user, version=spellide_version()))


otel_json = _download(_json(otel.export_run), "otel.json", "application/json; charset=utf-8")
atif_json = _download(_json(atif.export_run), "atif.json", "application/json; charset=utf-8")
bundle_file = _download(_bundle, "spellide.json.gz", "application/gzip")
share_otel_json = _public(otel_json)
share_atif_json = _public(atif_json)
share_bundle_file = _public(bundle_file)


def _refused(request: HttpRequest, title: str, message: str, status: int) -> HttpResponse:
    return render(request, "spellide/refused.html", {"title": title, "message": message}, status=status)


@require_POST
def import_run(request: HttpRequest) -> HttpResponse:
    """Upload a bundle (``bundle`` file field); the imported run opens on success."""
    f = request.FILES.get("bundle")
    if f is None:
        return _refused(request, "Import refused", "Choose a run bundle file to import.", 400)
    if f.size > api.MAX_BUNDLE_BYTES:
        return _refused(request, "Import refused",
                        f"The file is {f.size:,} bytes; bundles up to {api.MAX_BUNDLE_BYTES:,} bytes are accepted.", 413)
    try:
        data = api.load_bundle_bytes(f.read(), f.name or "upload")
        run = bundles.import_bundle(data, request.user)
    except api.BundleError as e:
        return _refused(request, "Import refused", str(e), 400)
    return HttpResponseRedirect(run.get_absolute_url())


@require_POST
def import_trace(request: HttpRequest) -> HttpResponse:
    """Upload a zip or tar of a trace directory (``trace`` file field); the run opens on success."""
    from spellide.web.trace_import import MAX_UPLOAD, TraceRefused, import_archive
    f = request.FILES.get("trace")
    if f is None:
        return _refused(request, "Import refused", "Choose a zip or tar of a trace directory.", 400)
    if f.size > MAX_UPLOAD:
        return _refused(request, "Import refused", f"The file is {f.size:,} bytes; archives up to {MAX_UPLOAD:,} bytes are accepted.", 413)
    try:
        run = import_archive(f.read(), f.name or "upload", request.user)
    except TraceRefused as e:
        return _refused(request, "Import refused", str(e), 400)
    return HttpResponseRedirect(run.get_absolute_url())


@require_POST
def replay(request: HttpRequest, public_id: Any) -> HttpResponse:
    """Replay a run strictly from its record: a new run, nothing executed live."""
    nav = _resolve(request, public_id)
    if not access.can_fork(request.user, nav.run):
        raise Http404("No such run")
    if nav.run.is_active:
        return _refused(request, "Replay refused", "The run is still active: replay it once it has ended.", 409)
    try:
        new = replay_run(nav.run, request.user, strict=request.POST.get("mode", "strict") != "replay")
    except (RunRefused, ValueError) as e:
        return _refused(request, "Replay refused", str(e), 400)
    return HttpResponseRedirect(new.get_absolute_url())
