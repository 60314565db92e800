"""Plain data for the IDE's templates: step rows, windows, the detail pane, effects, forks.

Kept apart from the views so the websocket fragments (``fragments.py``) build rows the same
way as the server-rendered list, and so each query's cost is visible in one place. Every
function here reads a bounded amount: a window of steps, one step and its parent, one page of
effects, a bounded walk of the fork tree.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

from django.db.models import Count, Sum
from django.db.models.functions import Substr

from spellide.web import program_tree as ptree
from spellide.web.demos import list_demos
from spellide.web.diff import LABELS, diff_programs, row_kind
from spellide.web.highlight import MAX_HIGHLIGHT_CHARS, highlight_lines
from spellide.spell import api
from spellide.spell.api import (PROMPT_VERSION, Layout, MissingText, SpellError, effect_namespaces,
                                 pretty_text, prompt_digest, rebuild_request, system_prompt, transports)
from spellide.web.models import MAIN_AGENT, Agent, Edit, Effect, Message, Receipt, Run, RunEvent, Step

SUMMARY_CHARS = 300       # completion characters read for a row's one-line summary
FX_DOTS = 12              # effect dots shown per row
SOURCE_WINDOW = 40_000    # the source view shows at most this many characters (full text via raw link)
TEXT_INLINE = 20_000
SOURCE_WIDTH = 88         # the pretty-printed source view's line width
PRETTY_MAX_CHARS = 150_000  # longer programs are shown as stored (laying one out costs about 1 s per 200k characters)
FORK_TREE_LIMIT = 300

POINT_LABELS = {
    "before_model": "before model call", "after_completion": "after completion",
    "before_effect": "before effect", "on_error": "on error", "on_model_error": "on model error",
}
STATUS_WORDS = {
    "queued": "queued", "running": "running", "paused": "paused", "finished": "finished",
    "failed": "failed", "stopped": "stopped", "interrupted": "interrupted",
}


# --- run status ------------------------------------------------------------------------------
def status_info(run: Run, pause: Optional[dict] = None, status: Optional[str] = None) -> dict:
    """What the header says about a run: state word, detail line, and the pause point."""
    status = status or run.status
    pause = pause if pause is not None else (run.pause if status == "paused" else None)
    info: dict[str, Any] = {"state": status, "word": STATUS_WORDS.get(status, status), "detail": "",
                            "pause": None}
    if status == "paused" and pause:
        point = pause.get("point") or ""
        info["pause"] = pause
        info["point_label"] = POINT_LABELS.get(point, point)
        bits = [POINT_LABELS.get(point, point)]
        if pause.get("step") is not None and pause.get("step") >= 0:
            bits.append(f"step {pause['step']}")
        if pause.get("reason"):
            bits.append(f"({pause['reason']})")
        info["detail"] = " · ".join(bits)
    elif status == "failed":
        info["detail"] = (run.error or "")[:200]
    elif status == "finished":
        info["detail"] = "value " + (run.value or "nil")[:120]
    elif status == "stopped":
        if run.error_kind == "budget-exceeded":
            info["word"] = "stopped by budget"
        info["detail"] = (run.error or "")[:200]
    elif status == "interrupted":
        info["detail"] = "the server stopped while this run was active; resume it from its record"
    return info


# --- step rows -------------------------------------------------------------------------------
def row_status(status: str, error: Any = None, continued_by: Any = None, recovered: bool = False) -> str:
    if status in ("running", "paused"):
        return status
    if error:
        return "recovered" if recovered else "failed"
    if continued_by is not None:
        return "continued"
    return status or "completed"


def _summary(text: Optional[str]) -> str:
    if not text:
        return ""
    return " ".join(text[:SUMMARY_CHARS].split())[:120]


def _duration_ms(step: Step, paused: float = 0.0) -> Optional[float]:
    """How long the step took, without the time it spent paused (``paused`` ms)."""
    if step.finished_at and step.started_at:
        return max(0.0, (step.finished_at - step.started_at).total_seconds() * 1000 - paused)
    return None


def paused_ms(run: Run, ids: Iterable[int]) -> dict[int, float]:
    """Milliseconds each of these steps spent paused, from the run's pause/resume events
    (what the live page's times leave out too: the persister subtracts them)."""
    ids = list(ids)
    if not ids:
        return {}
    out: dict[int, float] = {}
    since: dict[int, float] = {}
    for typ, sid, ts in (RunEvent.objects.filter(run=run, type__in=("paused", "resumed"), data__step__in=ids)
                         .order_by("seq").values_list("type", "data__step", "ts")):
        if typ == "paused":
            since.setdefault(sid, ts)
        elif sid in since:
            out[sid] = out.get(sid, 0.0) + (ts - since.pop(sid)) * 1000
    return out


def row_from_step(step: Step, fx: list[str], paused: float = 0.0, colours: Optional[dict[str, int]] = None) -> dict:
    head = getattr(step, "completion_head", None)
    if head is None:
        head = step.completion[:SUMMARY_CHARS] if step.completion else ""
    return {
        "id": step.step_id, "parent": step.parent, "depth": step.depth,
        "status": row_status(step.status, step.error, step.continued_by, getattr(step, "recovered", False)),
        "summary": _summary(head), "error": _summary(step.error) if step.error else "",
        "cont": step.continued_by, "fx": fx[:FX_DOTS], "fx_more": max(0, len(fx) - FX_DOTS),
        "ms": _duration_ms(step, paused), "model": step.model,
        "agent": getattr(step, "agent", MAIN_AGENT), "generation": getattr(step, "generation", 1),
        "colour": (colours or {}).get(getattr(step, "agent", MAIN_AGENT), 0),
    }


def _rows(run: Run, steps: list[Step]) -> list[dict]:
    ids = [s.step_id for s in steps]
    fx: dict[int, list[str]] = {}
    if ids:
        for sid, st in (Effect.objects.filter(run=run, step_id__in=ids)
                        .order_by("step_id", "ordinal", "id").values_list("step_id", "status")):
            fx.setdefault(sid, []).append(st)
    paused = paused_ms(run, ids)
    colours = Agent.colours(run) if ids and run.agent_count > 1 else {}
    return [row_from_step(s, fx.get(s.step_id, []), paused.get(s.step_id, 0.0), colours) for s in steps]


def _step_rows_qs(run: Run):
    return (Step.objects.filter(run=run)
            .annotate(completion_head=Substr("completion", 1, SUMMARY_CHARS))
            .only("step_id", "parent", "depth", "status", "error", "continued_by", "recovered",
                  "started_at", "finished_at", "model", "agent", "generation"))


@dataclass
class Window:
    rows: list[dict] = field(default_factory=list)
    earlier: int = 0
    later: int = 0
    selected: Optional[int] = None
    total: int = 0

    @property
    def first(self) -> Optional[int]:
        return self.rows[0]["id"] if self.rows else None

    @property
    def last(self) -> Optional[int]:
        return self.rows[-1]["id"] if self.rows else None


def _finish_window(run: Run, steps: list[Step], selected: Optional[int]) -> Window:
    w = Window(rows=_rows(run, steps), selected=selected)
    if steps:
        w.earlier = Step.objects.filter(run=run, step_id__lt=steps[0].step_id).count()
        w.later = Step.objects.filter(run=run, step_id__gt=steps[-1].step_id).count()
    w.total = w.earlier + w.later + len(steps)
    return w


def window_around(run: Run, sid: Optional[int], n: int) -> Window:
    """``n`` rows around step ``sid`` (the tail when ``sid`` is None)."""
    qs = _step_rows_qs(run)
    if sid is None:
        steps = list(qs.order_by("-step_id")[:n])[::-1]
        return _finish_window(run, steps, steps[-1].step_id if steps else None)
    before = list(qs.filter(step_id__lt=sid).order_by("-step_id")[: n // 2])[::-1]
    after = list(qs.filter(step_id__gte=sid).order_by("step_id")[: n - len(before)])
    if len(before) + len(after) < n and before:
        more = list(qs.filter(step_id__lt=before[0].step_id).order_by("-step_id")[: n - len(before) - len(after)])[::-1]
        before = more + before
    return _finish_window(run, before + after, sid)


def window_before(run: Run, sid: int, n: int) -> Window:
    steps = list(_step_rows_qs(run).filter(step_id__lt=sid).order_by("-step_id")[:n])[::-1]
    w = Window(rows=_rows(run, steps))
    if steps:
        w.earlier = Step.objects.filter(run=run, step_id__lt=steps[0].step_id).count()
    return w


def window_after(run: Run, sid: int, n: int) -> Window:
    steps = list(_step_rows_qs(run).filter(step_id__gt=sid).order_by("step_id")[:n])
    w = Window(rows=_rows(run, steps))
    if steps:
        w.later = Step.objects.filter(run=run, step_id__gt=steps[-1].step_id).count()
    return w


# --- step detail -----------------------------------------------------------------------------
def tree_text(step: Step) -> tuple[str, bool]:
    """The text the tree shows: the program, or while there is none yet the open prefix."""
    program = step.program_text()
    if program:
        return program, False
    return step.prefix_text(), True


def mark_changes(roots: Iterable[ptree.TreeNode], trace: Any) -> None:
    """Label the forms the step's edit trace says were added or replaced (by the model, a
    marker, edit time, a person, recovery), found by their span in the program."""
    if not isinstance(trace, dict):
        return
    new: dict[tuple[int, int], str] = {}
    for sec in trace.get("sections") or ():
        for r in sec.get("rows") or ():
            place = r.get("new")
            if r.get("op") in ("added", "replaced") and place and place[1] is not None:
                new[(place[1], place[2])] = row_kind(r)
    if not new:
        return
    stack = list(roots)
    while stack:
        n = stack.pop()
        kind = new.get((n.start, n.end)) if n.start is not None else None
        if kind:
            n.change, n.change_label = kind, LABELS.get(kind, kind)
        if n.depth < 4:    # body forms are at depth 3 (quine > eval > do > form)
            stack.extend(n.children)


def flatten(roots: Iterable[ptree.TreeNode]) -> list[dict]:
    """The tree as a flat open/leaf/more/close sequence, so one template loop renders it
    without recursive includes (and without Python recursion on deep programs)."""
    out: list[dict] = []
    stack: list[Any] = [n for n in reversed(list(roots))]
    while stack:
        item = stack.pop()
        if item is None:
            out.append({"close": True})
            continue
        n: ptree.TreeNode = item
        if n.kind == "more":
            out.append({"more": True, "node": n})
        elif n.children:
            out.append({"open": True, "node": n})
            stack.append(None)
            stack.extend(reversed(n.children))
        else:
            out.append({"leaf": True, "node": n})
    return out


def _line_offset(text: str, line: int) -> int:
    """Character offset where 1-based ``line`` starts."""
    pos = 0
    for _ in range(max(0, line - 1)):
        nxt = text.find("\n", pos)
        if nxt == -1:
            return len(text)
        pos = nxt + 1
    return pos


def _lines_html(text: str, segments: list[dict], focus: Optional[int] = None) -> dict:
    """The source view of ``text``: at most ``SOURCE_WINDOW`` characters, around ``focus``
    (a selection or an error) or else the end, where a growing program's newest text is.
    Line numbers and offsets stay those of the whole text."""
    start, end = 0, len(text)
    if len(text) > SOURCE_WINDOW:
        if focus is None:
            start = len(text) - SOURCE_WINDOW
        else:
            start = min(max(0, focus - SOURCE_WINDOW // 2), len(text) - SOURCE_WINDOW)
        end = start + SOURCE_WINDOW
    shown = text[start:end]
    segs = [dict(s, start=max(s["start"], start) - start, end=min(s["end"], end) - start)
            for s in segments if s.get("end", 0) > start and s.get("start", 0) < end]
    lines = highlight_lines(shown, segs)
    first = text.count("\n", 0, start) + 1
    return {"lines_html": lines, "lines": len(lines), "cut": start > 0 or end < len(text),
            "start": start, "end": end, "first_line": first, "length": len(text),
            "plain": len(shown) > MAX_HIGHLIGHT_CHARS}


def _source_layout(request: Any, text: str, segs: list[dict], open_prefix: bool
                   ) -> tuple[dict, str, list[dict], Optional[Layout]]:
    """The source view's text: pretty-printed (the default; segments moved along) or the
    compact text the runtime keeps (``?layout=compact``). Text that does not read, or is too
    long to lay out on a page view, stays compact and says why."""
    want = request.GET.get("layout", "pretty") if request is not None else "pretty"
    info = {"pretty": want != "compact", "note": ""}
    if not info["pretty"]:
        return info, text, segs, None
    if len(text) > PRETTY_MAX_CHARS:
        info.update(pretty=False, note=f"too long to lay out ({len(text):,} characters)")
        return info, text, segs, None
    try:
        laid = _laid_out(text, open_prefix)
    except (SpellError, RecursionError):
        info.update(pretty=False, note="shown as stored: it does not read")
        return info, text, segs, None
    return info, laid.text, laid.segments(segs), laid


_LAID: "OrderedDict[tuple[str, bool], Layout]" = OrderedDict()
_LAID_MAX = 4
_LAID_LOCK = threading.Lock()


def _laid_out(text: str, open_prefix: bool) -> Layout:
    """``pretty_text`` with a small per-process cache: a followed run's source view, and
    moving between a step's tabs and back, lay the same long program out again and again."""
    key = (text, open_prefix)
    with _LAID_LOCK:
        hit = _LAID.get(key)
        if hit is not None:
            _LAID.move_to_end(key)
            return hit
    laid = pretty_text(text, SOURCE_WIDTH, open_prefix=open_prefix)
    if len(text) >= 5_000:   # short programs are cheap to lay out again
        with _LAID_LOCK:
            _LAID[key] = laid
            while len(_LAID) > _LAID_MAX:
                _LAID.popitem(last=False)
    return laid


def prev_program(run: Run, step: Step) -> tuple[str, str, Optional[int]]:
    """The program this step's program is compared with: its parent step's program, or for a
    root step the run's initial program. Returns (text, label, step id or None).

    A step under another agent's step (a spawned agent's first call, a wake of a finished
    agent) did not grow out of that program: it is compared with the same agent's latest
    earlier step, and a new agent's first step with where it started (its own prefix,
    closed), so the diff never says it removed the spawner's forms."""
    if step.parent is not None and step.parent >= 0:
        parent = Step.objects.filter(run=run, step_id=step.parent).select_related("program_version").first()
        if parent is not None and parent.agent != step.agent:
            own = (Step.objects.filter(run=run, agent=step.agent, step_id__lt=step.step_id,
                                       program_version__isnull=False)
                   .select_related("program_version").order_by("-step_id").first())
            if own is not None:
                return own.program_text(), f"step {own.step_id} ({step.agent}'s previous)", own.step_id
            from spellide.spell.api import balance_open
            start = step.prefix_text()
            return (balance_open(start)[0] if start else "",
                    f"where {step.agent} started (spawned at step {parent.step_id})", None)
        if parent is not None and parent.program_version_id:
            how = "continued" if parent.continued_by == step.step_id else "parent"
            return parent.program_text(), f"step {parent.step_id} ({how})", parent.step_id
    cfg = run.config or {}
    if cfg.get("init"):
        return cfg["init"], "the initial program", None
    if cfg.get("prompt") is not None:
        from spellide.spell.api import build_init
        try:
            return build_init(cfg["prompt"]), "the initial program (from the prompt)", None
        except Exception:  # the printer may reject odd prompts; fall back to no comparison
            return "", "nothing", None
    return "", "nothing", None


def step_edits(run: Run, sid: int) -> list[dict]:
    out = []
    for e in Edit.objects.filter(run=run, step_id=sid).select_related("author").order_by("seq", "id"):
        who = e.author_name or (e.author.get_username() if e.author_id else "") or "someone"
        out.append({"author": who, "at": e.created_at.timestamp(), "point": e.point,
                    "point_label": POINT_LABELS.get(e.point, e.point), "action": e.action})
    return out


def effect_row(e: Effect) -> dict:
    args = e.args or ""
    result = e.result if e.result is not None else ""
    usage = e.usage or {}
    why, _, detail = (e.reason or "").partition("\n")
    return {
        "pk": e.pk, "step": e.step_id, "ordinal": e.ordinal, "name": e.name, "status": e.status,
        "reason": e.reason, "why": why, "why_detail": detail, "miss_rows": None,
        "digest": e.args_digest, "args": args[:TEXT_INLINE], "args_pretty": _readable(args),
        "args_cut": bool(e.args_version_id) or len(args) > TEXT_INLINE,
        "result": result[:TEXT_INLINE], "result_cut": len(result) > TEXT_INLINE,
        "has_result": e.result is not None, "error": e.error, "ms": e.duration_ms,
        "saved_ms": getattr(e, "saved_ms", 0) or 0, "usage": usage,
        "tokens": (usage.get("input_tokens") or 0) + (usage.get("output_tokens") or 0) if usage else 0,
        "cost": usage.get("cost") if usage else None,
    }


def _readable(args: str) -> str:
    """Long printed arguments laid out for reading ("" when short, or too long to lay out)."""
    if len(args) <= 120 or len(args) > TEXT_INLINE:
        return ""
    try:
        return pretty_text(args, 72).text
    except (SpellError, RecursionError):
        return ""


MISSES_EXPLAINED = 20     # misses per page explained form by form (each reads two programs)


def explain_misses(run: Run, rows: list[dict]) -> list[dict]:
    """For misses whose arguments changed, what differs, structurally: for a model call the
    forms of the prefix that changed against the recorded call's prefix (the structural
    diff), for other effects the arguments that changed. The recorded call is the parent
    run's effect at the same position (a fork); runs without one keep the text reason."""
    todo = [r for r in rows if r["status"] == "miss" and r["why_detail"]][:MISSES_EXPLAINED]
    if not todo or not run.parent_run_id:
        return rows
    parent = Run.objects.filter(pk=run.parent_run_id).first()
    if parent is None:
        return rows
    for r in todo:
        old = (Effect.objects.filter(run=parent, step_id=r["step"], ordinal=r["ordinal"])
               .select_related("args_version").first())
        if old is None:
            continue
        try:
            if r["name"].startswith("model/"):
                r["miss_rows"] = _prefix_changes(parent, run, r["step"])
            else:
                r["miss_rows"] = _arg_changes(old.args_text(), _full_args(r))
        except (SpellError, RecursionError):
            r["miss_rows"] = None
    return rows


def _prefix_changes(old_run: Run, new_run: Run, sid: int) -> Optional[list]:
    old_step = Step.objects.filter(run=old_run, step_id=sid).first()
    new_step = Step.objects.filter(run=new_run, step_id=sid).first()
    if old_step is None or new_step is None:
        return None
    old = api.balance_open(_sent_prefix(old_run, old_step))[0]
    new = api.balance_open(_sent_prefix(new_run, new_step))[0]
    diff = diff_programs(old, new)
    return None if diff.error else [x for x in diff.rows if x.kind != "kept"]


def _full_args(row: dict) -> str:
    e = Effect.objects.filter(pk=row["pk"]).select_related("args_version").first() if row.get("pk") else None
    return e.args_text() if e is not None else row["args"]


def _arg_changes(old_text: str, new_text: str) -> Optional[list]:
    """The arguments (of an argument vector) that differ, as structural diff rows."""
    from spellide.web.diff import FormRef, Row
    old_forms, old_spans = ptree.read_cached(old_text)
    new_forms, new_spans = ptree.read_cached(new_text)
    if len(old_forms) != 1 or len(new_forms) != 1:
        return None
    (old,), (new,) = old_forms, new_forms
    o_spans, n_spans = list(getattr(old, "spans", None) or ()), list(getattr(new, "spans", None) or ())
    out = []
    for i in range(max(len(old), len(new))):
        a = FormRef(i, old[i], o_spans[i] if i < len(o_spans) else None, old_text) if i < len(old) else None
        b = FormRef(i, new[i], n_spans[i] if i < len(n_spans) else None, new_text) if i < len(new) else None
        if a is not None and b is not None and a.text == b.text:
            continue
        out.append(Row("changed" if a and b else ("removed" if a else "appended"), old=a, new=b))
        out[-1].arg = i + 1  # type: ignore[attr-defined]
    return out


def effect_from_event(step: int, data: dict, args_limit: int = TEXT_INLINE) -> dict:
    """An effect row from an ``effect`` event payload (same keys as ``effect_row``)."""
    args = data.get("args") or ""
    if not isinstance(args, str):
        args = ""
    result = data.get("result")
    usage = data.get("usage") or {}
    key = data.get("key") or {}
    why, _, detail = (data.get("reason") or "").partition("\n")
    return {
        "pk": None, "step": step, "ordinal": data.get("ordinal", key.get("ordinal")),
        "name": data.get("name", ""), "status": data.get("status", ""), "reason": data.get("reason", ""),
        "why": why, "why_detail": detail, "miss_rows": None, "args_pretty": _readable(args[:args_limit]),
        "digest": data.get("args_digest") or key.get("args_digest", ""), "args": args[:args_limit],
        "args_cut": len(args) > args_limit, "result": (result or "")[:TEXT_INLINE],
        "result_cut": bool(result) and len(result) > TEXT_INLINE, "has_result": result is not None,
        "error": data.get("error"), "ms": data.get("duration_ms"), "saved_ms": data.get("saved_ms") or 0,
        "usage": usage, "tokens": (usage.get("input_tokens") or 0) + (usage.get("output_tokens") or 0) if usage else 0,
        "cost": usage.get("cost") if usage else None,
    }


def utf16_len(text: str) -> int:
    """A text's length as the browser counts it (UTF-16 code units): streamed pieces are
    placed by this offset in the page's live text."""
    if text.isascii():
        return len(text)
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)   # astral: a surrogate pair


def detail_context(nav: Any, step: Step, tab: str, request: Any = None) -> dict:
    """Everything the detail pane of one step shows; only the open tab's data is computed."""
    run = nav.run
    d: dict[str, Any] = {"step": step, "sid": step.step_id, "tab": tab,
                         "tab_partial": STEP_TABS[tab].partial,
                         "base": f"{nav.base}/steps/{step.step_id}/"}
    d["status"] = row_status(step.status, step.error, step.continued_by, getattr(step, "recovered", False))
    d["ms"] = _duration_ms(step, paused_ms(run, [step.step_id]).get(step.step_id, 0.0))
    d["usage"] = step.usage or {}
    d["children"] = list(Step.objects.filter(run=run, parent=step.step_id)
                         .exclude(step_id=step.continued_by or -10)
                         .order_by("step_id").values_list("step_id", flat=True)[:20])
    d["running"] = step.status in ("running", "paused")
    d["completion_live"] = step.completion if d["running"] else ""
    d["completion_live_len"] = utf16_len(d["completion_live"])
    d["agent"] = agent_messages(run, step)
    d["tree_url"] = f"{nav.base}/steps/{step.step_id}/tree/"
    d["source_url"] = f"{nav.base}/steps/{step.step_id}/?tab=source"
    STEP_TABS[tab].fill(d, nav, step, request)
    return d


def agent_messages(run: Run, step: Step) -> Optional[dict]:
    """For a step of a multi-agent run: its agent and lifecycle, the messages its receipts
    bound (``msg-N`` <- sender) and the messages it sent; None in a single-agent run."""
    if run.agent_count < 2:
        return None
    colours = Agent.colours(run)
    got = list(Receipt.objects.filter(run=run, step_id=step.step_id).order_by("seq", "id")[:50])
    by_id = {m.msg_id: m for m in Message.objects.filter(run=run, msg_id__in=[r.msg_id for r in got])}
    received = [{"name": r.name, "site": r.site, "msg": by_id.get(r.msg_id)} for r in got]
    sent = list(Message.objects.filter(run=run, step_id=step.step_id).order_by("seq", "id")[:50])
    return {"handle": step.agent, "generation": step.generation, "colour": colours.get(step.agent, 0),
            "received": received, "sent": sent}


# --- step tabs -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class StepTab:
    """One tab of the step detail: its label, the partial that renders it
    (``spellide/parts.html#tab_<name>``) and what it adds to the detail context. Adding a tab
    is one ``@step_tab`` function here plus its partial."""

    name: str
    label: str
    fill: Any   # fill(d, nav, step, request): put what the tab shows into ``d``
    template: str = ""   # another partial than the conventional one

    @property
    def partial(self) -> str:
        return self.template or f"spellide/parts.html#tab_{self.name}"


STEP_TABS: dict[str, StepTab] = {}


def step_tab(name: str, label: str, template: str = "") -> Any:
    """Register the decorated ``fill`` function as the step tab ``name`` (in order)."""
    def deco(fill: Any) -> Any:
        STEP_TABS[name] = StepTab(name, label, fill, template)
        return fill
    return deco


@step_tab("tree", "Program tree")
def _tab_tree(d: dict, nav: Any, step: Step, request: Any) -> None:
    text, is_prefix = tree_text(step)
    tree = ptree.build_tree(text, open_prefix=is_prefix) if text else None
    d["tree"] = tree
    d["tree_is_prefix"] = is_prefix
    if tree is not None and not is_prefix:
        mark_changes(tree.roots, step.edit_trace)
    d["items"] = flatten(tree.roots) if tree else []


@step_tab("source", "Source")
def _tab_source(d: dict, nav: Any, step: Step, request: Any) -> None:
    sel = request.GET.get("sel", "") if request is not None else ""
    sel_ok = bool(re.fullmatch(r"\d+-\d+", sel))
    d["sel"] = sel if sel_ok else ""
    d["error_span"] = step.error_span
    d["err_line"] = int_or_none((step.error_span or {}).get("line"))
    program = step.program_text()
    if program:
        text, segs = program, list(step.provenance or [])
        d["source_kind"] = "program"
    else:
        prefix = step.prefix_text()
        text = prefix + (step.completion or "")
        segs = [{"start": 0, "end": len(prefix), "source": "prefix"},
                {"start": len(prefix), "end": len(text), "source": "model"}]
        d["source_kind"] = "prefix + completion so far"
    focus = int(sel.split("-")[0]) if sel_ok else None
    err_at = None
    if d["err_line"]:
        err_at = _line_offset(text, d["err_line"]) + max(0, (int_or_none((step.error_span or {}).get("col")) or 1) - 1)
    d["legend"] = _legend(segs)
    d["layout"], text, segs, moved = _source_layout(request, text, segs, open_prefix=not program)
    if moved is not None:
        if sel_ok:
            a, b = (int(x) for x in sel.split("-"))
            d["sel"] = f"{moved.offset(a)}-{moved.end_offset(b)}"
            focus = moved.offset(a)
        if err_at is not None:
            err_at = moved.offset(err_at)
            d["err_line"] = text.count("\n", 0, err_at) + 1
    if focus is None:
        focus = err_at
    d["source"] = _lines_html(text, segs, focus)


@step_tab("diff", "Diff")
def _tab_diff(d: dict, nav: Any, step: Step, request: Any) -> None:
    run = nav.run
    program = step.program_text()
    prev, label, prev_id = prev_program(run, step)
    edits = step_edits(run, step.step_id)
    d["prev_label"], d["prev_id"] = label, prev_id
    d["edits"] = edits
    d["receipt"] = None
    if program and step.receipt_base_version_id:
        # the step's own turn against what came before, then what the receipt added to it
        own = step.receipt_base_version.text()
        rewrite = diff_programs(own, program, [], (), step.receipt_trace)
        d["receipt"] = [r for r in rewrite.rows if r.kind != "kept"]
        program = own
    if program:
        diff = diff_programs(prev, program, list(step.provenance or []), edits, step.edit_trace)
        d["diff"] = diff
        d["groups"] = diff_groups(diff.rows)
        d["summary"] = [{"kind": k, "label": LABELS.get(k, k), "n": n}
                        for k, n in diff.summary.items() if k != "kept"]
    else:
        d["diff"] = None


@step_tab("effects", "Effects")
def _tab_effects(d: dict, nav: Any, step: Step, request: Any) -> None:
    d["effects"] = explain_misses(nav.run, [effect_row(e) for e in Effect.objects.filter(
        run=nav.run, step_id=step.step_id).order_by("ordinal", "id")[:500]])


@step_tab("value", "Value")
def _tab_value(d: dict, nav: Any, step: Step, request: Any) -> None:
    d["value"] = step.value
    d["error"] = step.error
    d["error_span"] = step.error_span


@step_tab("sent", "As sent")
def _tab_sent(d: dict, nav: Any, step: Step, request: Any) -> None:
    d["sent"] = as_sent(nav.run, step)


def _sent_prefix(run: Run, step: Step) -> str:
    """The prefix the model was given: the step's, or what a person edited it to."""
    edit = (Edit.objects.filter(run=run, step_id=step.step_id, point="before_model")
            .select_related("after_version").order_by("-seq", "-id").first())
    return edit.after_version.text() if edit is not None else step.prefix_text()


def as_sent(run: Run, step: Step) -> dict:
    """What the model was sent for this step: the request body rebuilt from its record (the
    prefix and system prompt put back, checked against their digests), shown part by part
    and whole; or why nothing was sent (a cache hit, a local model, no call yet)."""
    data = (RunEvent.objects.filter(run=run, type="completion", data__step=step.step_id)
            .order_by("-seq").values_list("data", flat=True).first())
    call = (Effect.objects.filter(run=run, step_id=step.step_id, name__startswith="model/")
            .order_by("ordinal", "id").values("status", "reason", "name").first())
    out: dict[str, Any] = {"call": call, "recorded": None, "problem": "", "body": None,
                           "prefix": None, "parts": []}
    recorded = (data or {}).get("request") if isinstance(data, dict) else None
    if not isinstance(recorded, dict):
        out["prefix"] = _sent_prefix(run, step)
        return out
    out["recorded"] = recorded
    texts = {"prefix": _sent_prefix(run, step)}
    transport = step.transport or ""
    texts["system"] = system_prompt(transport) if transport in transports() else None
    try:
        body = rebuild_request(recorded, texts)
    except MissingText as e:
        out["problem"] = e.message
        body = recorded.get("body")
    out["body"] = body
    out["json"] = json.dumps(body, indent=2, ensure_ascii=False)
    out["parts"] = _sent_parts(body)
    return out


def _sent_parts(body: Any) -> list[dict]:
    """The request body as a person reads it: the texts (system prompt, each message, the
    prompt) as text, the rest (settings, tool schema) as JSON."""
    if not isinstance(body, dict):
        return []
    parts: list[dict] = []
    for key, value in body.items():
        if key == "messages" and isinstance(value, list):
            for i, m in enumerate(value):
                content = m.get("content") if isinstance(m, dict) else m
                blocks = content if isinstance(content, list) else [content]
                texts = [b.get("text") if isinstance(b, dict) else b for b in blocks]
                extra = {k: v for k, v in (m.items() if isinstance(m, dict) else ()) if k not in ("role", "content")}
                parts.append({"label": f"message {i + 1}: {m.get('role', '?') if isinstance(m, dict) else '?'}",
                              "texts": [t if isinstance(t, str) else json.dumps(t, ensure_ascii=False) for t in texts],
                              "json": json.dumps(extra, ensure_ascii=False) if extra else ""})
        elif key in ("system", "prompt") and isinstance(value, (str, list)):
            blocks = value if isinstance(value, list) else [value]
            parts.append({"label": key, "texts": [b.get("text", "") if isinstance(b, dict) else str(b) for b in blocks],
                          "json": ""})
        elif key == "tools":
            parts.append({"label": "tools", "texts": [], "json": json.dumps(value, indent=2, ensure_ascii=False)})
    settings = {k: v for k, v in body.items() if k not in ("messages", "system", "prompt", "tools")}
    parts.insert(0, {"label": "settings", "texts": [], "json": json.dumps(settings, ensure_ascii=False)})
    return parts


def int_or_none(x: Any) -> Optional[int]:
    """``int(x)``, or None for what is not a whole number (event payloads, query values)."""
    try:
        return int(x)
    except (TypeError, ValueError):
        return None


def diff_groups(rows: list, show: int = 3) -> list[dict]:
    """Consecutive unchanged forms folded into one group so the changes stand out; a long
    group lists only its first and last ``show`` forms (a 10,000-form program would otherwise
    send every unchanged form to the page)."""
    out: list[dict] = []
    for r in rows:
        if r.kind == "kept":
            if out and out[-1].get("kept"):
                out[-1]["all"].append(r)
            else:
                out.append({"kept": True, "all": [r]})
        else:
            out.append({"kept": False, "row": r})
    for g in out:
        if g.get("kept"):
            rows_ = g.pop("all")
            g["count"] = len(rows_)
            if len(rows_) > 2 * show + 1:
                g["rows"] = rows_[:show] + ["gap"] + rows_[-show:]
                g["hidden"] = len(rows_) - 2 * show
            else:
                g["rows"] = rows_
    return out


def _legend(segments: list[dict]) -> list[dict]:
    out: dict[str, int] = {}
    for s in segments:
        out[s.get("source", "?")] = out.get(s.get("source", "?"), 0) + max(0, s.get("end", 0) - s.get("start", 0))
    return [{"source": k, "chars": v} for k, v in out.items()]


def effect_kinds() -> list[dict]:
    """The effect namespaces an effect breakpoint can name, with what each is for (from the
    core's declarations)."""
    return [{"name": ns.name, "doc": ns.doc} for ns in effect_namespaces()]


def read_problem(text: str, open_prefix: bool = False) -> Optional[dict]:
    """Why a text cannot be read, with line, column and offset (None when it reads). An open
    prefix may end inside forms but not inside a string, a comment or a character literal
    (``check_prefix``); a program may end inside forms (the runtime closes missing parens)."""
    from spellide.spell.api import ReadError, SpellError, check_prefix, read_all
    if open_prefix:
        err = check_prefix(text)
        return None if err is None else {"message": err.reason, "line": err.line, "col": err.col,
                                         "offset": getattr(err, "offset", None)}
    try:
        read_all(text)
    except ReadError as e:
        if e.incomplete:
            return None
        return {"message": getattr(e, "reason", e.message), "line": e.line, "col": e.col,
                "offset": getattr(e, "offset", None)}
    except SpellError as e:
        return {"message": e.message, "line": None, "col": None}
    return None


# --- effect cache stats ------------------------------------------------------------------------
def effect_stats(run: Run) -> dict:
    by = {r["status"]: r for r in Effect.objects.filter(run=run).values("status")
          .annotate(n=Count("id"), ms=Sum("duration_ms"), saved=Sum("saved_ms"))}
    totals = run.totals or {}
    return {
        "live": by.get("live", {}).get("n", 0), "hit": by.get("hit", {}).get("n", 0),
        "miss": by.get("miss", {}).get("n", 0), "blocked": by.get("blocked", {}).get("n", 0),
        "total": sum(r["n"] for r in by.values()),
        "live_ms": (by.get("live", {}).get("ms") or 0) + (by.get("miss", {}).get("ms") or 0),
        "saved_ms": totals.get("time_saved_ms") or (by.get("hit", {}).get("saved") or 0),
        "cost_saved": totals.get("cost_saved") or 0, "tokens_saved": totals.get("tokens_saved") or 0,
        "cost": totals.get("cost") or 0,
        "input_tokens": totals.get("input_tokens") or 0, "output_tokens": totals.get("output_tokens") or 0,
    }


# --- forks -----------------------------------------------------------------------------------
def _can_view(user: Any, run: Run, token: Optional[str]) -> bool:
    from spellide.web.access import can_view
    return can_view(user, run, token)


def lineage(run: Run, user: Any, token: Optional[str] = None) -> dict:
    """The fork links shown in the header: the parent run and how many forks this run has."""
    parent = None
    if run.parent_run_id:
        p = Run.objects.filter(pk=run.parent_run_id).only("public_id", "title", "owner_id", "share_token").first()
        if p is not None:
            parent = {"run": p, "visible": _can_view(user, p, token)}
    return {"parent": parent, "fork_step": run.fork_step,
            "forks": Run.objects.filter(parent_run=run).count()}


def fork_tree(run: Run, user: Any, token: Optional[str] = None) -> list[dict]:
    """The whole fork family of a run (from its root ancestor), as a flat list with depths,
    so the tree reads the same from the parent and from any fork."""
    root = run
    ancestors = {run.pk}
    for _ in range(50):
        if not root.parent_run_id:
            break
        parent = Run.objects.filter(pk=root.parent_run_id).first()
        if parent is None or parent.pk in ancestors:
            break
        ancestors.add(parent.pk)
        root = parent
    out: list[dict] = []
    stack: list[tuple[Run, int]] = [(root, 0)]
    seen = {root.pk}
    while stack and len(out) < FORK_TREE_LIMIT:
        node, depth = stack.pop()
        out.append({"run": node, "depth": depth, "current": node.pk == run.pk,
                    "visible": node.pk == run.pk or _can_view(user, node, token),
                    "steps": (node.totals or {}).get("steps")})
        kids = list(Run.objects.filter(parent_run=node).order_by("-created_at")[:FORK_TREE_LIMIT])
        for k in kids:
            if k.pk not in seen:
                seen.add(k.pk)
                stack.append((k, depth + 1))
    return out


# --- run setup -----------------------------------------------------------------------------------
def run_setup(run: Run) -> dict:
    """How a run was configured and what its model was told: the config, the model settings
    recorded when it started (never a key: profiles name the environment variable only), and
    the system prompt of its transport, flagged when this server's prompt differs from the one
    the run was recorded with (its digest is in every model-call effect key, so a replay with a
    different prompt shows as misses)."""
    started = (RunEvent.objects.filter(run=run, type="run_started").order_by("seq")
               .values_list("data", flat=True).first()) or {}
    settings = dict(started.get("model_settings") or {})
    cfg = dict(run.config or {})
    transport = str(settings.get("transport") or "")
    prompt: Optional[dict] = None
    if transport in transports():
        recorded = settings.get("prompt_digest") or ""
        prompt = {"transport": transport, "text": system_prompt(transport),
                  "version": settings.get("prompt_version") or "", "digest": recorded,
                  "current_version": PROMPT_VERSION, "current_digest": prompt_digest(transport),
                  "changed": bool(recorded) and recorded != prompt_digest(transport)}
    bps = cfg.get("breakpoints") or {}
    breakpoints = [label for key, label in (("before_model", "before every model call"),
                                            ("after_completion", "after every completion"),
                                            ("on_error", "on errors")) if bps.get(key)]
    breakpoints += [f"effects {k}" for k in bps.get("effect_kinds") or []]
    workspace = cfg.get("workspace")
    return {
        "prompt_text": cfg.get("prompt"), "init_text": cfg.get("init"),
        "model": cfg.get("model") or started.get("model") or "",
        "settings": sorted((k, v) for k, v in settings.items()
                           if k not in ("prompt_version", "prompt_digest") and v not in (None, "", {}, [])),
        "limits": [("depth", cfg.get("depth") or "unlimited"),
                   ("budget", f"${cfg['budget']:.2f}" if cfg.get("budget") else "unlimited"),
                   ("error recovery", "on" if cfg.get("recover", True) else "off"),
                   ("cache mode", cfg.get("cache_mode") or "live"), ("seed", cfg.get("seed", 0)),
                   ("inline limit", cfg.get("inline_limit") or 10000)],
        "workspace": (str(workspace).replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] if workspace else None),
        "shell": bool(cfg.get("allow_shell")),
        "breakpoints": breakpoints, "system_prompt": prompt,
    }


# --- new run form --------------------------------------------------------------------------------
def model_choices(user: Any = None) -> list[tuple[str, list[tuple[str, str]]]]:
    """Models a new run can use, grouped, in the start form's vocabulary
    (``forms.NewRunForm``): the built-in ``hello`` model and each bundled demo's scripted
    model (no key, no network), one entry for replaying a recorded run (picked from a
    searchable list, not one entry per run), and the configured provider profiles (marked when
    their API key is not set on the server)."""
    local = [("hello", "hello (built-in: always answers \"hello world\")")]
    local += [(f"demo:{d.name}", f"scripted: {d.title}") for d in list_demos()]
    groups: list[tuple[str, list[tuple[str, str]]]] = [("No key needed", local)]
    if user is not None and getattr(user, "is_authenticated", False) and Run.objects.filter(
            owner=user, status__in=["finished", "failed", "stopped"]).exists():
        groups.append(("Recorded runs (replayed from the effect cache)",
                       [("replay", "replay of a recorded run (choose it below)")]))
    try:
        from spellide.spell.api import load_profiles
        profiles = []
        for name, prof in sorted(load_profiles().items()):
            missing = prof.api_key_env and not os.environ.get(prof.api_key_env)
            label = f"{name}: {prof.provider} {prof.model}" + (f" (needs {prof.api_key_env})" if missing else "")
            profiles.append((f"profile:{name}", label))
        if profiles:
            groups.append(("Providers", profiles))
    except Exception:  # no profiles file, or one that does not load: offer the others
        pass
    return groups


def workspace_choices() -> list[tuple[str, str]]:
    out = [("", "default (the demo's, else none)"), ("none", "none (no io/ effects)"),
           ("empty", "an empty workspace")]
    out += [(f"demo:{d.name}", f"a copy of the {d.title} demo's files") for d in list_demos()
            if d.workspace_seed is not None]
    return out


def demo_choices() -> list[Any]:
    return list(list_demos())
