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
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.utils.html import escape
from django.views.decorators.http import require_GET, require_POST

from spellide.spell import api

from .. import quota, run_manage, runner
from ..access import can_control, can_fork, can_view
from ..forms import NewRunForm
from ..models import Run
from ..runner.controller import ActResult
from . import is_htmx

__all__ = ["can_view", "start", "rename", "set_tags", "delete", "pause", "resume", "step", "stop", "edit", "approve", "reject", "fork",
           "resume_interrupted_view", "share", "unshare", "status"]

MAX_TEXT = 5_000_000


# --- helpers --------------------------------------------------------------------------------
def result_fragment(result: ActResult, status: Optional[int] = None) -> HttpResponse:
    return HttpResponse(render_to_string("spellide/parts.html#control_result", {"r": result}),
                        status=status or (200 if result.ok else 409))


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
        resp = HttpResponse(render_to_string("spellide/parts.html#control_run_link",
                                             {"url": url, "title": run.title or "run"}))
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


def _whole_number(value: Any, name: str, lo: Optional[int] = None) -> Optional[int]:
    """A form field as a whole number (None when empty); a ValueError naming the field if not."""
    if value in (None, ""):
        return None
    try:
        v = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a whole number")
    if lo is not None and v < lo:
        raise ValueError(f"{name} must be at least {lo}")
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
@require_POST
def start(request: HttpRequest) -> HttpResponse:
    """Start a run from the new-run form (or a demo's button). Invalid input answers 422 with
    the form again, each error next to its field and everything typed kept: the whole start
    page, the form alone for htmx, or the errors as JSON."""
    import uuid
    form = NewRunForm(request.POST, user=request.user)
    if not form.is_valid():
        return _invalid_form(request, form)
    try:
        with quota.run_slot(request.user):
            new = form.new_run()
            public_id = uuid.uuid4()
            if new.seed is not False:
                new.config.workspace = runner.make_workspace(public_id, new.seed)
            run = runner.start_run(request.user, new.config, new.title, demo=new.demo, public_id=public_id)
    except quota.QuotaExceeded as e:
        form.add_error(None, e.message)
        return _invalid_form(request, form, quota.STATUS)
    return _redirect_to(request, run)


def _invalid_form(request: HttpRequest, form: NewRunForm, status: int = 422) -> HttpResponse:
    from .pages import run_list_context
    if request.headers.get("Accept", "").startswith("application/json"):
        errors = {k: [e["message"] for e in v] for k, v in form.errors.get_json_data().items()}
        return JsonResponse({"ok": False, "message": "; ".join(m for v in errors.values() for m in v),
                             "errors": errors}, status=status)
    if is_htmx(request):
        return render(request, "spellide/run_list.html#new_run_form", run_list_context(request, form), status=status)
    return render(request, "spellide/run_list.html", run_list_context(request, form), status=status)


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
    if action == "pause" and run.status != Run.Status.PAUSED and (refused := quota.paused_refusal()):
        return _refuse(request, refused, quota.STATUS, run)
    step = _flag(request, "step") or action == "step"
    agent = request.POST.get("agent") or None   # one agent's pause (runner.controller)
    result = runner.control(run, action, text if action in ("edit", "resume", "step") else None,
                            request.user.get_username(), step=step, agent=agent)
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
        step_id = _whole_number(request.POST.get("step"), "step", 0)
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
        with quota.run_slot(request.user):
            run = runner.fork_run(parent, request.user, step_id, text=text, point=point,
                                  title=(request.POST.get("title") or "").strip() or None)
    except quota.QuotaExceeded as e:
        return _refuse(request, e.message, quota.STATUS, parent)
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
        with quota.run_slot(request.user):
            runner.resume_interrupted(run)
    except quota.QuotaExceeded as e:
        return _refuse(request, e.message, quota.STATUS, run)
    except runner.RunRefused as e:
        return _refuse(request, e.message, 409, run)
    return _respond(request, run, ActResult(True, "resuming from the record"))


# --- rename, tag, delete ----------------------------------------------------------------------
def _owned_for_edit(request: HttpRequest, public_id: Any) -> tuple[Run, Optional[HttpResponse]]:
    run = _own_run(request, public_id)
    if not can_control(request.user, run):
        return run, _refuse(request, "only the run's owner can change it", 403)
    return run, None


def _back(request: HttpRequest, result: ActResult, status: int = 200) -> HttpResponse:
    """After a change from the run list: a fragment for htmx, JSON, else back to the list."""
    from django.utils.http import url_has_allowed_host_and_scheme
    if is_htmx(request):
        return result_fragment(result, status)
    if request.headers.get("Accept", "").startswith("application/json"):
        return JsonResponse(result.to_json(), status=status)
    (messages.success if result.ok else messages.error)(request, result.message)
    nxt = request.POST.get("next") or "/"
    if not url_has_allowed_host_and_scheme(nxt, allowed_hosts={request.get_host()}):
        nxt = "/"
    return redirect(nxt)


@require_POST
def rename(request: HttpRequest, public_id: Any) -> HttpResponse:
    run, refused = _owned_for_edit(request, public_id)
    if refused:
        return refused
    form = run_manage.RenameForm(request.POST)
    if not form.is_valid():
        return _back(request, ActResult(False, "; ".join(form.errors["title"])), 422)
    run.title = form.cleaned_data["title"].strip()
    run.save(update_fields=["title", "updated_at"])
    return _back(request, ActResult(True, f"renamed to “{run.title or 'untitled run'}”"))


@require_POST
def set_tags(request: HttpRequest, public_id: Any) -> HttpResponse:
    run, refused = _owned_for_edit(request, public_id)
    if refused:
        return refused
    form = run_manage.TagsForm(request.POST)
    if not form.is_valid():
        return _back(request, ActResult(False, "; ".join(form.errors["tags"])), 422)
    run_manage.set_tags(run, form.cleaned_data["tags"])
    names = form.cleaned_data["tags"]
    return _back(request, ActResult(True, ("tagged " + ", ".join(names)) if names else "tags removed"))


@require_POST
def delete(request: HttpRequest, public_id: Any) -> HttpResponse:
    run, refused = _owned_for_edit(request, public_id)
    if refused:
        return refused
    if run.is_active or runner.get_active(run) is not None:
        return _back(request, ActResult(False, f"the run is {run.status}: stop it before deleting it"), 409)
    title = run.title or "untitled run"
    run_manage.delete_run(run)
    return _back(request, ActResult(True, f"deleted “{title}” with its records, journal and workspace"))


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
        return HttpResponse(render_to_string("spellide/parts.html#control_share_link", {"url": url}))
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
