"""Plain data for the IDE's templates: step rows, windows, the detail pane, effects, forks.

Kept apart from the views so the websocket fragments (``fragments.py``) build rows the same
way as the server-rendered list, and so each query's cost is visible in one place. Every
function here reads a bounded amount: a window of steps, one step and its parent, one page of
effects, a bounded walk of the fork tree.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

from django.db.models import Count, Sum
from django.db.models.functions import Substr

from spellide.web import program_tree as ptree
from spellide.web.demos import list_demos
from spellide.web.diff import LABELS, diff_programs, row_kind
from spellide.web.highlight import MAX_HIGHLIGHT_CHARS, highlight_lines
from spellide.spell.api import PROMPT_VERSION, effect_namespaces, prompt_digest, system_prompt, transports
from spellide.web.models import Edit, Effect, Run, RunEvent, Step

SUMMARY_CHARS = 300       # completion characters read for a row's one-line summary
FX_DOTS = 12              # effect dots shown per row
SOURCE_WINDOW = 40_000    # the source view shows at most this many characters (full text via raw link)
TEXT_INLINE = 20_000
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


def _duration_ms(step: Step) -> Optional[float]:
    if step.finished_at and step.started_at:
        return (step.finished_at - step.started_at).total_seconds() * 1000
    return None


def row_from_step(step: Step, fx: list[str]) -> dict:
    head = getattr(step, "completion_head", None)
    if head is None:
        head = step.completion[:SUMMARY_CHARS] if step.completion else ""
    return {
        "id": step.step_id, "parent": step.parent, "depth": step.depth,
        "status": row_status(step.status, step.error, step.continued_by, getattr(step, "recovered", False)),
        "summary": _summary(head), "error": _summary(step.error) if step.error else "",
        "cont": step.continued_by, "fx": fx[:FX_DOTS], "fx_more": max(0, len(fx) - FX_DOTS),
        "ms": _duration_ms(step), "model": step.model,
    }


def _rows(run: Run, steps: list[Step]) -> list[dict]:
    ids = [s.step_id for s in steps]
    fx: dict[int, list[str]] = {}
    if ids:
        for sid, st in (Effect.objects.filter(run=run, step_id__in=ids)
                        .order_by("step_id", "ordinal", "id").values_list("step_id", "status")):
            fx.setdefault(sid, []).append(st)
    return [row_from_step(s, fx.get(s.step_id, [])) for s in steps]


def _step_rows_qs(run: Run):
    return (Step.objects.filter(run=run)
            .annotate(completion_head=Substr("completion", 1, SUMMARY_CHARS))
            .only("step_id", "parent", "depth", "status", "error", "continued_by", "recovered",
                  "started_at", "finished_at", "model"))


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


def prev_program(run: Run, step: Step) -> tuple[str, str, Optional[int]]:
    """The program this step's program is compared with: its parent step's program, or for a
    root step the run's initial program. Returns (text, label, step id or None)."""
    if step.parent is not None and step.parent >= 0:
        parent = Step.objects.filter(run=run, step_id=step.parent).select_related("program_version").first()
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
    return {
        "pk": e.pk, "step": e.step_id, "ordinal": e.ordinal, "name": e.name, "status": e.status,
        "reason": e.reason, "digest": e.args_digest, "args": args[:TEXT_INLINE],
        "args_cut": bool(e.args_version_id) or len(args) > TEXT_INLINE,
        "result": result[:TEXT_INLINE], "result_cut": len(result) > TEXT_INLINE,
        "has_result": e.result is not None, "error": e.error, "ms": e.duration_ms,
        "saved_ms": getattr(e, "saved_ms", 0) or 0, "usage": usage,
        "tokens": (usage.get("input_tokens") or 0) + (usage.get("output_tokens") or 0) if usage else 0,
        "cost": usage.get("cost") if usage else None,
    }


def effect_from_event(step: int, data: dict, args_limit: int = TEXT_INLINE) -> dict:
    """An effect row from an ``effect`` event payload (same keys as ``effect_row``)."""
    args = data.get("args") or ""
    if not isinstance(args, str):
        args = ""
    result = data.get("result")
    usage = data.get("usage") or {}
    key = data.get("key") or {}
    return {
        "pk": None, "step": step, "ordinal": data.get("ordinal", key.get("ordinal")),
        "name": data.get("name", ""), "status": data.get("status", ""), "reason": data.get("reason", ""),
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
    d["ms"] = _duration_ms(step)
    d["usage"] = step.usage or {}
    d["children"] = list(Step.objects.filter(run=run, parent=step.step_id)
                         .exclude(step_id=step.continued_by or -10)
                         .order_by("step_id").values_list("step_id", flat=True)[:20])
    d["running"] = step.status in ("running", "paused")
    d["completion_live"] = step.completion if d["running"] else ""
    d["completion_live_len"] = utf16_len(d["completion_live"])
    d["tree_url"] = f"{nav.base}/steps/{step.step_id}/tree/"
    d["source_url"] = f"{nav.base}/steps/{step.step_id}/?tab=source"
    STEP_TABS[tab].fill(d, nav, step, request)
    return d


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
    if focus is None and d["err_line"]:
        focus = _line_offset(text, d["err_line"]) + max(0, (int_or_none((step.error_span or {}).get("col")) or 1) - 1)
    d["source"] = _lines_html(text, segs, focus)
    d["legend"] = _legend(segs)


@step_tab("diff", "Diff")
def _tab_diff(d: dict, nav: Any, step: Step, request: Any) -> None:
    run = nav.run
    program = step.program_text()
    prev, label, prev_id = prev_program(run, step)
    edits = step_edits(run, step.step_id)
    d["prev_label"], d["prev_id"] = label, prev_id
    d["edits"] = edits
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
    d["effects"] = [effect_row(e) for e in Effect.objects.filter(run=nav.run, step_id=step.step_id)
                    .order_by("ordinal", "id")[:500]]


@step_tab("value", "Value")
def _tab_value(d: dict, nav: Any, step: Step, request: Any) -> None:
    d["value"] = step.value
    d["error"] = step.error
    d["error_span"] = step.error_span


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
    """Why a text cannot be read, with line and column (None when it reads). An open prefix
    may end inside forms; a program may too (the runtime closes missing parens)."""
    from spellide.spell.api import ReadError, SpellError, read_all
    try:
        read_all(text)
    except ReadError as e:
        if e.incomplete:
            return None
        return {"message": getattr(e, "reason", e.message), "line": e.line, "col": e.col}
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
    (``controls.resolve_model``): the built-in ``hello`` model and each bundled demo's scripted
    model (no key, no network), the user's finished runs replayed from their records, and the
    configured provider profiles (marked when their API key is not set on the server)."""
    local = [("hello", "hello (built-in: always answers \"hello world\")")]
    local += [(f"demo:{d.name}", f"scripted: {d.title}") for d in list_demos()]
    groups: list[tuple[str, list[tuple[str, str]]]] = [("No key needed", local)]
    if user is not None and getattr(user, "is_authenticated", False):
        replays = [(f"replay:{r.public_id}", f"replay of: {(r.title or str(r.public_id))[:60]}")
                   for r in (Run.objects.filter(owner=user, status__in=["finished", "failed", "stopped"])
                             .only("public_id", "title").order_by("-created_at")[:20])]
        if replays:
            groups.append(("Recorded runs (replayed from the effect cache)", replays))
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
