"""The IDE's pages: run list, run page with a windowed step list, step detail tabs, the
run-wide effect cache, the fork tree, and the read-only share view.

Scale rule: nothing here loads a run's whole history. The step list is a window of rows around
the selected step (plus counts of what is outside it); the detail pane reads one step, its
parent (for the diff) and that step's effects; tabs other than the open one are fetched only
when clicked. Share links reuse the same views under ``/share/<token>/`` with controls off.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, Optional

from django.contrib.auth.decorators import login_not_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_GET, require_POST

from spellide.spell import api
from spellide.web import program_tree as ptree
from spellide.web.highlight import highlight, highlight_marked
from spellide.web.models import Effect, Run, Step
from spellide.web import access, lanes, run_search, stepinfo
from spellide.web.forms import MAX_DEPTH
from spellide.web.views import is_htmx

WINDOW = 60             # step rows rendered around the selected step
MAX_WINDOW = 200        # the most rows one window request returns
EFFECTS_PAGE = 100
RUNS_PAGE = 50
STEP_HITS_PAGE = 50
REPLAY_CHOICES = 12     # recorded runs the replay picker lists at once
TEXT_INLINE = 20_000    # longer effect args/results are cut on the page (full text via raw view)
CONTROL_NAMES = ("run_pause", "run_resume", "run_step", "run_stop", "run_edit", "run_fork",
                 "run_resume_interrupted", "run_approve", "run_reject", "run_share", "run_unshare")


# --- access ----------------------------------------------------------------------------------
def can_view(user: Any, run: Run, token: Optional[str] = None) -> bool:
    """The backend's rule (``spellide.web.access``): owner or staff, or a valid share token."""
    return access.can_view(user, run, token)


@dataclass
class Nav:
    """Where this page lives: the owner's ``/runs/<id>`` or a share link's ``/share/<token>``.
    Templates build step URLs from ``base`` (cheaper than ``{% url %}`` per row on big windows)."""

    run: Run
    base: str
    readonly: bool
    token: Optional[str] = None


def _resolve(request: HttpRequest, public_id: Any = None, token: Optional[str] = None) -> Nav:
    try:
        if token is not None:
            run = Run.objects.get(share_token=token)
        else:
            run = Run.objects.get(public_id=public_id)
    except (Run.DoesNotExist, ValueError):
        raise Http404("No such run") from None
    if not can_view(request.user, run, token):
        raise Http404("No such run")  # do not reveal that the run exists
    if token is not None:
        return Nav(run, f"/share/{token}", readonly=True, token=token)
    # Staff may look at someone else's run but only its owner steers it.
    return Nav(run, f"/runs/{run.public_id}", readonly=not access.can_control(request.user, run))


def _public(view: Callable) -> Callable:
    """A separate, login-exempt function object for share URLs (``login_not_required`` marks
    the function it is given, so the owner's URLs keep requiring a login)."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except Http404:
            if kwargs.get("token") is None or Run.objects.filter(share_token=kwargs["token"]).exists():
                raise
            return _share_gone(request)

    return login_not_required(wrapper)


def _share_gone(request: HttpRequest) -> HttpResponse:
    """A share link whose token no run holds: revoked by the run's owner (tokens are random,
    so a mistyped one is far less likely), said on a page of the app rather than a bare 404."""
    if is_htmx(request):
        return HttpResponse('<p class="warn share-gone">This share link was revoked: '
                            'the run is no longer shared.</p>', status=404)
    return render(request, "spellide/share_gone.html", status=404)


def _controls(nav: Nav, user: Any) -> dict[str, Optional[str]]:
    """URLs of the backend's control endpoints this user may use on this page (a missing
    one hides its button): none on share links, fork for anyone who may view, the rest for
    the run's owner."""
    if nav.token is not None:
        return {}
    out: dict[str, Optional[str]] = {}
    owner = access.can_control(user, nav.run)
    for name in CONTROL_NAMES:
        if name != "run_fork" and not owner:
            continue
        if name == "run_fork" and not access.can_fork(user, nav.run):
            continue
        try:
            out[name] = reverse(name, kwargs={"public_id": nav.run.public_id})
        except NoReverseMatch:
            out[name] = None
    return out


def _detail_ctx(request: HttpRequest, nav: Nav, d: Optional[dict], **extra: Any) -> dict:
    """Context shared by every render of the step detail (page, htmx partial, tabs)."""
    ctx = {"nav": nav, "run": nav.run, "d": d, "controls": _controls(nav, request.user),
           "tabs": [(t.name, t.label) for t in stepinfo.STEP_TABS.values()]}
    ctx.update(extra)
    return ctx


def _url_or_none(name: str, **kwargs: Any) -> Optional[str]:
    try:
        return reverse(name, kwargs=kwargs)
    except NoReverseMatch:
        return None


# --- run list ----------------------------------------------------------------------------------
@require_GET
def run_list(request: HttpRequest) -> HttpResponse:
    return render(request, "spellide/run_list.html", run_list_context(request))


def run_list_context(request: HttpRequest, form: Any = None) -> dict:
    """The start page: the user's runs and the new-run form (``form`` bound to what was sent
    when it is shown again with its errors)."""
    from spellide.web.forms import NewRunForm
    filter_form = run_search.RunFilterForm(request.GET or None)
    filters = filter_form.filters() if request.GET else {}
    runs = (run_search.filter_runs(Run.objects.filter(owner=request.user), filters)
            .only("public_id", "title", "status", "created_at", "updated_at", "config", "totals",
                  "parent_run_id", "fork_step", "demo", "pause")
            .prefetch_related("tags").order_by("-created_at"))
    page = Paginator(runs, RUNS_PAGE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return {
        "page": page, "filter_form": filter_form, "filtered": bool(filters), "query": query.urlencode(),
        "models": stepinfo.model_choices(request.user),
        "effect_kinds": stepinfo.effect_kinds(), "start_url": _url_or_none("run_start"),
        "demos": stepinfo.demo_choices(), "workspaces": stepinfo.workspace_choices(),
        "form": form if form is not None else NewRunForm(initial={"budget": "1.00"}, user=request.user),
        "max_depth": MAX_DEPTH, **replayable(request.user, ""),
    }


def replayable(user: Any, query: str) -> dict:
    """The user's recorded runs a new run can replay, newest first, by title (the model menu
    offers one "replay" entry and this searchable list instead of one entry per run)."""
    from spellide.web.forms import REPLAYABLE
    qs = Run.objects.filter(owner=user, status__in=REPLAYABLE).only("public_id", "title", "status", "created_at")
    if query:
        qs = qs.filter(title__icontains=query)
    found = list(qs.order_by("-created_at")[:REPLAY_CHOICES + 1])
    more = qs.count() - REPLAY_CHOICES if len(found) > REPLAY_CHOICES else 0
    return {"replayable": found[:REPLAY_CHOICES], "replay_more": more, "replay_q": query}


@require_GET
def replay_choices(request: HttpRequest) -> HttpResponse:
    """The replay picker's list for ``?replay_q=`` (htmx, as the person types)."""
    query = (request.GET.get("replay_q") or "").strip()[:200]
    return render(request, "spellide/run_list.html#replay_choices", replayable(request.user, query))


# --- run page ----------------------------------------------------------------------------------
def _default_step(run: Run) -> Optional[int]:
    """The step a run page opens on: the paused step, else the latest step."""
    if run.pause and run.pause.get("step") is not None and run.pause.get("step") >= 0:
        return int(run.pause["step"])
    last = Step.objects.filter(run=run).order_by("-step_id").values_list("step_id", flat=True).first()
    return last


@require_GET
def run_page(request: HttpRequest, public_id: Any = None, step_id: Optional[int] = None,
             token: Optional[str] = None) -> HttpResponse:
    nav = _resolve(request, public_id, token)
    run = nav.run
    tab = request.GET.get("tab") if request.GET.get("tab") in stepinfo.STEP_TABS else "tree"
    if step_id is None:
        step_id = _default_step(run)
    step = None
    if step_id is not None:
        step = Step.objects.filter(run=run, step_id=step_id).select_related(
            "program_version", "prefix_version").first()
        if step is None and request.resolver_match and "step_id" in (request.resolver_match.kwargs or {}):
            raise Http404("No such step")
    detail = stepinfo.detail_context(nav, step, tab, request) if step is not None else None
    if is_htmx(request) and request.GET.get("part") == "detail":
        return render(request, "spellide/parts.html#step_detail", _detail_ctx(request, nav, detail))
    window = stepinfo.window_around(run, step.step_id if step else None, WINDOW)
    ctx = _detail_ctx(
        request, nav, detail, window=window, tab=tab, status=stepinfo.status_info(run),
        lineage=_lineage(run, request.user, nav.token), view="steps",
        lanes=lanes.timeline(run, nav.base),
        ws_url=None if nav.token else run.ws_path(),
        control_token=None if nav.readonly else access.control_token(
            request.user, run, request.session.session_key))
    return render(request, "spellide/run_page.html", ctx)


@require_GET
def step_tab(request: HttpRequest, step_id: int, tab: str, public_id: Any = None,
             token: Optional[str] = None) -> HttpResponse:
    nav = _resolve(request, public_id, token)
    if tab not in stepinfo.STEP_TABS:
        raise Http404("No such tab")
    step = Step.objects.filter(run=nav.run, step_id=step_id).select_related(
        "program_version", "prefix_version").first()
    if step is None:
        raise Http404("No such step")
    d = stepinfo.detail_context(nav, step, tab, request)
    return render(request, stepinfo.STEP_TABS[tab].partial, _detail_ctx(request, nav, d))


@require_GET
def tree_node(request: HttpRequest, step_id: int, public_id: Any = None,
              token: Optional[str] = None) -> HttpResponse:
    """One subtree of a step's program tree (the nodes the first render left folded)."""
    nav = _resolve(request, public_id, token)
    step = Step.objects.filter(run=nav.run, step_id=step_id).select_related(
        "program_version", "prefix_version").first()
    if step is None:
        raise Http404("No such step")
    text, is_prefix = stepinfo.tree_text(step)
    path = request.GET.get("path", "")
    ctx = {"nav": nav, "sid": step.step_id, "tree_url": f"{nav.base}/steps/{step.step_id}/tree/"}
    if "from" in request.GET:
        try:
            start, end = int(request.GET["from"]), int(request.GET.get("to", 0))
        except ValueError:
            raise Http404("No such node") from None
        nodes = ptree.children_range(text, path, start, end, open_prefix=is_prefix)
        if nodes is None:
            raise Http404("No such node")
        return render(request, "spellide/parts.html#tree", dict(ctx, items=stepinfo.flatten(nodes)))
    node = ptree.subtree(text, path, open_prefix=is_prefix)
    if node is None:
        raise Http404("No such node")
    return render(request, "spellide/parts.html#tree", dict(ctx, items=stepinfo.flatten([node]), open_path=node.path))


@require_GET
def step_window(request: HttpRequest, public_id: Any = None, token: Optional[str] = None) -> HttpResponse:
    """Rows before/after a step (``?before=N`` / ``?after=N``) or around it (``?around=N``)."""
    nav = _resolve(request, public_id, token)

    def num(name: str) -> Optional[int]:
        try:
            return int(request.GET[name])
        except (KeyError, ValueError):
            return None

    limit = min(num("limit") or WINDOW, MAX_WINDOW)
    if num("before") is not None:
        w = stepinfo.window_before(nav.run, num("before"), limit)
        return render(request, "spellide/parts.html#window_before", {"nav": nav, "window": w})
    if num("after") is not None:
        w = stepinfo.window_after(nav.run, num("after"), limit)
        return render(request, "spellide/parts.html#window_after", {"nav": nav, "window": w})
    w = stepinfo.window_around(nav.run, num("around"), limit)
    return render(request, "spellide/parts.html#step_window", {"nav": nav, "window": w})


@require_GET
def step_search(request: HttpRequest, public_id: Any = None, token: Optional[str] = None) -> HttpResponse:
    """The run's steps that match ``?q=`` (in ``where``: prefix / completion / value / error),
    ``status`` and ``effect`` (kind), a page at a time (``run_search``)."""
    nav = _resolve(request, public_id, token)
    form = run_search.StepSearchForm(request.GET)
    ctx: dict[str, Any] = {"nav": nav, "run": nav.run, "search": form, "hits": None}
    if form.asked:
        f = form.cleaned_data
        found = run_search.row_values(run_search.search_steps(nav.run, f), f["q"], f["where"])
        page = Paginator(found, STEP_HITS_PAGE).get_page(request.GET.get("page"))
        rows = list(page.object_list)
        query = request.GET.copy()
        query.pop("page", None)
        ctx.update(page=page, hits=run_search.hits(rows, f["q"], f["where"]), query=query.urlencode())
    status = 400 if form.errors else 200
    if is_htmx(request):
        return render(request, "spellide/step_search.html#step_hits", ctx, status=status)
    return render(request, "spellide/step_search.html", ctx, status=status)


# --- effects, forks ------------------------------------------------------------------------------
@require_GET
def run_effects(request: HttpRequest, public_id: Any = None, token: Optional[str] = None) -> HttpResponse:
    """The run's effect cache: every entry (paged), filterable by status, with what it saved."""
    nav = _resolve(request, public_id, token)
    run = nav.run
    status = request.GET.get("status") or ""
    qs = Effect.objects.filter(run=run).order_by("step_id", "ordinal", "id")
    if status in ("live", "hit", "miss", "blocked"):
        qs = qs.filter(status=status)
    name = (request.GET.get("name") or "").strip()
    if name:
        qs = qs.filter(name__startswith=name)
    page = Paginator(qs.defer("args", "result"), EFFECTS_PAGE).get_page(request.GET.get("page"))
    rows = list(Effect.objects.filter(pk__in=[e.pk for e in page.object_list]).order_by("step_id", "ordinal", "id"))
    ctx = {"nav": nav, "run": run, "page": page,
           "rows": stepinfo.explain_misses(run, [stepinfo.effect_row(e) for e in rows]),
           "stats": stepinfo.effect_stats(run), "status_filter": status, "name_filter": name,
           "view": "effects"}
    return _run_view(request, nav, ctx)


FORK_INDENT_MAX = 12    # deeper forks are drawn at this indentation (classes d0..d12 in ide.css)


@require_GET
def run_forks(request: HttpRequest, public_id: Any = None, token: Optional[str] = None) -> HttpResponse:
    nav = _resolve(request, public_id, token)
    run = nav.run
    ctx = {"nav": nav, "run": run,
           "forest": visible_forest(stepinfo.fork_tree(run, request.user, nav.token)),
           "view": "forks"}
    return _run_view(request, nav, ctx)


def visible_forest(forest: list[dict]) -> list[dict]:
    """The fork tree with only the runs this viewer may see (a share link: only the shared
    run). The others are left out, not greyed out: their titles, states and times are not
    the viewer's to read. A visible run under hidden ones moves up by their number, so the
    tree still reads as a tree. ``forest`` is in depth-first order with depths."""
    out: list[dict] = []
    hidden: list[int] = []          # depths of the hidden runs above the current one
    for f in forest:
        while hidden and hidden[-1] >= f["depth"]:
            hidden.pop()
        if not f["visible"]:
            hidden.append(f["depth"])
            continue
        depth = f["depth"] - len(hidden)
        out.append({**f, "depth": depth, "indent": min(depth, FORK_INDENT_MAX)})
    return out


def _lineage(run: Run, user: Any, token: Optional[str]) -> dict:
    """The header's fork links, counting only the forks this viewer may see."""
    info = stepinfo.lineage(run, user, token)
    if info["forks"]:
        forks = Run.objects.filter(parent_run=run).only("owner_id", "share_token")
        info["forks"] = sum(1 for f in forks if can_view(user, f, token))
    return info


@require_GET
def run_setup(request: HttpRequest, public_id: Any = None, token: Optional[str] = None) -> HttpResponse:
    """How the run was configured, which model settings it ran with, and its system prompt."""
    nav = _resolve(request, public_id, token)
    ctx = {"nav": nav, "run": nav.run, "setup": stepinfo.run_setup(nav.run), "view": "setup",
           "controls": _controls(nav, request.user)}
    return _run_view(request, nav, ctx)


def _run_view(request: HttpRequest, nav: Nav, ctx: dict) -> HttpResponse:
    """A run-wide view (effects, forks, setup): the partial for htmx, else the whole page
    around it (header, status, the steps pane) without the live socket."""
    if is_htmx(request):
        return render(request, f"spellide/parts.html#{ctx['view']}_view", ctx)
    run = nav.run
    ctx.update(status=stepinfo.status_info(run), controls=_controls(nav, request.user),
               lineage=_lineage(run, request.user, nav.token),
               window=stepinfo.window_around(run, _default_step(run), WINDOW), tabs=[], ws_url=None)
    return render(request, "spellide/run_page.html", ctx)


@require_GET
def effect_raw(request: HttpRequest, effect_id: int, part: str, public_id: Any = None,
               token: Optional[str] = None) -> HttpResponse:
    """The full text of a long effect argument list or result, as inert plain text."""
    nav = _resolve(request, public_id, token)
    eff = Effect.objects.filter(run=nav.run, pk=effect_id).first()
    if eff is None or part not in ("args", "result"):
        raise Http404("No such effect")
    text = eff.args_text() if part == "args" else (eff.result or "")
    resp = HttpResponse(text, content_type="text/plain; charset=utf-8")
    resp["X-Content-Type-Options"] = "nosniff"
    resp["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return resp


@require_GET
def step_text(request: HttpRequest, step_id: int, part: str, public_id: Any = None,
              token: Optional[str] = None) -> HttpResponse:
    """A step's prefix, completion or program as plain text (export, and huge programs)."""
    nav = _resolve(request, public_id, token)
    step = Step.objects.filter(run=nav.run, step_id=step_id).select_related(
        "program_version", "prefix_version").first()
    if step is None or part not in ("prefix", "completion", "program"):
        raise Http404("No such step")
    text = {"prefix": step.prefix_text, "completion": lambda: step.completion,
            "program": step.program_text}[part]()
    resp = HttpResponse(text, content_type="text/plain; charset=utf-8")
    resp["X-Content-Type-Options"] = "nosniff"
    resp["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return resp


# --- editor preview ----------------------------------------------------------------------------
@require_POST
def highlight_preview(request: HttpRequest) -> HttpResponse:
    """The editor's text highlighted (Pygments-escaped HTML) plus whether it reads, and where
    it does not. ``mode=prefix`` accepts an open prefix; a program may also end early (the
    runtime closes missing parens), but malformed text is reported with line and column;
    ``mode=init`` (a new run's program) must read completely, as one form."""
    text = request.POST.get("text", "")
    if len(text) > 5_000_000:
        return JsonResponse({"ok": False, "message": "the text is too long", "html": ""}, status=413)
    if request.POST.get("mode") == "init":   # the new-run form: read as the run will read it
        found = api.init_problem(text) if text.strip() else None
        problem = None if found is None else {"message": found.message, "line": found.line, "col": found.col}
    else:
        problem = stepinfo.read_problem(text, open_prefix=(request.POST.get("mode") == "prefix"))
    html = highlight(text) if problem is None else highlight_marked(text, problem.get("offset"))
    return JsonResponse({"html": str(html), "ok": problem is None,
                         "message": (problem or {}).get("message"), "line": (problem or {}).get("line"),
                         "col": (problem or {}).get("col")})


# Share-link variants: same views, no login, controls off (Nav.readonly).
share_page = _public(run_page)
share_tab = _public(step_tab)
share_tree_node = _public(tree_node)
share_window = _public(step_window)
share_effects = _public(run_effects)
share_forks = _public(run_forks)
share_setup = _public(run_setup)
share_effect_raw = _public(effect_raw)
share_step_text = _public(step_text)
share_step_search = _public(step_search)

__all__ = ["run_list", "replay_choices", "step_search", "run_page", "step_tab", "tree_node", "step_window", "run_effects",
           "run_forks", "run_setup", "effect_raw", "step_text", "highlight_preview"]
