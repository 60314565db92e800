"""A multi-agent run's timeline: one lane per agent, its status over time, its steps, and the
messages between agents as arrows (sender's step time -> receipt time), drawn on the server.

The run page shows it when the run has more than one agent; every batch the persister
broadcasts carries it again, whole (``fragments.state_html``), and the live state view sends
it too, so a page that watched a run live shows exactly what a fresh load shows. Everything
it draws comes from the database: the time axis ends at the run's latest event, not at the
clock, so two renderings of the same state are the same bytes.

The drawing is SVG with positions as percentages of the lane width (attributes, not styles:
the content security policy allows no inline style), colours by class (``ide.css``). Lane
labels are HTML buttons beside it (they filter the step list by agent; ``ide.js``), one fixed
row height for both, so labels and lanes line up. While the run is active, each label has a
small pause control for its agent (the pause control with ``agent``: that agent stops at its
next pause point, the others go on); it posts with htmx, whose requests carry the page's CSRF
token (``ide.js``): the lanes are rendered without a request, for every page alike.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any, Optional

from django.utils.safestring import SafeString, mark_safe

from spellide.web.models import ACTIVE_STATUSES, Agent, Message, Receipt, Run, RunEvent, Step
from spellide.web.stepinfo import row_status

LANE_H = 22          # px per lane (ide.css .lane-label has the same height)
AXIS_H = 18          # px above the first lane for the time ticks
BAR_Y, BAR_H = 6, 10       # an interval's bar inside its lane
MARK_Y, MARK_H = 3, 16     # a step's mark inside its lane
MAX_MARKS = 1500     # the newest steps drawn (a longer run's older steps are left off, and said so)
MAX_ARROWS = 1000    # the newest messages drawn
MIN_SPAN = 1.0       # seconds: the shortest time axis (a run that just started)
STATUSES = ("running", "waiting", "sleeping", "finished", "failed", "abandoned")


def escape(text: object) -> str:
    """HTML-escaped text (the standard library's: Django's ``escape`` is the same escaping, but
    its lazy-string wrapper costs more than the drawing itself on a run of a thousand marks)."""
    return html.escape(str(text), quote=True)


@dataclass
class Lane:
    handle: str
    parent: Optional[str]
    status: str
    generation: int
    colour: int
    steps: int = 0


@dataclass
class Timeline:
    lanes: list[Lane]
    svg: SafeString
    messages: int
    steps_left_off: int = 0
    messages_left_off: int = 0
    warnings: list[str] = field(default_factory=list)
    span_s: float = 0.0
    pause_url: Optional[str] = None      # where a lane's pause control posts (an active run's own page)
    paused_agent: Optional[str] = None   # the agent whose pause the run shows now

    max_marks: int = MAX_MARKS
    max_arrows: int = MAX_ARROWS


def timeline(run: Run, base: str) -> Optional[Timeline]:
    """The run's lanes, or None for a run with fewer than two agents. ``base`` is the page's
    URL base for step links (``/runs/<id>`` or ``/share/<token>``)."""
    if run.agent_count < 2:      # (no query for a single-agent run)
        return None
    agents = list(Agent.objects.filter(run=run).order_by("order", "id"))
    if len(agents) < 2:
        return None
    index = {a.handle: i for i, a in enumerate(agents)}
    last_ts = RunEvent.objects.filter(run=run).order_by("-seq").values_list("ts", flat=True).first()
    n_steps = Step.objects.filter(run=run).count()
    steps = list(Step.objects.filter(run=run).order_by("-step_id")
                 .values_list("step_id", "agent", "generation", "status", "error", "continued_by",
                              "recovered", "started_at", "finished_at")[:MAX_MARKS])[::-1]
    n_messages = Message.objects.filter(run=run).count()
    messages = [_Msg(*row) for row in Message.objects.filter(run=run).order_by("-seq").values_list(
        "msg_id", "kind", "sender", "targets", "edge", "body", "sent_at")[:MAX_ARROWS]][::-1]
    receipts: dict[tuple[str, str], float] = {}
    for mid, agent, at in Receipt.objects.filter(run=run, msg_id__in=[m.msg_id for m in messages]) \
            .values_list("msg_id", "agent", "received_at"):
        receipts.setdefault((mid, agent), at)
    step_ts = [s[7].timestamp() for s in steps if s[7] is not None]
    t0 = min([a.started_at for a in agents if a.started_at] + step_ts or [0.0])
    t1 = max([last_ts or t0] + [s[8].timestamp() for s in steps if s[8] is not None])
    span = max(t1 - t0, MIN_SPAN)

    def x(ts: Optional[float]) -> float:
        if ts is None:
            return 100.0
        return round(min(100.0, max(0.0, (ts - t0) / span * 100.0)), 3)

    lanes = [Lane(a.handle, a.parent, a.status, a.generation, a.colour) for a in agents]
    out: list[str] = []
    height = AXIS_H + LANE_H * len(lanes)
    out.append(f'<svg class="lane-svg" width="100%" height="{height}" role="img" '
               f'aria-label="agent timeline, {len(lanes)} agents, {n_messages} messages">')
    out.append('<defs><marker id="lane-arrow" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="6" '
               'markerHeight="6" orient="auto-start-reverse"><path d="M0,0 L8,4 L0,8 z" class="arrow-head"/>'
               '</marker></defs>')
    out.extend(_axis(span, height))
    for i, a in enumerate(agents):
        y = AXIS_H + i * LANE_H
        out.append(f'<g class="lane ag-{a.colour}" data-agent="{escape(a.handle)}">'
                   f'<rect class="lane-bg" x="0" y="{y}" width="100%" height="{LANE_H}"/>')
        for status, start, end, gen in a.intervals or []:
            x0, x1 = x(start), x(end if end is not None else t1)
            cls = status if status in STATUSES else "other"
            out.append(f'<rect class="iv iv-{cls}" x="{x0}%" y="{y + BAR_Y}" width="{max(x1 - x0, 0.2):.3f}%" '
                       f'height="{BAR_H}"><title>{escape(a.handle)} {escape(status)} (generation {gen}) '
                       f'{start - t0:.2f}–{(end if end is not None else t1) - t0:.2f} s</title></rect>')
        out.append("</g>")
    for sid, agent, gen, status, error, cont, recovered, started, finished in steps:
        i = index.get(agent)
        if i is None or started is None:
            continue
        lanes[i].steps += 1
        y = AXIS_H + i * LANE_H
        x0 = x(started.timestamp())
        x1 = x(finished.timestamp()) if finished is not None else x(t1)
        st = row_status(status, error, cont, recovered)
        out.append(f'<a class="lane-step" href="{escape(base)}/steps/{sid}/" data-step="{sid}">'
                   f'<rect class="mark st-{st}" x="{x0}%" y="{y + MARK_Y}" width="{max(x1 - x0, 0.35):.3f}%" '
                   f'height="{MARK_H}"><title>step {sid} · {escape(agent)} gen {gen} · {st}</title></rect></a>')
    for a in agents:
        # a spawn: from the spawner's lane to the child's, when the child was registered (a
        # spawn-ask edge sends no request message: the child's prompt is its task)
        if a.parent in index and a.handle in index:
            ys = AXIS_H + index[a.parent] * LANE_H + LANE_H // 2
            yt = AXIS_H + index[a.handle] * LANE_H + LANE_H // 2
            xs = x(a.started_at)
            out.append(f'<line class="msg msg-spawn" data-msg="spawn {escape(a.handle)}" x1="{xs}%" y1="{ys}" '
                       f'x2="{xs}%" y2="{yt}" marker-end="url(#lane-arrow)"><title>{escape(a.parent)} spawned '
                       f'{escape(a.handle)}{f" in step {a.spawn_step}" if a.spawn_step is not None else ""}</title></line>')
    for m in messages:
        out.extend(_arrows(m, index, receipts, x))
    out.append("</svg>")
    warnings = [str((d or {}).get("message") or "") for d in
                RunEvent.objects.filter(run=run, type="warning").order_by("seq").values_list("data", flat=True)[:20]]
    # every text from the run in it went through escape() above
    active = run.status in ACTIVE_STATUSES and base.startswith("/runs/")   # not a shared page
    paused = (run.pause or {}).get("agent") if run.status == Run.Status.PAUSED else None
    return Timeline(lanes=lanes, svg=mark_safe("".join(out)), messages=n_messages,
                    steps_left_off=max(0, n_steps - len(steps)),
                    messages_left_off=max(0, n_messages - len(messages)), warnings=warnings, span_s=span,
                    pause_url=f"{base}/pause/" if active else None, paused_agent=paused)


def _axis(span: float, height: int) -> list[str]:
    out = []
    for k in range(5):
        pct = k * 25
        anchor = "start" if k == 0 else ("end" if k == 4 else "middle")
        out.append(f'<line class="tick-line" x1="{pct}%" x2="{pct}%" y1="{AXIS_H - 4}" y2="{height}"/>'
                   f'<text class="tick" x="{pct}%" y="{AXIS_H - 6}" text-anchor="{anchor}">{span * k / 4:.1f} s</text>')
    return out


@dataclass
class _Msg:
    """The fields of a ``Message`` the drawing reads (read as values: no model instances)."""

    msg_id: str
    kind: str
    sender: str
    targets: list
    edge: Optional[int]
    body: Optional[str]
    sent_at: float


def _arrows(m: _Msg, index: dict[str, int], receipts: dict[tuple[str, str], float], x: Any) -> list[str]:
    """One arrow per target lane: from the sender's lane at the send to the target's lane at
    its receipt; not received yet: a dashed stub at the send. A sender that is not an agent
    (the runtime: a future, the coordinator) has no lane: its messages start on the target's."""
    out = []
    label = escape(f"{m.kind}{' edge ' + str(m.edge) if m.edge is not None else ''} "
                   f"{m.sender} → {', '.join(m.targets)}"
                   f"{': ' + m.body[:120] if m.body else ''}")
    senders = [index[h] for h in _handles(m.sender) if h in index] or [None]
    for src in senders:
        out.extend(_arrows_from(m, src, index, receipts, x, label))
    return out


def _handles(sender: str) -> list[str]:
    """A message's sender as handles: one, or (a multi-target edge's report, printed as a
    vector ``[:a :b]``) every target that filled it."""
    if sender.startswith("[") and sender.endswith("]"):
        return sender[1:-1].split()
    return [sender]


def _arrows_from(m: _Msg, src: Optional[int], index: dict[str, int], receipts: dict[tuple[str, str], float],
                 x: Any, label: str) -> list[str]:
    out = []
    for t in m.targets:
        j = index.get(t)
        if j is None:
            continue
        yt = AXIS_H + j * LANE_H + LANE_H // 2
        ys = AXIS_H + src * LANE_H + LANE_H // 2 if src is not None else yt - LANE_H // 2
        x0 = x(m.sent_at)
        got = receipts.get((m.msg_id, t))
        pending = got is None
        x1 = x0 if pending else x(got)
        if pending:
            yt = ys + (yt - ys) * 0.5 if src is not None else yt
        cls = f"msg msg-{escape(m.kind)}" + (" pending" if pending else "")
        out.append(f'<line class="{cls}" data-msg="{escape(m.msg_id)}" x1="{x0}%" y1="{ys}" x2="{x1}%" '
                   f'y2="{yt:.0f}" marker-end="url(#lane-arrow)"><title>{label}'
                   f'{" (not received yet)" if pending else ""}</title></line>')
    return out
