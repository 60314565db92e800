"""Review of agent runs: threads of comments anchored on a step, a hunk of its structural diff or
a node of its program tree; resolve / reopen; a verdict per reviewer; a review link through which
other signed-in users of the instance may read the run and comment.

Anchors are resolved by the server: a hunk is a row of the step's diff against its previous
program (the same diff the Diff tab shows), a node is a path in the step's program tree, and the
thread keeps the text the anchor showed (``excerpt``) so it still reads after the run moved on.

A fork replays its parent's steps up to the fork point, so threads on those steps of the parent
(and of its ancestors, each up to where the next fork left it) are shown on the fork too.

Comment bodies are Markdown rendered by markdown-it (raw HTML off) and then sanitized by nh3
(an allow-list): nothing a reviewer or a run wrote is trusted as HTML.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Optional

import nh3
from django.db.models import Count, Q
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

from spellide.web.models import Reviewer, ReviewComment, ReviewThread, Run, Step, Verdict

MAX_BODY = 20_000
EXCERPT = 300
ALLOWED_TAGS = {"p", "br", "em", "strong", "code", "pre", "blockquote", "ul", "ol", "li", "a", "h1", "h2",
                "h3", "h4", "hr", "del", "table", "thead", "tbody", "tr", "th", "td"}
_md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table").enable("strikethrough")


class ReviewRefused(ValueError):
    """A comment, anchor or verdict that cannot be taken; the message says why."""


def render_markdown(text: str) -> SafeString:
    html = _md.render(text or "")
    clean = nh3.clean(html, tags=ALLOWED_TAGS, attributes={"a": {"href", "title"}},
                      url_schemes={"http", "https", "mailto"}, link_rel="noopener noreferrer nofollow")
    return mark_safe(clean)   # sanitized by nh3 just above: an allow-list of tags, no attributes but href


# --- review links ----------------------------------------------------------------------------
def open_review_link(run: Run) -> str:
    run.review_token = secrets.token_urlsafe(24)
    run.save(update_fields=["review_token"])
    return run.review_token


def revoke_review_link(run: Run) -> None:
    run.review_token = None
    run.save(update_fields=["review_token"])


def join(run: Run, user: Any) -> None:
    Reviewer.objects.update_or_create(run=run, user=user, defaults={"token": run.review_token})


# --- anchors ---------------------------------------------------------------------------------
def _excerpt(run: Run, step_id: Optional[int], anchor: str, target: str) -> str:
    from spellide.web import program_tree, stepinfo
    from spellide.web.diff import diff_programs
    if anchor == "run":
        return ""
    step = Step.objects.filter(run=run, step_id=step_id).first()
    if step is None:
        raise ReviewRefused(f"the run has no step {step_id}")
    if anchor == "step":
        return ""
    if anchor == "hunk":
        try:
            index = int(target)
        except ValueError:
            raise ReviewRefused("a hunk is named by its row number in the step's diff") from None
        prev, _label, _pid = stepinfo.prev_program(run, step)
        program = step.program_text()
        rows = diff_programs(prev, program, list(step.provenance or [])).rows if program else []
        if not 0 <= index < len(rows) or rows[index].kind == "kept":
            raise ReviewRefused(f"step {step_id}'s diff has no changed row {index}")
        r = rows[index]
        side = r.new or r.old
        return f"{r.label}: {side.preview if side else ''}"[:EXCERPT]
    if anchor == "node":
        node = program_tree.subtree(step.program_text() or step.prefix_text(), target, max_nodes=1)
        if node is None:
            raise ReviewRefused(f"step {step_id}'s program has no node {target!r}")
        return f"{node.label or node.kind} {node.preview}".strip()[:EXCERPT]
    raise ReviewRefused(f"unknown anchor {anchor!r}")


def hunks(run: Run, step: Step) -> list[dict[str, Any]]:
    """The changed rows of the step's diff, for the new-comment form's anchor choice."""
    from spellide.web import stepinfo
    from spellide.web.diff import diff_programs
    program = step.program_text()
    if not program:
        return []
    prev, _label, _pid = stepinfo.prev_program(run, step)
    out = []
    for i, r in enumerate(diff_programs(prev, program, list(step.provenance or [])).rows):
        if r.kind != "kept":
            side = r.new or r.old
            out.append({"index": i, "label": r.label, "preview": (side.preview if side else "")[:80]})
    return out[:200]


# --- threads and comments --------------------------------------------------------------------
def start_thread(run: Run, user: Any, step_id: Optional[int], anchor: str, target: str, body: str) -> ReviewThread:
    body = _body(body)
    if anchor not in ReviewThread.ANCHORS:
        raise ReviewRefused(f"unknown anchor {anchor!r}")
    if anchor == "run":
        step_id, target = None, ""
    elif step_id is None:
        raise ReviewRefused("a comment on a step needs the step")
    excerpt = _excerpt(run, step_id, anchor, target)
    thread = ReviewThread.objects.create(run=run, step_id=step_id, anchor=anchor, target=target[:200], excerpt=excerpt)
    ReviewComment.objects.create(thread=thread, author=user, author_name=user.get_username(), body=body)
    return thread


def reply(thread: ReviewThread, user: Any, body: str) -> ReviewComment:
    return ReviewComment.objects.create(thread=thread, author=user, author_name=user.get_username(), body=_body(body))


def set_resolved(thread: ReviewThread, user: Any, resolved: bool) -> None:
    thread.resolved = resolved
    thread.resolved_by = user.get_username() if resolved else ""
    thread.resolved_at = timezone.now() if resolved else None
    thread.save(update_fields=["resolved", "resolved_by", "resolved_at"])


def _body(body: str) -> str:
    body = (body or "").replace("\r\n", "\n").strip()
    if not body:
        raise ReviewRefused("a comment needs some text")
    if len(body) > MAX_BODY:
        raise ReviewRefused(f"a comment is at most {MAX_BODY:,} characters (this one has {len(body):,})")
    return body


@dataclass
class ThreadView:
    thread: ReviewThread
    comments: list[dict[str, Any]]
    inherited_from: Optional[Run] = None     # shown on a fork: the ancestor the thread is on


def _views(qs, inherited_from: Optional[Run] = None) -> list[ThreadView]:
    out = []
    for t in qs.prefetch_related("comments"):
        out.append(ThreadView(t, [{"author": c.author_name, "at": c.created_at, "html": render_markdown(c.body)}
                                  for c in t.comments.all()], inherited_from))
    return out


def _ancestors(run: Run) -> list[tuple[Run, int]]:
    """(ancestor, last step of it this run replayed), nearest first."""
    out, node, limit, seen = [], run, None, {run.pk}
    while node.parent_run_id and node.fork_step is not None and len(out) < 20:
        parent = Run.objects.filter(pk=node.parent_run_id).first()
        if parent is None or parent.pk in seen:
            break
        limit = node.fork_step if limit is None else min(limit, node.fork_step)
        out.append((parent, limit))
        seen.add(parent.pk)
        node = parent
    return out


def step_threads(run: Run, step_id: int, user: Any) -> list[ThreadView]:
    """Threads on ``step_id`` of the run, then those on the same step of the ancestors it
    replayed (only those the user may see)."""
    from spellide.web import access
    out = _views(ReviewThread.objects.filter(run=run, step_id=step_id))
    for parent, limit in _ancestors(run):
        if step_id <= limit and access.can_comment(user, parent):
            out += _views(ReviewThread.objects.filter(run=parent, step_id=step_id), inherited_from=parent)
    return out


def run_threads(run: Run) -> list[ThreadView]:
    return _views(ReviewThread.objects.filter(run=run).order_by("resolved", "step_id", "created_at"))


def counts(run: Run) -> dict[str, int]:
    c = ReviewThread.objects.filter(run=run).aggregate(open=Count("id", filter=Q(resolved=False)),
                                                       resolved=Count("id", filter=Q(resolved=True)))
    return {"open": c["open"] or 0, "resolved": c["resolved"] or 0}


def give_verdict(run: Run, user: Any, verdict: str, note: str = "") -> Verdict:
    if verdict not in dict(Verdict.CHOICES):
        raise ReviewRefused(f"a verdict is one of {', '.join(dict(Verdict.CHOICES))}")
    if len(note or "") > MAX_BODY:
        raise ReviewRefused(f"a note is at most {MAX_BODY:,} characters")
    return Verdict.objects.create(run=run, author=user, author_name=user.get_username(), verdict=verdict,
                                  note=(note or "").strip())


def verdicts(run: Run) -> list[dict[str, Any]]:
    """The newest verdict of each reviewer."""
    seen, out = set(), []
    for v in Verdict.objects.filter(run=run):
        if v.author_name in seen:
            continue
        seen.add(v.author_name)
        out.append({"author": v.author_name, "verdict": v.verdict, "label": v.get_verdict_display(),
                    "at": v.created_at, "note": render_markdown(v.note) if v.note else ""})
    return out
