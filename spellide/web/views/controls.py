"""Control endpoints: start, pause, resume, step, stop, edit, approve/reject an effect, fork,
resume after a restart, share links.

All are POST (login required by the middleware, CSRF checked, owner checked). An htmx request
(``HX-Request: true``) gets a small HTML fragment (``<span class="control-result ok|refused">``,
status 200, or 4xx when refused — htmx 4 swaps error responses too) or, for actions that
create a run, an ``HX-Redirect`` to it; any other request is redirected to the run page.
A refused edit answers 422 with the reader's message and position, and keeps the text (in the
fragment's ``data-text``-free ``<textarea>`` and on the paused run as ``pause.draft``).
"""

from __future__ import annotations

import json
import math
import secrets
from typing import Any, Optional

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils.html import escape, format_html
from django.views.decorators.http import require_GET, require_POST

from spellide.spell import api
from spellide.spell.api import MIN_MEMORY_MB, Breakpoints, RunConfig

from .. import runner
from ..access import can_control, can_fork, can_view
from ..demos import get_demo
from ..models import Run
from ..runner.controller import ActResult

__all__ = ["can_view", "start", "pause", "resume", "step", "stop", "edit", "approve", "reject", "fork",
           "resume_interrupted_view", "share", "unshare", "status"]

MAX_TEXT = 5_000_000


# --- helpers --------------------------------------------------------------------------------
def is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


def result_fragment(result: ActResult, status: Optional[int] = None) -> HttpResponse:
    where = ""
    if result.line is not None:
        where = format_html(' <span class="where">at line {}, column {}</span>', result.line, result.col)
    detail = format_html(": {}", result.error) if result.error else ""
    kept = ""
    if not result.ok and result.text is not None:
        kept = format_html('<textarea class="kept-text" name="text" hidden>{}</textarea>', result.text)
    html = format_html('<span class="control-result {}" data-ok="{}"{}>{}{}{}</span>{}',
                       "ok" if result.ok else "refused", "true" if result.ok else "false",
                       format_html(' data-line="{}" data-col="{}"', result.line, result.col)
                       if result.line is not None else "",
                       result.message, detail, where, kept)
    return HttpResponse(html, status=status or (200 if result.ok else 409))


def _respond(request: HttpRequest, run: Run, result: ActResult, status: Optional[int] = None) -> HttpResponse:
    if is_htmx(request):
        return result_fragment(result, status)
    if request.headers.get("Accept", "").startswith("application/json"):
        return JsonResponse(result.to_json(), status=status or (200 if result.ok else 409))
    (messages.success if result.ok else messages.error)(
        request, result.message + (f": {result.error} at {result.line}:{result.col}" if result.error else ""))
    return redirect(run.get_absolute_url())


def _redirect_to(request: HttpRequest, run: Run) -> HttpResponse:
    url = run.get_absolute_url()
    if is_htmx(request):
        resp = HttpResponse(format_html('<span class="control-result ok" data-ok="true">'
                                        '<a href="{}">{}</a></span>', url, run.title or "run"))
        resp["HX-Redirect"] = url
        return resp
    if request.headers.get("Accept", "").startswith("application/json"):
        return JsonResponse({"ok": True, "public_id": str(run.public_id), "url": url})
    return redirect(url)


def _own_run(request: HttpRequest, public_id: Any) -> Run:
    run = get_object_or_404(Run, public_id=public_id)
    if not can_view(request.user, run):
        raise Http404("no such run")
    return run


def _refuse(request: HttpRequest, message: str, status: int = 400, run: Optional[Run] = None) -> HttpResponse:
    result = ActResult(False, message)
    if run is not None and not is_htmx(request) and not request.headers.get("Accept", "").startswith("application/json"):
        return _respond(request, run, result, status)
    if is_htmx(request):
        return result_fragment(result, status)
    return JsonResponse(result.to_json(), status=status) if request.headers.get(
        "Accept", "").startswith("application/json") else HttpResponse(escape(message), status=status,
                                                                       content_type="text/plain")


def _int(value: Any, name: str, lo: Optional[int] = None) -> Optional[int]:
    if value in (None, ""):
        return None
    try:
        v = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a whole number")
    if lo is not None and v < lo:
        raise ValueError(f"{name} must be at least {lo}")
    return v


def _float(value: Any, name: str) -> Optional[float]:
    if value in (None, ""):
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number")
    if v < 0:
        raise ValueError(f"{name} must not be negative")
    return v


def _flag(request: HttpRequest, name: str) -> bool:
    return request.POST.get(name, "").lower() in ("1", "true", "on", "yes")


def _text(request: HttpRequest) -> Optional[str]:
    for key in ("text", "program", "prefix"):
        v = request.POST.get(key)
        if v is not None:
            if len(v) > MAX_TEXT:
                raise ValueError("the text is too long")
            return v.replace("\r\n", "\n")
    return None


# --- start ----------------------------------------------------------------------------------
def resolve_model(request: HttpRequest, spec: str) -> tuple[str, Optional[str]]:
    """The model field of the start form -> (RunConfig.model, cache mode override).

    ``hello``; ``demo:NAME`` (a bundled scripted model); ``replay:RUN_ID`` (a recorded run the
    user may view, replayed from its record); ``profile:NAME`` (a configured provider).
    File paths are never taken from the form."""
    spec = (spec or "").strip()
    if spec in ("", "hello"):
        return "hello", None
    kind, _, arg = spec.partition(":")
    if kind in ("demo", "scripted"):
        demo = get_demo(arg)
        if demo is None:
            raise ValueError(f"unknown demo model {arg!r}")
        return demo.model_spec, None
    if kind == "replay":
        src = Run.objects.filter(public_id=arg).first() if _is_uuid(arg) else None
        if src is None or not can_view(request.user, src):
            raise ValueError("unknown recorded run")
        from django.conf import settings
        from pathlib import Path
        rec = runner.record_of(src)
        path = Path(settings.RECORDS_DIR) / f"{src.public_id}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        rec.save(path)
        return f"replay:{path}", "replay"
    if kind == "profile" and arg:
        return f"profile:{arg}", None
    raise ValueError(f"unknown model {spec!r}")


def _is_uuid(s: str) -> bool:
    import uuid
    try:
        uuid.UUID(s)
        return True
    except (ValueError, TypeError):
        return False


def build_config(request: HttpRequest) -> tuple[RunConfig, str, Optional[str], Any]:
    """RunConfig from the start form; returns (config, title, demo name, workspace seed)."""
    p = request.POST
    demo = get_demo(p.get("demo", "")) if p.get("demo") else None
    if p.get("demo") and demo is None:
        raise ValueError("unknown demo")
    prompt = (p.get("prompt") or "").replace("\r\n", "\n").strip() or None
    program = (p.get("program") or "").replace("\r\n", "\n").strip() or None
    if prompt and program:
        raise ValueError("give a prompt or a program, not both")
    if demo is not None and not (prompt or program):
        prompt, program = demo.prompt, demo.program
    if not (prompt or program):
        raise ValueError("a run needs a prompt or a program")
    if program:
        from ..runner.controller import check_parse
        refused = check_parse(api.AFTER_COMPLETION, program)
        if refused is not None:
            raise ValueError(f"the program does not parse: {refused.error} at line {refused.line}, column {refused.col}")
    model_field = p.get("model") or (f"demo:{demo.name}" if demo else "hello")
    model, cache_mode = resolve_model(request, model_field)
    config = RunConfig(prompt=prompt if not program else None, init=program, model=model)
    if demo is not None:
        base = demo.run_config()
        for k in ("depth", "budget", "recover", "seed", "allow_multiple_top_level", "inline_limit"):
            setattr(config, k, getattr(base, k))
        config.breakpoints = base.breakpoints
    depth = _int(p.get("depth"), "depth", 1)
    if depth is not None:
        config.depth = depth
    budget = _float(p.get("budget"), "budget")
    if budget is not None:
        config.budget = budget or None
    memory = _int(p.get("memory_mb"), "memory limit (MB)", MIN_MEMORY_MB)
    if memory is not None:
        config.memory_mb = memory
    step_time = _float(p.get("step_time"), "step time limit (s)")
    if step_time is not None:
        if not math.isfinite(step_time) or step_time == 0:
            raise ValueError("step time limit (s) must be a positive number of seconds")
        config.step_time_limit = step_time
    if cache_mode:
        config.cache_mode = cache_mode
    if any(k in p for k in ("bp_before_model", "bp_after_completion", "bp_on_error", "effect_kinds",
                            "breakpoints_set")):
        kinds: list[str] = []
        for v in p.getlist("effect_kinds"):
            kinds += [k.strip() for k in v.replace(",", " ").split() if k.strip()]
        config.breakpoints = Breakpoints(_flag(request, "bp_before_model"), _flag(request, "bp_after_completion"),
                                         _flag(request, "bp_on_error"), kinds)
    ws = (p.get("workspace") or "").strip()
    seed = None
    if ws in ("", "none"):
        use_ws = demo is not None and demo.uses_workspace and ws != "none"
        seed = demo.workspace_seed if use_ws and demo is not None else None
    elif ws == "empty":
        use_ws = True
    else:
        seed_demo = get_demo(ws.removeprefix("demo:"))
        if seed_demo is None or seed_demo.workspace_seed is None:
            raise ValueError("unknown workspace seed")
        use_ws, seed = True, seed_demo.workspace_seed
    title = (p.get("title") or "").strip() or (demo.title if demo else (prompt or "program")[:80])
    return config, title, (demo.name if demo else None), (seed if use_ws else False)


@require_POST
def start(request: HttpRequest) -> HttpResponse:
    import uuid
    try:
        config, title, demo, seed = build_config(request)
    except ValueError as e:
        return _refuse(request, str(e), 422)
    public_id = uuid.uuid4()
    if seed is not False:
        config.workspace = runner.make_workspace(public_id, seed)
    run = runner.start_run(request.user, config, title, demo=demo, public_id=public_id)
    return _redirect_to(request, run)


# --- steering -------------------------------------------------------------------------------
def _act(request: HttpRequest, public_id: Any, action: str) -> HttpResponse:
    run = _own_run(request, public_id)
    if not can_control(request.user, run):
        return _refuse(request, "only the run's owner can steer it", 403, run)
    try:
        text = _text(request)
    except ValueError as e:
        return _refuse(request, str(e), 413, run)
    if action == "edit" and text is None:
        return _refuse(request, "an edit needs the edited text", 400, run)
    step = _flag(request, "step") or action == "step"
    result = runner.control(run, action, text if action in ("edit", "resume", "step") else None,
                            request.user.get_username(), step=step)
    status = None
    if not result.ok:
        status = 422 if result.error else 409
    return _respond(request, run, result, status)


@require_POST
def pause(request: HttpRequest, public_id: Any) -> HttpResponse:
    return _act(request, public_id, "pause")


@require_POST
def resume(request: HttpRequest, public_id: Any) -> HttpResponse:
    return _act(request, public_id, "resume")


@require_POST
def step(request: HttpRequest, public_id: Any) -> HttpResponse:
    return _act(request, public_id, "step")


@require_POST
def stop(request: HttpRequest, public_id: Any) -> HttpResponse:
    return _act(request, public_id, "stop")


@require_POST
def edit(request: HttpRequest, public_id: Any) -> HttpResponse:
    return _act(request, public_id, "edit")


@require_POST
def approve(request: HttpRequest, public_id: Any) -> HttpResponse:
    return _act(request, public_id, "approve")


@require_POST
def reject(request: HttpRequest, public_id: Any) -> HttpResponse:
    return _act(request, public_id, "reject")


@require_POST
def fork(request: HttpRequest, public_id: Any) -> HttpResponse:
    parent = _own_run(request, public_id)
    if not can_fork(request.user, parent):
        return _refuse(request, "you cannot fork this run", 403, parent)
    try:
        step_id = _int(request.POST.get("step"), "step", 0)
        text = _text(request)
    except ValueError as e:
        return _refuse(request, str(e), 400, parent)
    if step_id is None:
        return _refuse(request, "choose the step to fork from", 400, parent)
    point = request.POST.get("point") or api.AFTER_COMPLETION
    if point in ("prefix",):
        point = api.BEFORE_MODEL
    elif point in ("program",):
        point = api.AFTER_COMPLETION
    if text is not None and not text.strip():
        text = None
    try:
        run = runner.fork_run(parent, request.user, step_id, text=text, point=point,
                              title=(request.POST.get("title") or "").strip() or None)
    except runner.RunRefused as e:
        if e.result is not None:
            return _respond(request, parent, e.result, 422)
        return _refuse(request, e.message, 422, parent)
    return _redirect_to(request, run)


@require_POST
def resume_interrupted_view(request: HttpRequest, public_id: Any) -> HttpResponse:
    run = _own_run(request, public_id)
    if not can_control(request.user, run):
        return _refuse(request, "only the run's owner can resume it", 403, run)
    try:
        runner.resume_interrupted(run)
    except runner.RunRefused as e:
        return _refuse(request, e.message, 409, run)
    return _respond(request, run, ActResult(True, "resuming from the record"))


# --- sharing --------------------------------------------------------------------------------
@require_POST
def share(request: HttpRequest, public_id: Any) -> HttpResponse:
    run = _own_run(request, public_id)
    if not can_control(request.user, run):
        return _refuse(request, "only the run's owner can share it", 403, run)
    if not run.share_token:
        run.share_token = secrets.token_urlsafe(24)
        run.save(update_fields=["share_token", "updated_at"])
    url = request.build_absolute_uri(share_url(run))
    if is_htmx(request):
        return HttpResponse(format_html('<span class="share-link" data-ok="true"><a href="{}">{}</a></span>',
                                        url, url))
    if request.headers.get("Accept", "").startswith("application/json"):
        return JsonResponse({"ok": True, "url": url, "token": run.share_token})
    messages.success(request, f"Read-only link: {url}")
    return redirect(run.get_absolute_url())


@require_POST
def unshare(request: HttpRequest, public_id: Any) -> HttpResponse:
    run = _own_run(request, public_id)
    if not can_control(request.user, run):
        return _refuse(request, "only the run's owner can stop sharing it", 403, run)
    run.share_token = None
    run.save(update_fields=["share_token", "updated_at"])
    return _respond(request, run, ActResult(True, "the share link is revoked"))


def share_url(run: Run) -> str:
    from django.urls import NoReverseMatch, reverse
    try:
        return reverse("run_shared", kwargs={"token": run.share_token})
    except NoReverseMatch:
        return f"/share/{run.share_token}/"


# --- status ---------------------------------------------------------------------------------
@require_GET
def status(request: HttpRequest, public_id: Any) -> HttpResponse:
    run = _own_run(request, public_id)
    return JsonResponse({"public_id": str(run.public_id), "status": run.status, "last_seq": run.last_seq,
                         "pause": _pause_summary(run.pause), "totals": run.totals, "value": run.value,
                         "error": run.error, "segment": run.segment,
                         "parent": str(run.parent_run.public_id) if run.parent_run_id else None,
                         "fork_step": run.fork_step})


def _pause_summary(pause: Optional[dict]) -> Optional[dict]:
    if not pause:
        return None
    return {k: pause.get(k) for k in ("point", "step", "reason", "error", "effect", "seq", "draft_error")}
