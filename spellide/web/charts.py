"""Per-run charts, computed on the server and drawn as SVG: the context each step's model call
saw, the tokens and cost it spent (and what the effect cache saved), and where each step's time
went (model, evaluation, paused).

The first chart is the one that shows what self-editing buys: the prefix grows as the model
appends and drops where edit markers (``prune``, ``rethink``, ``persist``) removed forms, so a
long run's context stays bounded. A step's *edit-time change* is its prefix length minus the
program of the step it continues: negative where markers removed more than results added.

Everything is read with a few aggregate queries (no program text is loaded), and series longer
than ``MAX_POINTS`` are downsampled into buckets of consecutive steps (context: the bucket's
largest prefix; tokens, cost and time: sums), so a 10,000-step run draws as fast as a short one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

from django.db.models import F
from django.utils.html import escape

from spellide.web.models import Effect, Run, RunEvent, Step

MAX_POINTS = 400
CHARS_PER_TOKEN = 4          # the same estimate the budget check uses before a live call
WIDTH, HEIGHT, PAD_L, PAD_B, PAD_T = 880, 170, 56, 22, 10


@dataclass
class Point:
    """One step, or a bucket of consecutive steps."""

    first: int
    last: int
    prefix_chars: int = 0
    edit_change: int = 0          # prefix length - previous program length (negative: removed)
    removed: int = 0              # characters edit time removed net (summed over a bucket's steps)
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    saved_tokens: int = 0
    saved_cost: float = 0.0
    model_ms: float = 0.0
    eval_ms: float = 0.0
    paused_ms: float = 0.0
    start: float = 0.0
    end: float = 0.0

    @property
    def label(self) -> str:
        return f"#{self.first}" if self.first == self.last else f"#{self.first}–{self.last}"

    @property
    def prefix_tokens(self) -> int:
        return math.ceil(self.prefix_chars / CHARS_PER_TOKEN)


@dataclass
class RunCharts:
    steps: int
    bucket: int                    # steps per point (1 = not downsampled)
    points: list[Point] = field(default_factory=list)
    t0: float = 0.0
    t1: float = 0.0

    def svg(self) -> dict[str, str]:
        return {"context": context_svg(self), "tokens": tokens_svg(self), "waterfall": waterfall_svg(self)}


def run_charts(run: Run, max_points: Optional[int] = None) -> RunCharts:
    rows = list(Step.objects.filter(run=run).order_by("step_id").values_list(
        "step_id", "continued_by", "usage", "started_at", "finished_at",
        F("prefix_version__length"), F("program_version__length")))
    model_ms: dict[int, float] = {}
    saved: dict[int, tuple[int, float]] = {}
    for sid, name, status, dur, usage in Effect.objects.filter(run=run).values_list(
            "step_id", "name", "status", "duration_ms", "usage").iterator(chunk_size=5000):
        u = usage or {}
        if status == "hit":
            t, c = saved.get(sid, (0, 0.0))
            saved[sid] = (t + int(u.get("input_tokens") or 0) + int(u.get("output_tokens") or 0),
                          c + float(u.get("cost") or 0.0))
        elif name.startswith("model/"):
            model_ms[sid] = model_ms.get(sid, 0.0) + float(dur or 0.0)
    paused = _paused_ms(run)
    program_len = {r[0]: r[6] or 0 for r in rows}
    continues = {r[1]: r[0] for r in rows if r[1] is not None}   # step -> the step it continues
    singles: list[Point] = []
    for sid, _cont, usage, started, finished, plen, _prog in rows:
        u = usage or {}
        start = started.timestamp() if started else 0.0
        end = finished.timestamp() if finished else start
        total_ms = max(0.0, (end - start) * 1000.0)
        p_ms = min(paused.get(sid, 0.0), total_ms)
        m_ms = min(model_ms.get(sid, 0.0), total_ms - p_ms)
        prev = continues.get(sid)
        st, sc = saved.get(sid, (0, 0.0))
        singles.append(Point(
            sid, sid, prefix_chars=plen or 0,
            edit_change=(plen or 0) - program_len[prev] if prev is not None else 0,
            removed=max(0, program_len[prev] - (plen or 0)) if prev is not None else 0,
            input_tokens=int(u.get("input_tokens") or 0), output_tokens=int(u.get("output_tokens") or 0),
            cost=float(u.get("cost") or 0.0), saved_tokens=st, saved_cost=sc,
            model_ms=m_ms, paused_ms=p_ms, eval_ms=max(0.0, total_ms - p_ms - m_ms), start=start, end=end))
    bucket = max(1, math.ceil(len(singles) / (max_points or MAX_POINTS)))
    points = singles if bucket == 1 else [_merge(singles[i:i + bucket]) for i in range(0, len(singles), bucket)]
    t0 = min((p.start for p in singles), default=0.0)
    t1 = max((p.end for p in singles), default=t0)
    return RunCharts(len(singles), bucket, points, t0, t1)


def _paused_ms(run: Run) -> dict[int, float]:
    """Time each step spent paused (from its paused -> resumed events)."""
    out: dict[int, float] = {}
    open_at: Optional[tuple[int, float]] = None
    for typ, ts, data in RunEvent.objects.filter(run=run, type__in=("paused", "resumed")).order_by("seq") \
            .values_list("type", "ts", "data").iterator(chunk_size=5000):
        if typ == "paused":
            sid = (data or {}).get("step")
            open_at = (sid, ts) if isinstance(sid, int) else None
        elif open_at is not None:
            sid, t = open_at
            out[sid] = out.get(sid, 0.0) + max(0.0, (ts - t) * 1000.0)
            open_at = None
    return out


def _merge(ps: list[Point]) -> Point:
    return Point(ps[0].first, ps[-1].last, prefix_chars=max(p.prefix_chars for p in ps),
                 edit_change=sum(p.edit_change for p in ps), removed=sum(p.removed for p in ps),
                 input_tokens=sum(p.input_tokens for p in ps), output_tokens=sum(p.output_tokens for p in ps),
                 cost=sum(p.cost for p in ps), saved_tokens=sum(p.saved_tokens for p in ps),
                 saved_cost=sum(p.saved_cost for p in ps), model_ms=sum(p.model_ms for p in ps),
                 eval_ms=sum(p.eval_ms for p in ps), paused_ms=sum(p.paused_ms for p in ps),
                 start=min(p.start for p in ps), end=max(p.end for p in ps))


# --- drawing ---------------------------------------------------------------------------------
def _frame(title: str, ymax: float, unit: str, body: Iterable[str], ymin: float = 0.0) -> str:
    plot_h = HEIGHT - PAD_B - PAD_T
    y0 = PAD_T + plot_h * (ymax / (ymax - ymin)) if ymax > ymin else HEIGHT - PAD_B
    axis = [f'<line class="axis" x1="{PAD_L}" y1="{y0:.1f}" x2="{WIDTH}" y2="{y0:.1f}"/>',
            f'<text class="tick" x="{PAD_L - 6}" y="{PAD_T + 9}" text-anchor="end">{escape(_num(ymax))}{unit}</text>']
    if ymin < 0:
        axis.append(f'<text class="tick" x="{PAD_L - 6}" y="{HEIGHT - PAD_B}" text-anchor="end">{escape(_num(ymin))}{unit}</text>')
    return (f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}" '
            f'preserveAspectRatio="none">' + "".join(axis) + "".join(body) + "</svg>")


def _x(i: int, n: int) -> float:
    return PAD_L + (WIDTH - PAD_L) * (i + 0.5) / max(n, 1)


def _y(v: float, ymin: float, ymax: float) -> float:
    plot_h = HEIGHT - PAD_B - PAD_T
    return PAD_T + plot_h * (ymax - v) / (ymax - ymin) if ymax > ymin else HEIGHT - PAD_B


def context_svg(c: RunCharts) -> str:
    n = len(c.points)
    top = max([p.prefix_chars for p in c.points] + [1])
    low = -max([p.removed for p in c.points] + [0])
    line = " ".join(f"{_x(i, n):.1f},{_y(p.prefix_chars, low, top):.1f}" for i, p in enumerate(c.points))
    bw = max(1.0, (WIDTH - PAD_L) / max(n, 1) - 1)
    body = [f'<polyline class="series s-context" points="{line}"/>'] if n else []
    zero = _y(0, low, top)
    for i, p in enumerate(c.points):
        body.append(f'<circle class="pt s-context" cx="{_x(i, n):.1f}" cy="{_y(p.prefix_chars, low, top):.1f}" r="2" '
                    f'data-step="{p.first}" data-value="{p.prefix_chars}"><title>{escape(p.label)}: '
                    f'{p.prefix_chars:,} chars (~{p.prefix_tokens:,} tokens)</title></circle>')
        if p.removed > 0:
            h = _y(-p.removed, low, top) - zero
            body.append(f'<rect class="bar s-removed" x="{_x(i, n) - bw / 2:.1f}" y="{zero:.1f}" width="{bw:.1f}" '
                        f'height="{h:.1f}" data-step="{p.first}" data-value="{p.removed}"><title>{escape(p.label)}: '
                        f'edit time removed {p.removed:,} chars net</title></rect>')
    return _frame("Context size per step", top, " ch", body, ymin=low)


def tokens_svg(c: RunCharts) -> str:
    n = len(c.points)
    top = max([p.input_tokens + p.output_tokens + p.saved_tokens for p in c.points] + [1])
    bw = max(1.0, (WIDTH - PAD_L) / max(n, 1) - 1)
    body = []
    for i, p in enumerate(c.points):
        y = HEIGHT - PAD_B
        for cls, v in (("s-input", p.input_tokens), ("s-output", p.output_tokens), ("s-saved", p.saved_tokens)):
            if v <= 0:
                continue
            h = (HEIGHT - PAD_B - PAD_T) * v / top
            y -= h
            body.append(f'<rect class="bar {cls}" x="{_x(i, n) - bw / 2:.1f}" y="{y:.1f}" width="{bw:.1f}" height="{h:.1f}" '
                        f'data-step="{p.first}" data-value="{v}"><title>{escape(p.label)}: {v:,} {cls[2:]} tokens</title></rect>')
    return _frame("Tokens per step", top, "", body)


def waterfall_svg(c: RunCharts) -> str:
    n = len(c.points)
    span = max(c.t1 - c.t0, 1e-6)
    row_h = max(1.0, (HEIGHT - PAD_B - PAD_T) / max(n, 1))
    body = []
    for i, p in enumerate(c.points):
        total = p.model_ms + p.eval_ms + p.paused_ms
        x = PAD_L + (WIDTH - PAD_L) * (p.start - c.t0) / span
        w_all = max(0.5, (WIDTH - PAD_L) * (p.end - p.start) / span)
        y = PAD_T + i * row_h
        for cls, v in (("s-model", p.model_ms), ("s-eval", p.eval_ms), ("s-paused", p.paused_ms)):
            if v <= 0 or total <= 0:
                continue
            w = w_all * v / total
            body.append(f'<rect class="bar {cls}" x="{x:.1f}" y="{y:.1f}" width="{w:.2f}" height="{max(row_h - 0.5, 0.5):.1f}" '
                        f'data-step="{p.first}" data-value="{v:.1f}"><title>{escape(p.label)}: {v:,.0f} ms {cls[2:]}</title></rect>')
            x += w
    return _frame("Step durations", span * 1000, " ms", body)


def _num(v: float) -> str:
    if abs(v) >= 1e6:
        return f"{v / 1e6:.1f}M"
    if abs(v) >= 1e3:
        return f"{v / 1e3:.1f}k"
    return f"{v:.0f}" if float(v).is_integer() else f"{v:.2f}"


def summary(c: RunCharts) -> dict[str, Any]:
    """Totals shown beside the charts."""
    return {"steps": c.steps, "bucket": c.bucket,
            "max_context": max((p.prefix_chars for p in c.points), default=0),
            "removed": sum(p.removed for p in c.points),
            "tokens": sum(p.input_tokens + p.output_tokens for p in c.points),
            "saved_tokens": sum(p.saved_tokens for p in c.points),
            "cost": sum(p.cost for p in c.points), "saved_cost": sum(p.saved_cost for p in c.points),
            "model_ms": sum(p.model_ms for p in c.points), "eval_ms": sum(p.eval_ms for p in c.points),
            "paused_ms": sum(p.paused_ms for p in c.points)}


def overlay_context_svg(runs: list[RunCharts]) -> str:
    """Context size per step of several runs on one axis (the compare page): one series each,
    by step id, so where a fork's context parts from its parent shows at a glance."""
    top = max([p.prefix_chars for c in runs for p in c.points] + [1])
    last = max([p.last for c in runs for p in c.points] + [1])
    body = []
    for k, c in enumerate(runs):
        pts = " ".join(f"{PAD_L + (WIDTH - PAD_L) * ((p.first + p.last) / 2) / max(last, 1):.1f},"
                       f"{_y(p.prefix_chars, 0, top):.1f}" for p in c.points)
        body.append(f'<polyline class="series s-run{k}" points="{pts}" data-run="{k}" data-points="{len(c.points)}"/>')
    return _frame("Context size per step, both runs", top, " ch", body)
