"""Review endpoints: a step's threads (a panel of the step detail), the run's Review view
(every thread, verdicts, the review link), and the POSTs that comment, reply, resolve, reopen,
give a verdict and open / revoke the review link. ``/review/<token>/`` is where a review link
lands: a signed-in user who opens it becomes a reviewer of the run (read and comment)."""

from __future__ import annotations

from typing import Any, Optional

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from spellide.web import access, review
from spellide.web.models import ReviewThread, Run, Step
from spellide.web.views import is_htmx
from spellide.web.views.pages import _resolve, _run_view


def _reviewable(request: HttpRequest, public_id: Any) -> Run:
    nav = _resolve(request, public_id)
    if not access.can_comment(request.user, nav.run):
        raise Http404("No such run")
    return nav.run


def _step_ctx(request: HttpRequest, run: Run, step: Step, error: Optional[str] = None) -> dict[str, Any]:
    return {"run": run, "sid": step.step_id, "target": f"#step-review-{step.step_id}",
            "threads": review.step_threads(run, step.step_id, request.user),
            "hunks": review.hunks(run, step), "error": error, "anchors": ReviewThread.ANCHORS}


def _run_ctx(request: HttpRequest, nav: Any, error: Optional[str] = None) -> dict[str, Any]:
    run = nav.run
    return {"nav": nav, "run": run, "view": "review", "threads": review.run_threads(run),
            "counts": review.counts(run), "verdicts": review.verdicts(run), "error": error,
            "owner": access.can_control(request.user, run),
            "review_url": request.build_absolute_uri(f"/review/{run.review_token}/") if run.review_token else None}


@require_GET
def step_panel(request: HttpRequest, public_id: Any, step_id: int) -> HttpResponse:
    run = _reviewable(request, public_id)
    step = Step.objects.filter(run=run, step_id=step_id).first()
    if step is None:
        raise Http404("No such step")
    return render(request, "spellide/review.html#step_review", _step_ctx(request, run, step))


@require_GET
def run_review(request: HttpRequest, public_id: Any) -> HttpResponse:
    nav = _resolve(request, public_id)
    if not access.can_comment(request.user, nav.run):
        raise Http404("No such run")
    ctx = _run_ctx(request, nav)
    if is_htmx(request):
        return render(request, "spellide/review.html#review_view", ctx)
    return _run_view(request, nav, ctx)


def _back(request: HttpRequest, run: Run, step_id: Optional[int], error: Optional[str] = None) -> HttpResponse:
    """After a change: the panel that made it (htmx), else the page it came from."""
    status = 400 if error else 200
    if is_htmx(request):
        if request.POST.get("from") == "run" or step_id is None:
            return render(request, "spellide/review.html#review_view", _run_ctx(request, _resolve(request, run.public_id), error),
                          status=status)
        step = Step.objects.get(run=run, step_id=step_id)
        return render(request, "spellide/review.html#step_review", _step_ctx(request, run, step, error), status=status)
    if error:
        return render(request, "spellide/refused.html", {"title": "Comment refused", "message": error}, status=400)
    where = f"/runs/{run.public_id}/review/" if step_id is None else f"/runs/{run.public_id}/steps/{step_id}/"
    return HttpResponseRedirect(where)


def _int(value: Any) -> Optional[int]:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


@require_POST
def comment(request: HttpRequest, public_id: Any) -> HttpResponse:
    run = _reviewable(request, public_id)
    p = request.POST
    step_id = _int(p.get("step"))
    if p.get("step") not in (None, "") and step_id is None:
        return _back(request, run, None, "step must be a whole number")
    anchor = p.get("anchor") or ("step" if step_id is not None else "run")
    target = p.get("hunk", "") if anchor == "hunk" else p.get("node", "") if anchor == "node" else ""
    try:
        review.start_thread(run, request.user, step_id, anchor, target, p.get("body", ""))
    except review.ReviewRefused as e:
        return _back(request, run, step_id if Step.objects.filter(run=run, step_id=step_id).exists() else None, str(e))
    return _back(request, run, step_id)


def _thread(request: HttpRequest, thread_id: int) -> ReviewThread:
    thread = ReviewThread.objects.filter(pk=thread_id).select_related("run").first()
    if thread is None or not access.can_comment(request.user, thread.run):
        raise Http404("No such thread")
    return thread


def _shown_on(request: HttpRequest, thread: ReviewThread) -> tuple[Run, Optional[int]]:
    """Where the change was made from: a fork shows its ancestors' threads on its own steps."""
    run = Run.objects.filter(public_id=request.POST.get("on") or thread.run.public_id).first() or thread.run
    if not access.can_comment(request.user, run):
        run = thread.run
    return run, thread.step_id


@require_POST
def thread_reply(request: HttpRequest, thread_id: int) -> HttpResponse:
    thread = _thread(request, thread_id)
    run, step_id = _shown_on(request, thread)
    try:
        review.reply(thread, request.user, request.POST.get("body", ""))
    except review.ReviewRefused as e:
        return _back(request, run, step_id, str(e))
    return _back(request, run, step_id)


@require_POST
def thread_resolve(request: HttpRequest, thread_id: int, resolved: bool) -> HttpResponse:
    thread = _thread(request, thread_id)
    review.set_resolved(thread, request.user, resolved)
    run, step_id = _shown_on(request, thread)
    return _back(request, run, step_id)


@require_POST
def verdict(request: HttpRequest, public_id: Any) -> HttpResponse:
    run = _reviewable(request, public_id)
    try:
        review.give_verdict(run, request.user, request.POST.get("verdict", ""), request.POST.get("note", ""))
    except review.ReviewRefused as e:
        return _back(request, run, None, str(e))
    return _back(request, run, None)


@require_POST
def review_link(request: HttpRequest, public_id: Any, revoke: bool = False) -> HttpResponse:
    nav = _resolve(request, public_id)
    if not access.can_control(request.user, nav.run):
        raise Http404("No such run")
    if revoke:
        review.revoke_review_link(nav.run)
    else:
        review.open_review_link(nav.run)
    return _back(request, nav.run, None)


@require_GET
def join(request: HttpRequest, token: str) -> HttpResponse:
    run = Run.objects.filter(review_token=token).first() if token else None
    if run is None:
        return render(request, "spellide/refused.html", {
            "title": "Review link not valid",
            "message": "This review link was revoked or never existed. Ask the run's owner for a new one."}, status=404)
    review.join(run, request.user)
    return HttpResponseRedirect(run.get_absolute_url())
