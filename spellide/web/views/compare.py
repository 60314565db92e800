"""``/runs/<a>/compare/<b>/``: two runs the user may see, side by side (``spellide.web.compare``).
``/compare/?a=<id>&b=<id>`` (the run list's selection) redirects there."""

from __future__ import annotations

import uuid
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.shortcuts import render
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET

from spellide.web import access, charts
from spellide.web.compare import compare_runs
from spellide.web.models import Run


def _visible(request: HttpRequest, public_id: Any) -> Run:
    run = Run.objects.filter(public_id=public_id).first()
    if run is None or not access.can_view(request.user, run):
        raise Http404("No such run")
    return run


@require_GET
def compare(request: HttpRequest, public_id: Any, other_id: Any) -> HttpResponse:
    a, b = _visible(request, public_id), _visible(request, other_id)
    step = request.GET.get("step")
    try:
        step_id = int(step) if step not in (None, "") else None
    except ValueError:
        return HttpResponseBadRequest("step must be a whole number")
    c = compare_runs(a, b, step_id)
    ca, cb = charts.run_charts(a), charts.run_charts(b)
    # numbers only (see charts): no run text in the SVG
    overlay = mark_safe(charts.overlay_context_svg([ca, cb]))
    return render(request, "spellide/compare.html", {"c": c, "a": a, "b": b, "overlay": overlay,
                                                     "base": f"/runs/{a.public_id}/compare/{b.public_id}/"})


@require_GET
def compare_pick(request: HttpRequest) -> HttpResponse:
    ids = [x for x in request.GET.getlist("run") + [request.GET.get("a", ""), request.GET.get("b", "")] if x]
    try:
        a, b = (uuid.UUID(x) for x in ids[:2]) if len(ids) >= 2 else (None, None)
    except ValueError:
        a = b = None
    if a is None or b is None:
        return render(request, "spellide/refused.html", {
            "title": "Compare", "message": "Tick two runs in the list to compare them."}, status=400)
    return HttpResponseRedirect(f"/runs/{a}/compare/{b}/")
