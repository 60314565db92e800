"""Run events as htmx 4 websocket fragments that converge to the server's state.

The run persister renders each committed batch of events with ``render_batch(run, events)`` and
broadcasts the HTML to every browser watching the run (the consumer renders a batch again for
events a reconnecting browser missed). A fragment must be the same for every viewer: it
addresses page regions by id with ``<hx-partial hx-target=... hx-swap=...>``; a region that is
not on a given page is skipped by the page's script. Fragments carry no CSRF token (a broadcast
cannot hold per-user secrets); the page's script adds the token to htmx requests.

Live equals fresh by construction: a batch does not describe *changes* for the page to patch
in. After its last event it carries the current state of everything the batch touched, read
from the database after the commit and rendered by the same partials as a fresh page
(``spellide/parts.html#...``): the whole row of every step an event named, the run's status,
totals and step count, and the pause panel when the pause state changed. So applying the
latest fragment for a step is right whatever the page missed, and a fragment applied twice
changes nothing. The only pieces that are not whole state are streamed model text (each piece
is placed at its offset, so a duplicate is a no-op) and the seq markers.

Every event carries ``data-seq``: the page remembers the last event it applied, drops what it
already has, and re-fetches its visible state (``views/live.py``) when it sees a gap, a
reconnect or anything out of order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Optional

from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils.html import escape

from spellide.web import lanes, stepinfo
from spellide.web.bidi import mark_html
from spellide.web.models import Run
from spellide.web.stepinfo import int_or_none


@dataclass
class _Nav:
    """What the shared partials need from the page they are pushed into."""

    run: Any
    base: str
    readonly: bool = False
    token: Optional[str] = None


def _wrap(seq: int, target: str, swap: str, html: str) -> str:
    # target and swap are built here from constants and integers only.
    return f'<hx-partial hx-target="{target}" hx-swap="{swap}" data-seq="{seq}">{html}</hx-partial>'


def _part(name: str, ctx: dict) -> str:
    return render_to_string(f"spellide/parts.html#{name}", ctx)


_CONTROL_NAMES = ("run_pause", "run_resume", "run_step", "run_stop", "run_edit", "run_fork",
                  "run_approve", "run_reject")


def _controls(run: Any) -> dict[str, Optional[str]]:
    out: dict[str, Optional[str]] = {}
    for name in _CONTROL_NAMES:
        try:
            out[name] = reverse(name, kwargs={"public_id": run.public_id})
        except NoReverseMatch:
            out[name] = None
    return out


# events after which the pause panel is rendered again (it holds an editor: not on every batch)
_PAUSE_EVENTS = frozenset({"paused", "resumed", "run_started", "run_finished", "run_failed", "diverged"})


def _marker(seq: int) -> str:
    """Every event's own element: the page learns from it which events a frame holds."""
    return f'<hx-partial hx-target="#ws-seq" hx-swap="none" data-seq="{seq}"></hx-partial>'


def _event_step(data: dict) -> Optional[int]:
    sid = int_or_none(data.get("step"))
    if sid is None:
        sid = int_or_none((data.get("effect") or {}).get("step")) if isinstance(data.get("effect"), dict) else None
    return sid if sid is not None and sid >= 0 else None


def render_batch(run: Run, events: list[dict[str, Any]],
                 closed_steps: Iterable[int] = ()) -> list[tuple[int, str]]:
    """``[(seq, html), ...]`` for committed events ``{seq, type, data, ts}`` in order; the last
    item also carries the state they leave (rows of the steps they touched, plus
    ``closed_steps``, status, totals, pause panel), rendered from the database and ``run``."""
    out: list[tuple[int, str]] = []
    touched: dict[int, None] = {}
    pause_changed = False
    for event in events:
        seq = int(event.get("seq") or 0)
        typ = str(event.get("type") or "")
        data = event.get("data") or {}
        html = _marker(seq)
        if typ == "completion_delta":
            html += _completion_delta(seq, data)
        sid = _event_step(data)
        if sid is not None:
            touched[sid] = None
        pause_changed = pause_changed or typ in _PAUSE_EVENTS
        out.append((seq, html))
    if not out:
        return out
    for sid in closed_steps:
        touched[sid] = None
    seq, html = out[-1]
    # the state is marked for bidi controls like every page; streamed pieces stay raw text,
    # since the page places them by the offsets of the raw text
    out[-1] = (seq, html + mark_html(state_html(run, seq, list(touched), pause=pause_changed)))
    return out


def render_event_html(run: Run, event: dict[str, Any]) -> str:
    """One event rendered as a batch of its own (see ``render_batch``)."""
    return "".join(html for _, html in render_batch(run, [event]))


def state_html(run: Run, seq: int, step_ids: list[int], *, pause: bool) -> str:
    """The run's current state for the regions a batch may have changed, tagged with ``seq``."""
    parts = []
    if step_ids:
        steps = list(stepinfo._step_rows_qs(run).filter(step_id__in=step_ids).order_by("step_id"))
        nav = _nav(run)
        for r in stepinfo._rows(run, steps):
            parts.append(f'<hx-partial hx-target="#step-row-{r["id"]}" hx-swap="outerHTML" '
                         f'data-seq="{seq}" data-row="{r["id"]}">'
                         + _part("step_row", {"r": r, "nav": nav}) + "</hx-partial>")
    total = int_or_none((run.totals or {}).get("steps")) or 0
    status = stepinfo.status_info(run)
    parts += [
        _wrap(seq, "#step-count", "innerHTML", str(total)),
        _wrap(seq, "#run-status", "innerHTML", _part("status", {"status": status})),
        _wrap(seq, "#run-totals", "innerHTML", _part("totals", {"run": run})),
    ]
    timeline = lanes.timeline(run, _nav(run).base)
    if timeline is not None:
        # whole, every batch: its time axis ends at the run's latest event
        parts.append(_wrap(seq, "#agent-lanes", "innerHTML", _part("lanes", {"lanes": timeline})))
    if pause:
        panel = _part("pause_panel", {"status": status, "nav": _nav(run), "controls": _controls(run)})
        parts.append(_wrap(seq, "#pause-panel", "innerHTML", panel))
    return "".join(parts)


def render_failed(event: dict[str, Any]) -> str:
    """What a page gets for an event whose rendering failed (the persister logs the error): its
    seq marker, so the page does not take it for a gap, and a notice that a reload shows it."""
    seq = int(event.get("seq") or 0)
    return (_marker(seq)
            + _wrap(seq, "#run-control-result", "innerHTML", _part("update_failed", {"seq": seq})))


def _nav(run: Any) -> _Nav:
    return _Nav(run=run, base=f"/runs/{run.public_id}")


def _completion_delta(seq: int, data: dict) -> str:
    """A piece of streamed model text, placed by the page's script at its offset in the step's
    live text (see ide.js), so a piece already shown is not added twice and a gap is refetched."""
    sid = int_or_none(data.get("step"))
    at = int_or_none(data.get("at"))
    if sid is None or at is None:
        return ""
    text = escape(str(data.get("text") or ""))
    reset = ' data-reset="1"' if data.get("reset") else ""
    return _wrap(seq, "#stream-sink", "beforeend", f'<span data-step="{sid}" data-at="{at}"{reset}>{text}</span>')
