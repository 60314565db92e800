"""Two runs side by side: steps aligned, the first divergent step, the structural program diff
between the runs at any aligned step, what the second run's effects reused from the cache, ran
live or got differently, and cost / tokens / time per run.

Steps align by id: a step's id is its place in the run's step tree, so a fork and its parent,
two forks of one run, or a strict replay and its original share ids up to where they part. A
step *diverges* where it exists in one run only, or where its program, its completion, or one of
its effects (name, arguments, result, error) differs. The whole runs are scanned with a few
narrow queries (program digests, completions, effect digests; no program text); texts are read
only for the one step whose diff is shown, and the aligned rows sent are a window.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Optional

from django.db.models import F

from spellide.web.diff import LABELS, diff_programs
from spellide.web.models import Effect, Run, Step
from spellide.web.stepinfo import diff_groups

WINDOW = 80      # aligned rows sent around the selected step


@dataclass
class Side:
    status: str
    summary: str
    program_sha: Optional[str]
    completion: str
    effects: list[tuple]         # (ordinal, name, args_digest, result digest, error, status)
    ms: Optional[float]


@dataclass
class AlignedRow:
    step: int
    a: Optional[Side]
    b: Optional[Side]
    differs: list[str] = field(default_factory=list)     # what differs: "program", "completion", ...

    @property
    def diverged(self) -> bool:
        return bool(self.differs)


def _sides(run: Run) -> dict[int, Side]:
    effects: dict[int, list[tuple]] = {}
    for sid, ordinal, name, digest, result, error, status in (
            Effect.objects.filter(run=run).order_by("step_id", "ordinal", "seq")
            .values_list("step_id", "ordinal", "name", "args_digest", "result", "error", "status")
            .iterator(chunk_size=5000)):
        rd = hashlib.sha256((result or "").encode("utf-8", "surrogatepass")).hexdigest()[:16] if result is not None else None
        effects.setdefault(sid, []).append((ordinal, name, digest, rd, error, status))
    out: dict[int, Side] = {}
    for sid, status, completion, error, sha, started, finished in (
            Step.objects.filter(run=run).order_by("step_id")
            .values_list("step_id", "status", "completion", "error", F("program_version__sha256"),
                         "started_at", "finished_at").iterator(chunk_size=5000)):
        ms = (finished - started).total_seconds() * 1000 if (started and finished) else None
        summary = (error or completion or "").strip().splitlines()[0][:160] if (error or completion or "").strip() else ""
        out[sid] = Side(status, summary, sha, completion or "", effects.get(sid, []), ms)
    return out


def _differs(a: Optional[Side], b: Optional[Side]) -> list[str]:
    if a is None or b is None:
        return ["only in " + ("the second run" if a is None else "the first run")]
    out = []
    if a.completion != b.completion:
        out.append("completion")
    if a.program_sha != b.program_sha:
        out.append("program")
    ea = [e[:5] for e in a.effects]
    eb = [e[:5] for e in b.effects]
    if ea != eb:
        names = sorted({x[1] for x in set(ea) ^ set(eb)})
        out.append("effects" + (f" ({', '.join(names[:4])})" if names else ""))
    return out


@dataclass
class Comparison:
    a: Run
    b: Run
    rows: list[AlignedRow]
    first_divergence: Optional[int]
    total: int
    selected: Optional[int] = None
    diff: Any = None
    groups: list = field(default_factory=list)
    summary: list = field(default_factory=list)
    effect_rows: list = field(default_factory=list)
    earlier: int = 0
    later: int = 0
    branches: list = field(default_factory=list)

    @property
    def detail(self) -> dict[str, Any]:
        """The selected step's diff in the shape the step page's Diff tab renders."""
        return {"sid": self.selected, "diff": self.diff, "groups": self.groups, "summary": self.summary,
                "edits": [], "prev_id": None, "prev_label": f"A's program at step #{self.selected}"}


def compare_runs(a: Run, b: Run, step: Optional[int] = None, window: int = WINDOW) -> Comparison:
    sa, sb = _sides(a), _sides(b)
    ids = sorted(set(sa) | set(sb))
    first = None
    aligned = []
    for sid in ids:
        row = AlignedRow(sid, sa.get(sid), sb.get(sid), _differs(sa.get(sid), sb.get(sid)))
        if first is None and row.diverged:
            first = sid
        aligned.append(row)
    selected = step if step in set(ids) else (first if first is not None else (ids[0] if ids else None))
    at = ids.index(selected) if selected is not None else 0
    lo = max(0, at - window // 4)
    hi = min(len(aligned), lo + window)
    c = Comparison(a, b, aligned[lo:hi], first, len(ids), selected, earlier=lo, later=len(aligned) - hi,
                   branches=[_branch(a, sa), _branch(b, sb)])
    if selected is not None:
        _detail(c, selected)
    return c


def _branch(run: Run, sides: dict[int, Side]) -> dict[str, Any]:
    t = run.totals or {}
    return {"run": run, "steps": len(sides), "cost": float(t.get("cost") or 0.0),
            "tokens": int(t.get("input_tokens") or 0) + int(t.get("output_tokens") or 0),
            "ms": sum(s.ms or 0.0 for s in sides.values()),
            "executed": int(t.get("effects_executed") or 0), "reused": int(t.get("effects_reused") or 0),
            "cost_saved": float(t.get("cost_saved") or 0.0)}


def _detail(c: Comparison, sid: int) -> None:
    """The structural diff of the first run's program at ``sid`` against the second's, and the
    effect diff of that step."""
    sa = Step.objects.filter(run=c.a, step_id=sid).first()
    sb = Step.objects.filter(run=c.b, step_id=sid).first()
    pa = sa.program_text() if sa else ""
    pb = sb.program_text() if sb else ""
    if pa and pb:
        c.diff = diff_programs(pa, pb)
        c.groups = diff_groups(c.diff.rows)
        c.summary = [{"kind": k, "label": LABELS.get(k, k), "n": n} for k, n in c.diff.summary.items() if k != "kept"]
    ea = {e.ordinal: e for e in Effect.objects.filter(run=c.a, step_id=sid)}
    eb = {e.ordinal: e for e in Effect.objects.filter(run=c.b, step_id=sid)}
    for o in sorted(set(ea) | set(eb)):
        x, y = ea.get(o), eb.get(o)
        if x is None or y is None:
            verdict = "only in " + ("the second run" if x is None else "the first run")
        elif (x.name, x.args_digest) != (y.name, y.args_digest):
            verdict = "different effect or arguments"
        elif (x.result, x.error) != (y.result, y.error):
            verdict = "different result"
        else:
            verdict = "same result"
        c.effect_rows.append({"ordinal": o, "a": x, "b": y, "verdict": verdict,
                              "reused": y is not None and y.status == "hit"})
