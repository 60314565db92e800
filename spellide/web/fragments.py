"""Run events as htmx 4 websocket fragments.

The run persister calls ``render_event_html(run, event)`` once per event, after the event is
committed, and broadcasts the HTML to every browser watching the run (and the consumer calls
it again for events a reconnecting browser missed). So a fragment must be the same for every
viewer: it addresses page regions by id with ``<hx-partial hx-target=... hx-swap=...>`` and a
region that is not on a given page (another step's detail, a tab that is not open) is simply
skipped by htmx. Fragments carry no CSRF token (a broadcast cannot hold per-user secrets); the
page's script adds the token to htmx requests from a meta tag.

Every fragment carries ``data-seq`` so the page can remember the last event it saw and ask
for exactly what it missed when the socket reconnects.

The HTML comes from the same template partials as the server-rendered page
(``spellide/parts.html#...``), so a live page and a reloaded page look the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils.html import escape

from spellide.web import stepinfo
from spellide.web.stepinfo import int_or_none
from spellide.web.models import Run, Step
from spellide.web.templatetags.spellide_tags import intcomma, logbar, ms as fmt_ms

LIVE_TEXT_LIMIT = 20_000   # the live completion strip shows at most this much
LIVE_ARGS_LIMIT = 2_000    # effect arguments pushed live (a model call's are the whole prefix)


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


def _status_html(run: Any, state: str, pause: Optional[dict] = None, detail: str = "") -> str:
    info = stepinfo.status_info(run, pause=pause, status=state)
    if detail:
        info["detail"] = detail
    return _part("status", {"status": info})


def render_event_html(run: Run, event: dict[str, Any]) -> str:
    """HTML for one event ``{seq, type, data, ts}``: a sequence of ``<hx-partial>`` elements."""
    seq = int(event.get("seq") or 0)
    typ = str(event.get("type") or "")
    data = event.get("data") or {}
    handler = _HANDLERS.get(typ)
    parts = handler(run, seq, data) if handler else []
    if not parts:
        # Always at least one element with the sequence number, so the page's last-seen
        # number advances even for events that change nothing on screen.
        parts.append(_wrap(seq, "#ws-seq", "outerHTML", f'<span id="ws-seq" hidden data-seq="{seq}"></span>'))
    return "".join(parts)


def render_failed(event: dict[str, Any]) -> str:
    """What a page gets for an event whose rendering failed (the persister logs the error): its
    last-seen number still advances, and the reader is told that a reload shows the change."""
    seq = int(event.get("seq") or 0)
    return (_wrap(seq, "#ws-seq", "outerHTML", f'<span id="ws-seq" hidden data-seq="{seq}"></span>')
            + _wrap(seq, "#run-control-result", "innerHTML", _part("update_failed", {"seq": seq})))


def _nav(run: Any) -> _Nav:
    return _Nav(run=run, base=f"/runs/{run.public_id}")


# --- handlers ------------------------------------------------------------------------------------
def _run_started(run: Any, seq: int, data: dict) -> list[str]:
    return [_wrap(seq, "#run-status", "innerHTML", _status_html(run, "running"))]


def _step_started(run: Any, seq: int, data: dict) -> list[str]:
    sid = int_or_none(data.get("step"))
    if sid is None:
        return []
    row = {"id": sid, "parent": data.get("parent"), "depth": data.get("depth"), "status": "running",
           "summary": "", "error": "", "cont": None, "fx": [], "fx_more": 0, "ms": None}
    html = _part("step_row", {"r": row, "nav": _nav(run)})
    total = data.get("steps_total")
    if total is None:   # an event persisted before it carried the count
        total = Step.objects.filter(run_id=run.pk).count()
    return [
        _wrap(seq, "#step-rows", "beforeend", html),
        _wrap(seq, "#no-steps", "delete", ""),
        _wrap(seq, "#step-count", "innerHTML", str(int_or_none(total) or 0)),
        _wrap(seq, "#run-steps", "innerHTML", f"{intcomma(int_or_none(total) or 0)} steps"),   # the header's total
        _wrap(seq, "#run-status", "innerHTML", _status_html(run, "running", detail=f"step {sid}")),
    ]


def _completion_delta(run: Any, seq: int, data: dict) -> list[str]:
    sid = int_or_none(data.get("step"))
    if sid is None:
        return []
    text = escape(str(data.get("text") or ""))
    at = int_or_none(data.get("at"))
    if at is None:   # an event persisted before pieces carried their offset
        return [_wrap(seq, f"#live-{sid}-completion", "beforeend", text)]
    # the page's script places the piece at its offset in the step's live text (see ide.js),
    # so a piece already in a freshly loaded detail is not added twice, and a gap is refetched
    reset = ' data-reset="1"' if data.get("reset") else ""
    return [_wrap(seq, "#stream-sink", "beforeend",
                  f'<span data-step="{sid}" data-at="{at}"{reset}>{text}</span>')]


def _completion(run: Any, seq: int, data: dict) -> list[str]:
    sid = int_or_none(data.get("step"))
    if sid is None:
        return []
    text = str(data.get("completion") or "")
    summary = stepinfo._summary(text)
    return [
        _wrap(seq, f"#live-{sid}-completion", "innerHTML", escape(text[:LIVE_TEXT_LIMIT])),
        _wrap(seq, f"#step-{sid}-sum", "innerHTML",
              escape(summary) if summary else '<span class="muted">(empty completion)</span>'),
        # the model that answered (a provider names its exact model only now) and its transport
        _wrap(seq, f"#detail-{sid}-model", "innerHTML",
              _part("step_model", {"model": data.get("model"), "transport": data.get("transport")})),
    ]


def _stale(seq: int, sid: int) -> str:
    """Tells a page showing this step that its open tab is out of date (the page reloads it)."""
    return _wrap(seq, f"#detail-{sid}-stale", "outerHTML",
                 f'<span hidden id="detail-{sid}-stale" data-stale="{seq}"></span>')


def _program(run: Any, seq: int, data: dict) -> list[str]:
    sid = int_or_none(data.get("step"))
    return [_stale(seq, sid)] if sid is not None else []


def _effect(run: Any, seq: int, data: dict) -> list[str]:
    sid = int_or_none(data.get("step"))
    eff = data.get("effect") or {}
    if sid is None or sid < 0:
        return []
    status = str(eff.get("status") or "live")
    if status not in ("live", "hit", "miss", "blocked"):
        status = "live"
    row = stepinfo.effect_from_event(sid, eff, args_limit=LIVE_ARGS_LIMIT)
    return [
        _wrap(seq, f"#step-{sid}-fx", "beforeend", f'<i class="fx fx-{status}"></i>'),
        _wrap(seq, f"#detail-{sid}-effects", "beforeend", _part("effect_row", {"e": row, "nav": _nav(run)})),
        _wrap(seq, f"#detail-{sid}-noeffects", "delete", ""),
    ]


def _step_finished(run: Any, seq: int, data: dict) -> list[str]:
    sid = int_or_none(data.get("step"))
    if sid is None:
        return []
    status = stepinfo.row_status("completed", data.get("error"), data.get("continued_by"),
                                 bool(data.get("recovered")))
    dur = data.get("duration_ms")
    if dur is None:   # an event persisted before it carried the duration
        times = Step.objects.filter(run_id=run.pk, step_id=sid).values_list("started_at", "finished_at").first()
        if times and times[0] and times[1]:
            dur = (times[1] - times[0]).total_seconds() * 1000
    ms, bar = (escape(fmt_ms(dur)), logbar(dur)) if dur is not None else ("", 0)
    cont = data.get("continued_by")
    out = [
        _wrap(seq, f"#step-{sid}-st", "outerHTML",
              f'<span class="r-st st-{status}" id="step-{sid}-st" title="{status}"></span>'),
        _wrap(seq, f"#step-{sid}-ms", "outerHTML",
              f'<span class="r-ms" id="step-{sid}-ms" style="--w: {int(bar)}">{ms}</span>'),
        _wrap(seq, f"#step-{sid}-cont", "outerHTML",
              f'<span hidden id="step-{sid}-cont" data-cont="{int_or_none(cont) if cont is not None else ""}"></span>'),
        _wrap(seq, f"#detail-{sid}-status", "innerHTML", status),
        _wrap(seq, f"#detail-{sid}-ms", "innerHTML", ms),
        _wrap(seq, f"#live-{sid}", "delete", ""),
        _stale(seq, sid),
        _wrap(seq, "#run-totals", "innerHTML", _part("totals", {"run": run})),
    ]
    if data.get("error"):
        out.append(_wrap(seq, f"#step-{sid}-sum", "innerHTML",
                         f'<span class="err">{escape(stepinfo._summary(str(data["error"])))}</span>'))
    return out


def _paused(run: Any, seq: int, data: dict) -> list[str]:
    pause = dict(data)
    sid = int_or_none(data.get("step"))
    info = stepinfo.status_info(run, pause=pause, status="paused")
    panel = _part("pause_panel", {"status": info, "nav": _nav(run), "controls": _controls(run)})
    out = [
        _wrap(seq, "#run-status", "innerHTML", _part("status", {"status": info})),
        _wrap(seq, "#pause-panel", "innerHTML", panel),
    ]
    if sid is not None and sid >= 0:
        out.append(_wrap(seq, f"#step-{sid}-st", "outerHTML",
                         f'<span class="r-st st-paused" id="step-{sid}-st" title="paused"></span>'))
    return out


def _resumed(run: Any, seq: int, data: dict) -> list[str]:
    sid = int_or_none(data.get("step"))
    action = str(data.get("action") or "")
    out = [_wrap(seq, "#pause-panel", "innerHTML", "")]
    if action != "stop":
        detail = "edited by " + str(data.get("author") or "someone") if data.get("edited") else ""
        out.append(_wrap(seq, "#run-status", "innerHTML", _status_html(run, "running", detail=detail)))
        if sid is not None and sid >= 0:
            out.append(_wrap(seq, f"#step-{sid}-st", "outerHTML",
                             f'<span class="r-st st-running" id="step-{sid}-st" title="running"></span>'))
    if data.get("edited") and sid is not None:
        out.append(_stale(seq, sid))
    return out


def _run_finished(run: Any, seq: int, data: dict) -> list[str]:
    value = str(data.get("value") if data.get("value") is not None else "nil")
    return [
        _wrap(seq, "#run-status", "innerHTML", _status_html(run, "finished", detail="value " + value[:120])),
        _wrap(seq, "#pause-panel", "innerHTML", ""),
        _wrap(seq, "#run-totals", "innerHTML", _part("totals", {"run": run})),
    ]


def _run_failed(run: Any, seq: int, data: dict) -> list[str]:
    kind = str(data.get("kind") or "")
    state = kind if kind in ("stopped", "interrupted") else "failed"
    return [
        _wrap(seq, "#run-status", "innerHTML", _status_html(run, state, detail=str(data.get("error") or "")[:200])),
        _wrap(seq, "#pause-panel", "innerHTML", ""),
        _wrap(seq, "#run-totals", "innerHTML", _part("totals", {"run": run})),
    ]


def _diverged(run: Any, seq: int, data: dict) -> list[str]:
    sid = int_or_none(data.get("step"))
    what = f"diverged at step {sid}: {data.get('what') or ''}"
    return [_wrap(seq, "#run-status", "innerHTML", _status_html(run, "failed", detail=what[:200]))]


_HANDLERS = {
    "run_started": _run_started, "step_started": _step_started, "completion_delta": _completion_delta,
    "completion": _completion, "program": _program, "effect": _effect, "step_finished": _step_finished,
    "paused": _paused, "resumed": _resumed, "run_finished": _run_finished, "run_failed": _run_failed,
    "diverged": _diverged,
}
