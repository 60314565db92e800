"""The run's Charts view (a run-wide view like the effect cache): context size, tokens and cost,
and step durations, drawn on the server (``spellide.web.charts``)."""

from __future__ import annotations

from typing import Any, Optional

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET

from spellide.web import charts
from spellide.web.views import is_htmx
from spellide.web.views.pages import _public, _resolve, _run_view


@require_GET
def run_charts(request: HttpRequest, public_id: Any = None, token: Optional[str] = None) -> HttpResponse:
    nav = _resolve(request, public_id, token)
    data = charts.run_charts(nav.run)
    # The SVG holds only numbers and step numbers (labels are escaped anyway): no run text.
    svg = {k: mark_safe(v) for k, v in data.svg().items()}
    ctx = {"nav": nav, "run": nav.run, "view": "charts", "svg": svg, "points": data.points,
           "summary": charts.summary(data), "chars_per_token": charts.CHARS_PER_TOKEN}
    if is_htmx(request):
        return render(request, "spellide/charts.html#charts_view", ctx)
    return _run_view(request, nav, ctx)


share_charts = _public(run_charts)
