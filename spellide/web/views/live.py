"""The run page's state in one response, for a page that cannot trust what it has.

A live page applies the websocket's fragments in event order (``fragments.render_batch``).
When it sees a gap in the event numbers, a reconnect, or anything out of order, it does not
guess: it asks this view for the state of everything it shows (the rows of its window, the
step count, the run's status, totals and pause panel) and the event number that state is at
least as new as, then goes on applying only the events after that number. Since every
fragment carries whole state, a page that did this equals a fresh load once the events after
the number are applied.
"""

from __future__ import annotations

from typing import Any, Optional

from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET

from spellide.web import lanes, stepinfo
from spellide.web.views.pages import MAX_WINDOW, WINDOW, Nav, _controls, _public, _resolve

MAX_ROWS = 400    # the most rows a following page keeps (ide.js MAX_ROWS)


def _num(request: HttpRequest, name: str) -> Optional[int]:
    try:
        return int(request.GET[name])
    except (KeyError, ValueError):
        return None


def _window(nav: Nav, first: Optional[int], count: int, tail: bool) -> stepinfo.Window:
    """The rows the page shows now: from its first row to the end of the run when it shows the
    tail (the newest ``MAX_ROWS``), else as many rows from its first row as it shows."""
    run = nav.run
    if first is None:
        return stepinfo.window_around(run, None, WINDOW)
    qs = stepinfo._step_rows_qs(run).filter(step_id__gte=first)
    if tail:
        steps = list(qs.order_by("-step_id")[:MAX_ROWS])[::-1]
    else:
        steps = list(qs.order_by("step_id")[:max(1, min(count, MAX_WINDOW))])
    if not steps:
        return stepinfo.window_around(run, None, WINDOW)
    window = stepinfo._finish_window(run, steps, None)
    if tail:
        # steps stored after the rows were read are counted as "later" by the next query, but
        # they are not an older window's remainder: their events come after this state, and a
        # page showing a "later" button would not add their rows
        window.total -= window.later
        window.later = 0
    return window


def _partial(target: str, html: str) -> str:
    return f'<hx-partial hx-target="{target}" hx-swap="innerHTML">{html}</hx-partial>'


@require_GET
def live_state(request: HttpRequest, public_id: Any = None, token: Optional[str] = None) -> HttpResponse:
    """``?first=N&count=M&tail=1``: the page's state, as ``<hx-partial>`` elements after a
    ``data-sync`` element with the event number it is at least as new as."""
    nav = _resolve(request, public_id, token)
    run = nav.run
    seq = run.last_seq        # read before the rows: they are at least as new as this
    window = _window(nav, _num(request, "first"), _num(request, "count") or WINDOW,
                     request.GET.get("tail") == "1")
    ctx = {"nav": nav, "window": window}
    rows = render_to_string("spellide/parts.html#window_before", ctx, request)
    if window.later:
        rows += render_to_string("spellide/parts.html#rows_later", ctx, request)
    status = stepinfo.status_info(run)
    panel = render_to_string("spellide/parts.html#pause_panel", {
        "status": status, "nav": nav, "run": run, "controls": _controls(nav, request.user)}, request)
    body = "".join([
        f'<hx-partial hx-target="#ws-seq" hx-swap="none" data-sync="{seq}"></hx-partial>',
        _partial("#step-rows", rows),
        _partial("#step-count", str(window.total)),
        _partial("#run-status", render_to_string("spellide/parts.html#status", {"status": status}, request)),
        _partial("#run-totals", render_to_string("spellide/parts.html#totals", {"run": run}, request)),
        _partial("#pause-panel", panel),
        _partial("#agent-lanes", render_to_string("spellide/parts.html#lanes",
                                                  {"lanes": lanes.timeline(run, nav.base)}, request)),
    ])
    resp = HttpResponse(body, content_type="text/html; charset=utf-8")
    resp["Cache-Control"] = "no-store"
    return resp


share_live_state = _public(live_state)
