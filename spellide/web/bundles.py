"""Export a stored run as a bundle (``spellide.spell.api`` defines the format) and import one.

Export copies the run's rows as they are stored: the program-version table (already a delta
chain) becomes the bundle's text table, and steps, effects, edits and events name texts by their
index in it. Import writes the same rows back under new primary keys, so an imported run is an
ordinary run: its pages, effect cache, forks and strict replay work as for a run made here. The
run keeps its id when the id is free on this server (so re-importing a fork can link to an
imported parent), and gets a new one otherwise; where it came from is kept in ``Run.origin``.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any, Optional

from django.db import connection, transaction

from spellide.spell import api
from spellide.web import access
from spellide.web.models import (ACTIVE_STATUSES, Agent, Edit, Effect, Message, ProgramVersion, Receipt,
                                 ReviewComment, ReviewThread, Run, RunEvent, RunStatus, Step, Verdict)

STEP_FIELDS = ("step_id", "parent", "depth", "status", "completion", "value", "error", "error_span", "model",
               "transport", "usage", "provenance", "continued_by", "segment", "recovered", "agent", "generation",
               "receipt_trace")
# a multi-agent run's derived rows (``runner/agent_rows.py``), as stored; a bundle without them
# (an older one, or a single-agent run) imports without them
AGENT_FIELDS = ("handle", "parent", "order", "status", "generation", "spawn_step", "started_at", "intervals", "seq")
MESSAGE_FIELDS = ("msg_id", "seq", "kind", "sender", "targets", "edge", "body", "step_id", "sent_at")
RECEIPT_FIELDS = ("msg_id", "agent", "step_id", "site", "name", "seq", "received_at")
AGENT_TABLES = (("agents", Agent, AGENT_FIELDS), ("messages", Message, MESSAGE_FIELDS),
                ("receipts", Receipt, RECEIPT_FIELDS))
EFFECT_FIELDS = ("step_id", "ordinal", "name", "args", "args_digest", "result", "status", "reason",
                 "started_at", "duration_ms", "usage", "seq", "segment", "error", "error_kind", "saved_ms")
EDIT_FIELDS = ("step_id", "point", "author_name", "action", "seq")
RUN_FIELDS = ("title", "status", "config", "value", "error", "error_kind", "totals", "last_seq", "demo",
              "fork_step", "segment")
BATCH = 500


# --- export ----------------------------------------------------------------------------------
def export_bundle(run: Run, user: Any = None, version: str = "0") -> dict[str, Any]:
    """The run as a bundle dict. ``user`` decides which of its fork ancestors are named in
    ``lineage`` (a share viewer's bundle does not name runs they may not see)."""
    index: dict[int, int] = {}
    texts: list[list[Any]] = []
    rows = (ProgramVersion.objects.filter(run=run).order_by("id")
            .values_list("pk", "kind", "base_id", "keep_chars", "tail", "sha256"))
    for pk, kind, base, keep, tail, sha in rows.iterator(chunk_size=2000):
        if base is not None and base not in index:
            raise ValueError(f"program version {pk} of run {run.public_id} has a base from another run")
        index[pk] = len(texts)
        texts.append([kind, index[base] if base is not None else None, keep if base is not None else 0, tail, sha])

    def ref(pk: Optional[int]) -> Optional[int]:
        return index[pk] if pk is not None else None

    steps = []
    for s in Step.objects.filter(run=run).order_by("step_id").iterator(chunk_size=2000):
        d = {f: getattr(s, f) for f in STEP_FIELDS}
        d.update(prefix=ref(s.prefix_version_id), program=ref(s.program_version_id),
                 receipt_base=ref(s.receipt_base_version_id),
                 started_at=_ts(s.started_at), finished_at=_ts(s.finished_at))
        steps.append(d)
    effects = []
    for e in Effect.objects.filter(run=run).order_by("seq", "id").iterator(chunk_size=2000):
        d = {f: getattr(e, f) for f in EFFECT_FIELDS}
        d["args_text"] = ref(e.args_version_id)
        effects.append(d)
    edits = [dict({f: getattr(e, f) for f in EDIT_FIELDS}, before=ref(e.before_version_id),
                  after=ref(e.after_version_id), created_at=_ts(e.created_at))
             for e in Edit.objects.filter(run=run).order_by("seq", "id")]
    events = [{"seq": seq, "type": typ, "ts": ts, "data": _remap(data, index)}
              for seq, typ, ts, data in RunEvent.objects.filter(run=run).order_by("seq")
              .values_list("seq", "type", "ts", "data").iterator(chunk_size=2000)]
    meta = {f: getattr(run, f) for f in RUN_FIELDS}
    meta.update(id=str(run.public_id), created_at=_ts(run.created_at),
                parent=str(run.parent_run.public_id) if run.parent_run_id else None)
    return {"format": api.BUNDLE_FORMAT, "version": api.BUNDLE_VERSION, "spellide": version,
            "exported_at": datetime.now(timezone.utc).isoformat(), "run": meta,
            "lineage": _lineage(run, user), "texts": texts, "steps": steps, "effects": effects,
            "edits": edits, "events": events, "review": _review(run),
            **{key: [{f: getattr(r, f) for f in fields} for r in model.objects.filter(run=run).order_by("id")]
               for key, model, fields in AGENT_TABLES}}


def _review(run: Run) -> dict[str, Any]:
    """The run's review threads (with their comments) and verdicts; authors by name."""
    threads = [{"step": t.step_id, "anchor": t.anchor, "target": t.target, "excerpt": t.excerpt,
                "created_at": _ts(t.created_at), "resolved": t.resolved, "resolved_by": t.resolved_by,
                "resolved_at": _ts(t.resolved_at),
                "comments": [{"author": c.author_name, "body": c.body, "created_at": _ts(c.created_at)}
                             for c in t.comments.all()]}
               for t in ReviewThread.objects.filter(run=run).prefetch_related("comments")]
    verdicts = [{"author": v.author_name, "verdict": v.verdict, "note": v.note, "created_at": _ts(v.created_at)}
                for v in Verdict.objects.filter(run=run).order_by("created_at", "id")]
    return {"threads": threads, "verdicts": verdicts}


def _lineage(run: Run, user: Any) -> list[dict[str, Any]]:
    """The run's fork ancestors, nearest first, as far as ``user`` may see them."""
    out: list[dict[str, Any]] = []
    node, seen = run, {run.pk}
    while node.parent_run_id and len(out) < 50:
        parent = Run.objects.filter(pk=node.parent_run_id).first()
        if parent is None or parent.pk in seen or (user is not None and not access.can_view(user, parent)):
            break
        out.append({"id": str(parent.public_id), "title": parent.title, "fork_step": node.fork_step})
        seen.add(parent.pk)
        node = parent
    return out


# --- import ----------------------------------------------------------------------------------
@transaction.atomic
def import_bundle(data: dict[str, Any], owner: Any) -> Run:
    """Write a bundle's run into this server for ``owner``; returns the new run. A bundle that
    does not hold together (a reference out of the text table, a malformed row) is refused with
    ``api.BundleError`` and nothing is written."""
    api.check_bundle(data)
    meta = data["run"]
    n_texts = len(data["texts"])
    try:
        public_id = uuid.UUID(str(meta.get("id")))
    except ValueError:
        public_id = uuid.uuid4()
    if Run.objects.filter(public_id=public_id).exists():
        public_id = uuid.uuid4()
    status = meta.get("status") or RunStatus.FINISHED
    if status in ACTIVE_STATUSES:      # nothing executes it here: it can be resumed from its record
        status = RunStatus.INTERRUPTED
    if status not in RunStatus.values:
        raise api.BundleError(f"run status {status!r} is not one this server knows")
    parent = None
    if meta.get("parent"):
        parent = Run.objects.filter(public_id=_uuid_or_none(meta["parent"])).first()
        if parent is not None and not access.can_view(owner, parent):
            parent = None
    run = Run.objects.create(
        public_id=public_id, owner=owner, title=str(meta.get("title") or "")[:200], status=status,
        config=meta.get("config") or {}, value=meta.get("value"), error=meta.get("error"),
        error_kind=meta.get("error_kind"), totals=meta.get("totals") or {}, last_seq=int(meta.get("last_seq") or 0),
        demo=meta.get("demo"), fork_step=meta.get("fork_step"), segment=int(meta.get("segment") or 0),
        agent_count=len(data.get("agents") or []),
        parent_run=parent, origin={"id": meta.get("id"), "parent": meta.get("parent"),
                                   "lineage": data.get("lineage") or [], "created_at": meta.get("created_at"),
                                   "exported_at": data.get("exported_at"),
                                   "spellide": data.get("spellide"), "imported_at": _now()})
    pks = _import_texts(run, data["texts"])

    def ref(i: Any) -> Optional[int]:
        if i is None:
            return None
        if not isinstance(i, int) or not 0 <= i < n_texts:
            raise api.BundleError(f"text reference {i!r} is not in the bundle's text table")
        return pks[i]

    try:
        Step.objects.bulk_create([Step(run=run, prefix_version_id=ref(s.get("prefix")),
                                       program_version_id=ref(s.get("program")),
                                       receipt_base_version_id=ref(s.get("receipt_base")),
                                       started_at=_dt(s.get("started_at")) or _now_dt(),
                                       finished_at=_dt(s.get("finished_at")),
                                       **{f: s[f] for f in STEP_FIELDS if f in s})
                                  for s in data.get("steps") or []], batch_size=BATCH)
        Effect.objects.bulk_create([Effect(run=run, args_version_id=ref(e.get("args_text")),
                                           **{f: e[f] for f in EFFECT_FIELDS if f in e})
                                    for e in data.get("effects") or []], batch_size=BATCH)
        Edit.objects.bulk_create([Edit(run=run, before_version_id=ref(e["before"]), after_version_id=ref(e["after"]),
                                       **{f: e[f] for f in EDIT_FIELDS if f in e})
                                  for e in data.get("edits") or []], batch_size=BATCH)
        RunEvent.objects.bulk_create([RunEvent(run=run, seq=int(e["seq"]), type=str(e["type"])[:32],
                                               ts=float(e.get("ts") or 0.0), created_at=_dt(e.get("ts")) or _now_dt(),
                                               data=_remap_in(e.get("data") or {}, ref))
                                      for e in data["events"]], batch_size=BATCH)
        _import_review(run, data.get("review") or {})
        for key, model, fields in AGENT_TABLES:
            model.objects.bulk_create([model(run=run, **{f: r[f] for f in fields if f in r})
                                       for r in data.get(key) or []], batch_size=BATCH)
    except (KeyError, TypeError, ValueError) as e:
        if isinstance(e, api.BundleError):
            raise
        raise api.BundleError(f"a row of the bundle is malformed: {e!r}") from None
    return run


def _import_review(run: Run, review: dict[str, Any]) -> None:
    """Threads and verdicts come back with their authors' names (the users are another server's)
    and their times."""
    for t in review.get("threads") or []:
        if t["anchor"] not in ReviewThread.ANCHORS:
            raise api.BundleError(f"review thread anchor {t['anchor']!r} is not one this server knows")
        thread = ReviewThread.objects.create(run=run, step_id=t.get("step"), anchor=t["anchor"],
                                             target=str(t.get("target") or "")[:200], excerpt=str(t.get("excerpt") or ""),
                                             resolved=bool(t.get("resolved")),
                                             resolved_by=str(t.get("resolved_by") or "")[:150],
                                             resolved_at=_dt(t.get("resolved_at")))
        ReviewThread.objects.filter(pk=thread.pk).update(created_at=_dt(t.get("created_at")) or _now_dt())
        for c in t.get("comments") or []:
            comment = ReviewComment.objects.create(thread=thread, author_name=str(c["author"])[:150], body=str(c["body"]))
            ReviewComment.objects.filter(pk=comment.pk).update(created_at=_dt(c.get("created_at")) or _now_dt())
    for v in review.get("verdicts") or []:
        if v["verdict"] not in dict(Verdict.CHOICES):
            raise api.BundleError(f"verdict {v['verdict']!r} is not one this server knows")
        made = Verdict.objects.create(run=run, author_name=str(v["author"])[:150], verdict=v["verdict"],
                                      note=str(v.get("note") or ""))
        Verdict.objects.filter(pk=made.pk).update(created_at=_dt(v.get("created_at")) or _now_dt())


def _import_texts(run: Run, texts: list[list[Any]]) -> list[int]:
    """Write the text table as program versions and return the new primary key of each entry.
    Every text is rebuilt and checked against its digest first; the rows are then inserted in
    bulk and linked to their bases in one ``executemany`` (the bases' keys exist only once
    inserted, and Django's ``bulk_update`` is quadratic-ish in its CASE expressions)."""
    table = api.BundleTexts(texts)
    links = [0] * len(texts)
    chain = [0] * len(texts)
    rows = []
    for i, (kind, base, keep, tail, sha) in enumerate(texts):
        text = table.text(i)
        if api.text_digest(text) != sha:
            raise api.BundleError(f"text {i}: its content does not match its sha256 (the bundle is damaged)")
        if base is not None:
            links[i] = links[base] + 1
            chain[i] = chain[base] + len(tail)
        rows.append(ProgramVersion(run=run, kind=str(kind)[:8], tail=tail, keep_chars=keep if base is not None else 0,
                                   sha256=str(sha)[:64], length=len(text), links=links[i], chain_chars=chain[i]))
    pks = [v.pk for v in ProgramVersion.objects.bulk_create(rows, batch_size=BATCH)]
    linked = [(pks[base], pks[i]) for i, (_k, base, _keep, _t, _s) in enumerate(texts) if base is not None]
    if linked:
        with connection.cursor() as cur:
            cur.executemany(f"UPDATE {ProgramVersion._meta.db_table} SET base_id = %s WHERE id = %s", linked)
    return pks


# --- helpers ---------------------------------------------------------------------------------
def _remap(data: Any, index: dict[int, int]) -> Any:
    """Storage refs ``{"$v": pk}`` -> bundle refs ``{"$v": i}``."""
    if isinstance(data, dict):
        if len(data) == 1 and "$v" in data:
            return {"$v": index[data["$v"]]}   # a KeyError here is a broken store, not a bundle
        return {k: _remap(v, index) for k, v in data.items()}
    if isinstance(data, list):
        return [_remap(v, index) for v in data]
    return data


def _remap_in(data: Any, ref: Any) -> Any:
    if isinstance(data, dict):
        if len(data) == 1 and "$v" in data:
            return {"$v": ref(data["$v"])}
        return {k: _remap_in(v, ref) for k, v in data.items()}
    if isinstance(data, list):
        return [_remap_in(v, ref) for v in data]
    return data


def _ts(t: Optional[datetime]) -> Optional[float]:
    return t.timestamp() if t is not None else None


def _dt(ts: Any) -> Optional[datetime]:
    try:
        return datetime.fromtimestamp(float(ts), tz=timezone.utc) if ts is not None else None
    except (TypeError, ValueError, OverflowError, OSError):
        raise api.BundleError(f"timestamp {ts!r} is not a number of seconds") from None


def _now() -> str:
    return _now_dt().isoformat()


def _now_dt() -> datetime:
    return datetime.now(timezone.utc)


def _uuid_or_none(s: Any) -> Optional[uuid.UUID]:
    try:
        return uuid.UUID(str(s))
    except ValueError:
        return None
