"""Persisting a run's events, and the rows derived from them, then broadcasting them.

The run's events arrive on the thread relaying its process (``service``), one call per event.
By default ("inline" mode) that thread also writes the events, in batches: a batch is written
when a step starts, at pauses and at the end of the run (so a step's row appears the moment it
starts and each step's events are one transaction), and a small flusher thread writes anything
left waiting longer than ``MAX_DELAY`` (effects before a long evaluation, streamed completion
text). A step's start waits for the steps after it while more of the run's events are already
waiting (``behind``): a server that fell behind a fast run catches up with fewer, bigger
transactions (``bench/step_latency.py``: p95 under 100 ms in 5 runs of 5, against 4 of 8
without). One transaction per batch holds the ``RunEvent`` rows plus the derived ``Step`` /
``ProgramVersion`` / ``Effect`` / ``Edit`` rows and the ``Run``'s status, pause, totals and
``last_seq``; after the commit the batch is rendered (``fragments.render_batch``: a marker per
event, then the whole state the batch leaves, read back from the database) and broadcast to
the channel-layer group ``run-<public_id>`` as one message. An event is therefore always in
the database before any client sees it, which is what lets a consumer fill a gap (a
reconnect, a dropped message) from the database. Writing in the run's thread avoids a thread
hand-off (a GIL hand-off) per event: measured on the 1,000-step bench, it cut the IDE's
overhead from about 16 s to about 10 s and the event -> browser p95 from ~110 ms to ~70 ms
against a writer thread (a mode since removed). "sync" mode writes each event at once (tests,
and rebuilding a run from its events).

The run's process appends executed effects to the run's effect journal before it goes on
(``spellide/spell/journal.py``), so a crash between an effect and its batch's commit cannot
make a resume execute it again.

Persisted event data is compacted: long program texts (prefixes, programs, paused texts,
edited texts, long effect arguments) are stored as ``ProgramVersion`` deltas and replaced by
``{"$v": id}``; ``load_events`` expands them again.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timezone
from typing import Any, Callable, Iterator, Optional

from django.contrib.auth import get_user_model
from django.db import connection, transaction

from spellide.spell.api import events as ev

from ..fragments import render_batch, render_failed
from ..models import MAIN_AGENT, Edit, Effect, ProgramVersion, Run, RunEvent, Step, empty_totals
from ..stepinfo import int_or_none, utf16_len
from .agent_rows import AgentRows
from .broadcast import broadcaster

log = logging.getLogger("spellide.runner")

BATCH_INLINE = 64
MAX_DELAY = 0.025    # seconds an event may wait for its batch (inline mode)
# events written at once (inline mode): a step's start, pauses and the end of the run
FLUSH_NOW = frozenset({ev.RUN_STARTED, ev.STEP_STARTED, ev.PAUSED, ev.RESUMED, ev.RUN_FINISHED,
                       ev.RUN_FAILED, ev.DIVERGED})


ABANDONED = "the run ended before this step finished (the root agent returned; its agent was abandoned)"


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)


# --- rendering ------------------------------------------------------------------------------
def render(run: Run, events: list[dict[str, Any]], closed_steps: list[int] = ()) -> list[list[Any]]:
    """``[[seq, html], ...]`` for a batch of committed events (``fragments.render_batch``). A
    rendering bug must not stop the stream or the run: the page is sent a notice per event
    instead (which keeps its seq markers, so the page asks for its state again)."""
    try:
        return [[seq, html] for seq, html in render_batch(run, events, closed_steps)]
    except Exception:
        log.exception("rendering events %s-%s of run %s failed", events[0].get("seq"),
                      events[-1].get("seq"), run.public_id)
        return [[int(e.get("seq") or 0), render_failed(e)] for e in events]


# --- loading --------------------------------------------------------------------------------
def expand(data: Any, texts: dict[int, str]) -> Any:
    if isinstance(data, dict):
        if len(data) == 1 and "$v" in data:
            return texts.get(data["$v"], "")
        return {k: expand(v, texts) for k, v in data.items()}
    if isinstance(data, list):
        return [expand(v, texts) for v in data]
    return data


def _refs(data: Any, out: set[int]) -> None:
    if isinstance(data, dict):
        if len(data) == 1 and "$v" in data:
            out.add(data["$v"])
            return
        for v in data.values():
            _refs(v, out)
    elif isinstance(data, list):
        for v in data:
            _refs(v, out)


def iter_events(run: Run, after_seq: int = 0, until_seq: Optional[int] = None,
                batch: int = 500, expand_texts: bool = True) -> Iterator[list[dict[str, Any]]]:
    """The run's persisted events after ``after_seq`` (up to ``until_seq``), in order, as
    event dicts ``{seq, type, ts, data}`` with texts expanded; yielded in batches."""
    last = after_seq
    while True:
        qs = RunEvent.objects.filter(run=run, seq__gt=last)
        if until_seq is not None:
            qs = qs.filter(seq__lte=until_seq)
        rows = list(qs.order_by("seq").values_list("seq", "type", "ts", "data")[:batch])
        if not rows:
            return
        out = []
        if expand_texts:
            ids: set[int] = set()
            for r in rows:
                _refs(r[3], ids)
            texts = ProgramVersion.texts(sorted(ids)) if ids else {}
        for seq, typ, ts, data in rows:
            out.append({"seq": seq, "type": typ, "ts": ts,
                        "data": expand(data, texts) if expand_texts else data})
        last = rows[-1][0]
        yield out
        if len(rows) < batch:
            return


def load_events(run: Run, after_seq: int = 0, until_seq: Optional[int] = None) -> list[dict[str, Any]]:
    return [e for chunk in iter_events(run, after_seq, until_seq) for e in chunk]


# --- persisting -----------------------------------------------------------------------------
class RunPersister:
    """Listener + writer for one execution (segment) of a run."""

    def __init__(self, run: Run, *, segment: int = 0, threaded: bool = True, broadcast: bool = True,
                 mode: Optional[str] = None):
        self.run = run
        self.segment = segment
        self.broadcast = broadcast
        self.totals = dict(empty_totals(), **(run.totals or {}))
        self.known_steps: set[int] = set(Step.objects.filter(run=run).values_list("step_id", flat=True))
        self.versions = ProgramVersion.index_of(run)   # (kind, sha256) -> (pk, links, chain_chars)
        self._new_steps: dict[int, dict[str, Any]] = {}
        self._step_updates: dict[int, dict[str, Any]] = {}
        self._effects: list[Effect] = []
        self._close_open: Optional[tuple[str, float]] = None   # the run ended: its open steps' error, time
        self._closed: list[int] = []
        # prefix/completion/program of the steps started and not finished (agents' steps
        # overlap), plus the latest step's after it finished (an edit without a pause reads it)
        self.step_texts: dict[int, dict[str, Any]] = {}
        self.agent_rows = AgentRows(run)   # agents, messages, receipts of a multi-agent run
        self.last_program: Optional[ProgramVersion] = (
            ProgramVersion.objects.filter(run=run, kind=ProgramVersion.KIND_PROGRAM).order_by("-id").first())
        self.last_args: Optional[ProgramVersion] = (
            ProgramVersion.objects.filter(run=run, kind=ProgramVersion.KIND_ARGS).order_by("-id").first())
        self.paused_version: Optional[ProgramVersion] = None
        self.users: dict[str, Any] = {}
        self.run_fields: dict[str, Any] = {}
        self.started_ts: dict[int, float] = {}   # steps started and not finished: their start
        self.paused_ts: dict[int, float] = {}    # steps paused now: since when (a step's time excludes pauses)
        self.error: Optional[BaseException] = None
        # whether more of the run's events already wait to be taken (set by whoever relays them)
        self.behind: Callable[[], bool] = lambda: False
        # "inline": written by the run's own thread, a batch per step (the default: no thread
        # hand-offs per event); "sync": one write per event.
        self.mode = mode or ("inline" if threaded else "sync")
        if self.mode not in ("inline", "sync"):
            raise ValueError(f"unknown persist mode {self.mode!r}")
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)   # the flusher waits on it for pending events
        self._pending: list[ev.Event] = []
        self._pending_since = 0.0
        self._flusher: Optional[threading.Thread] = None
        self._closing = threading.Event()

    # the listener the run's events go to (the thread relaying its process)
    def __call__(self, event: ev.Event) -> None:
        if self.mode == "inline":
            with self._lock:
                first = not self._pending
                if first:
                    self._pending_since = time.monotonic()
                self._pending.append(event)
                due = event.type in FLUSH_NOW or len(self._pending) >= BATCH_INLINE
                if due and event.type == ev.STEP_STARTED and self.behind():
                    # more of the run's events already wait: one transaction for them all
                    # (a query per batch instead of per step lets a server that fell behind
                    # catch up; the flusher's deadline still bounds the wait)
                    due = len(self._pending) >= BATCH_INLINE
                if due:
                    self._flush_locked()
                elif first:   # a new deadline: wake the flusher (later events share it)
                    if self._flusher is None:
                        self._flusher = threading.Thread(target=self._flush_late, daemon=True,
                                                         name=f"spellide-flush-{self.run.pk}")
                        self._flusher.start()
                    self._wake.notify()
            return
        self._write([event])

    def close(self, timeout: Optional[float] = None) -> None:
        """Write everything pending, then stop the flusher thread."""
        if self.mode == "inline":
            self._closing.set()
            with self._lock:
                self._wake.notify()
                self._flush_locked()
            if self._flusher is not None:
                self._flusher.join(timeout)
                self._flusher = None

    def _flush_locked(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        try:
            self._write(batch)
        except Exception as e:  # never stop the run for this
            log.exception("persisting events of run %s failed", self.run.public_id)
            self.error = e

    def _flush_late(self) -> None:
        """Writes events the run has not flushed within MAX_DELAY of the first of them
        (streamed completion text, effects before a long evaluation), so a viewer never waits
        for the end of a step to see them. It sleeps until an event is waiting, then until
        that event is due: no polling, and a streamed piece reaches the page ~MAX_DELAY late."""
        try:
            with self._lock:
                while not self._closing.is_set():
                    if not self._pending:
                        self._wake.wait()
                        continue
                    due = self._pending_since + MAX_DELAY - time.monotonic()
                    if due > 0:
                        self._wake.wait(due)
                        continue
                    self._flush_locked()
        finally:
            connection.close()

    # --- writing ----------------------------------------------------------------------------
    def _write(self, events: list[ev.Event]) -> None:
        full: list[dict[str, Any]] = []
        for attempt in range(5):
            saved = self._snapshot_state()
            try:
                with transaction.atomic():
                    rows: list[RunEvent] = []
                    full = []
                    self._new_steps, self._step_updates, self._effects = {}, {}, []
                    self._close_open, self._closed = None, []
                    self.agent_rows.begin()
                    for e in events:
                        data = self._apply(e)
                        rows.append(RunEvent(run=self.run, seq=e.seq, type=e.type, data=data,
                                             created_at=_dt(e.ts), ts=e.ts))
                        full.append(_live(e, data))
                    self._flush_rows()
                    RunEvent.objects.bulk_create(rows)
                    self.run_fields["last_seq"] = events[-1].seq
                    self.run_fields["totals"] = dict(self.totals)
                    self.run_fields["updated_at"] = _dt(time.time())
                    Run.objects.filter(pk=self.run.pk).update(**self.run_fields)
                break
            except Exception as e:
                self._restore_state(saved)
                if attempt < 4 and "locked" in str(e).lower():
                    time.sleep(0.05 * (attempt + 1))
                    continue
                raise
        for k, v in self.run_fields.items():
            setattr(self.run, k, v)
        self.run_fields = {}
        if self.broadcast and broadcaster.may_have_listeners(self.run.group_name):
            # one group message per batch: [[seq, html], ...] in order
            items = render(self.run, full, self._closed)
            broadcaster.send(self.run.group_name, {"type": "run.events", "events": items})

    def _flush_rows(self) -> None:
        """Write the step and effect rows a batch produced: one insert for new steps, one
        update per step already stored, one insert for effects."""
        if self._new_steps:
            Step.objects.bulk_create([Step(run=self.run, step_id=sid, **f) for sid, f in self._new_steps.items()])
        for sid, fields in self._step_updates.items():
            if fields:
                Step.objects.filter(run=self.run, step_id=sid).update(**fields)
        if self._effects:
            Effect.objects.bulk_create(self._effects)
        self.agent_rows.flush()
        if self._close_open is not None:
            # The run ended while steps were still open (stopped at a pause, a budget, an error
            # raised through a chain of steps): they end with it, in the same transaction as
            # the run's final event, so every page shows them ended the moment the run is.
            error, ts = self._close_open
            open_steps = Step.objects.filter(run=self.run, status__in=[Step.Status.RUNNING, Step.Status.PAUSED])
            self._closed = list(open_steps.values_list("step_id", flat=True))
            open_steps.filter(error__isnull=True).update(error=error)
            open_steps.update(status=Step.Status.FAILED, finished_at=_dt(ts))

    def _snapshot_state(self) -> dict[str, Any]:
        return {"totals": dict(self.totals), "known_steps": set(self.known_steps),
                "last_program": self.last_program, "last_args": self.last_args,
                "paused_version": self.paused_version, "run_fields": dict(self.run_fields),
                "versions": dict(self.versions), "started_ts": dict(self.started_ts),
                "paused_ts": dict(self.paused_ts), "agent_rows": self.agent_rows.snapshot()}

    def _restore_state(self, s: dict[str, Any]) -> None:
        self.totals = s["totals"]
        self.known_steps = s["known_steps"]
        self.last_program = s["last_program"]
        self.last_args = s["last_args"]
        self.paused_version = s["paused_version"]
        self.run_fields = s["run_fields"]
        self.versions = s["versions"]
        self.started_ts = s["started_ts"]
        self.paused_ts = s["paused_ts"]
        self.agent_rows.restore(s["agent_rows"])

    def _version(self, text: str, base: Optional[ProgramVersion],
                 kind: str = ProgramVersion.KIND_PROGRAM) -> ProgramVersion:
        return ProgramVersion.store(self.run, text, base=base, kind=kind, index=self.versions)

    def _store(self, text: str) -> ProgramVersion:
        pv = self._version(text, self.last_program)
        self.last_program = pv
        return pv

    def _user(self, name: Optional[str]) -> Any:
        if not name:
            return None
        if name not in self.users:
            self.users[name] = get_user_model().objects.filter(username=name).first()
        return self.users[name]

    def _step_fields(self, step: Optional[int]) -> Optional[dict[str, Any]]:
        """The pending field changes of a step in this batch (None: unknown step)."""
        if step is None:
            return None
        if step in self._new_steps:
            return self._new_steps[step]
        if step in self.known_steps:
            return self._step_updates.setdefault(step, {})
        return None

    def _step_update(self, step: Optional[int], **fields: Any) -> None:
        pending = self._step_fields(step)
        if pending is not None:
            pending.update(fields)

    def _apply(self, e: ev.Event) -> dict[str, Any]:
        """Derived rows for one event; returns the compacted data to persist."""
        d = dict(e.data)
        t = e.type
        rf = self.run_fields
        self.agent_rows.apply(t, d, e.ts, e.seq)
        if len(self.agent_rows.agents) != self.run.agent_count:
            rf["agent_count"] = len(self.agent_rows.agents)
        if t == ev.RUN_STARTED:
            rf.update(status=Run.Status.RUNNING, pause=None, error=None, error_kind=None)
        elif t == ev.STEP_STARTED:
            sid = d["step"]
            pv = self._store(d.get("prefix") or "")
            for done in [k for k, v in self.step_texts.items() if v.get("finished")]:
                del self.step_texts[done]
            self.step_texts[sid] = {"prefix": d.get("prefix") or "", "completion": "", "u16": 0,
                                    "program": None}
            fields = dict(parent=d.get("parent"), depth=d.get("depth") or 1, status=Step.Status.RUNNING,
                          prefix_version_id=pv.pk, program_version_id=None, completion="", value=None,
                          error=None, error_span=None, model=str(d.get("model") or "")[:200],
                          transport="", usage={}, started_at=_dt(e.ts), finished_at=None,
                          provenance=[], continued_by=None, segment=self.segment, recovered=False,
                          edit_trace=None, receipt_base_version_id=None, receipt_trace=None,
                          agent=str(d.get("agent") or MAIN_AGENT)[:100],
                          generation=int_or_none(d.get("generation")) or 1)
            if sid in self.known_steps and sid not in self._new_steps:
                self._step_updates[sid] = fields      # a replayed step: its row is rewritten
            else:
                self._new_steps[sid] = fields
                self.known_steps.add(sid)
            self.totals["steps"] = len(self.known_steps)
            self.started_ts[sid] = e.ts
            d["prefix"] = {"$v": pv.pk}
            d["steps_total"] = self.totals["steps"]   # what the page's step count shows
        elif t == ev.COMPLETION_DELTA:
            # the text so far is kept on the step, so a page that opens the step mid-stream
            # shows it from the start (a reset: the provider retried and streams anew)
            # ``at`` (the text's length before this piece, as the browser counts it) lets a
            # page place each piece exactly once, whenever it loaded the step
            sid = d.get("step")
            cur = self.step_texts.get(sid)
            if cur is not None:
                if d.get("reset"):
                    cur["completion"], cur["u16"] = "", 0
                piece = str(d.get("text") or "")
                d["at"] = cur["u16"]
                cur["completion"] += piece
                cur["u16"] = d["at"] + utf16_len(piece)
                self._step_update(sid, completion=cur["completion"])
        elif t == ev.COMPLETION:
            sid = d["step"]
            cur = self.step_texts.get(sid)
            if cur is not None:
                cur["completion"] = d.get("completion") or ""
            self._step_update(sid, completion=d.get("completion") or "", usage=d.get("usage") or {},
                              model=str(d.get("model") or "")[:200], transport=str(d.get("transport") or "")[:32])
        elif t == ev.PROGRAM:
            sid = d["step"]
            pv = self._store(d.get("program") or "")
            cur = self.step_texts.get(sid)
            trace = d.pop("trace", None)
            before = cur.get("program_version") if cur is not None else None
            if before is not None and _by_receipt(trace):
                # a wait in this step resumed with messages: the step keeps its own turn's
                # trace and provenance, and the rewrite is kept beside them
                self._step_update(sid, program_version_id=pv.pk, receipt_base_version_id=before,
                                  receipt_trace=trace)
            else:
                self._step_update(sid, program_version_id=pv.pk, provenance=d.get("provenance") or [],
                                  edit_trace=trace, receipt_base_version_id=None, receipt_trace=None)
            if cur is not None:
                cur["program"] = d.get("program")
                cur["program_version"] = pv.pk
            d["program"] = {"$v": pv.pk}
        elif t == ev.EFFECT:
            d["effect"] = self._effect(e, dict(d.get("effect") or {}))
        elif t == ev.STEP_FINISHED:
            sid = d["step"]
            if d.get("error"):
                status = Step.Status.FAILED
            elif d.get("continued_by") is not None:
                status = Step.Status.CONTINUED
            else:
                status = Step.Status.COMPLETED
            if sid in self.started_ts:
                d["duration_ms"] = round((e.ts - self.started_ts.pop(sid)) * 1000, 1)
            if sid in self.step_texts:
                self.step_texts[sid]["finished"] = True
            self._step_update(sid, status=status, value=d.get("value"), error=d.get("error"),
                              error_span=d.get("error_span"), continued_by=d.get("continued_by"),
                              finished_at=_dt(e.ts), recovered=bool(d.get("recovered")))
        elif t == ev.PAUSED:
            text = d.get("text")
            pause = dict(d, seq=e.seq)
            if isinstance(text, str):
                pv = self._version(text, self.last_program)
                self.paused_version = pv
                d["text"] = {"$v": pv.pk}
                pause["text_version"] = pv.pk
            else:
                self.paused_version = None
            rf.update(status=Run.Status.PAUSED, pause=pause)
            if d.get("step") is not None:
                self.paused_ts.setdefault(d["step"], e.ts)
            self._step_update(d.get("step"), status=Step.Status.PAUSED)
        elif t == ev.RESUMED:
            since = self.paused_ts.pop(d.get("step"), None)
            if since is not None and d.get("step") in self.started_ts:
                self.started_ts[d["step"]] += e.ts - since   # the pause is not the step's time
            if d.get("action") != "stop":
                rf.update(status=Run.Status.RUNNING, pause=None)
                self._step_update(d.get("step"), status=Step.Status.RUNNING)
            if d.get("edited") and isinstance(d.get("text"), str):
                after = self._store(d["text"])
                before = self._before_version(d)
                Edit.objects.create(run=self.run, step_id=d.get("step") if d.get("step") is not None else -1,
                                    point=str(d.get("point") or ""), before_version=before,
                                    after_version=after, author=self._user(d.get("author")),
                                    author_name=str(d.get("author") or "")[:150],
                                    action=str(d.get("action") or "")[:32], seq=e.seq)
                d["text"] = {"$v": after.pk}
            self.paused_version = None
        elif t == ev.RUN_FINISHED:
            rf.update(status=Run.Status.FINISHED, pause=None, value=d.get("value"), error=None)
            # other agents' steps still open end with the run (the root returned: the run's
            # coordinator closed and abandoned them), in this transaction, like a failed run's
            self._close_open = (ABANDONED, e.ts)
            self.started_ts.clear()
        elif t == ev.RUN_FAILED:
            kind = d.get("kind")
            status = {"stopped": Run.Status.STOPPED, "budget-exceeded": Run.Status.STOPPED,
                      "interrupted": Run.Status.INTERRUPTED}.get(kind, Run.Status.FAILED)
            rf.update(status=status, pause=None, error=d.get("error"), error_kind=kind)
            self._close_open = (str(d.get("error") or "the run ended"), e.ts)
            self.started_ts.clear()
        return d

    def _before_version(self, d: dict[str, Any]) -> ProgramVersion:
        if self.paused_version is not None:
            return self.paused_version
        # an edit applied without a pause (a fork's edit, a replayed edit): the text it replaced
        sid = d.get("step")
        cur = self.step_texts.get(sid) or {}
        point = d.get("point")
        if point == "before_model":
            text = cur.get("prefix") or ""
        elif point == "after_completion":
            text = (cur.get("prefix") or "") + (cur.get("completion") or "")
        else:
            text = cur.get("program") or (cur.get("prefix") or "") + (cur.get("completion") or "")
        return self._version(text, self.last_program)

    def _effect(self, e: ev.Event, eff: dict[str, Any]) -> dict[str, Any]:
        args = eff.get("args") or ""
        args_version = None
        preview = args
        if len(args) > Effect.INLINE_ARGS:
            args_version = self._version(args, self.last_args, ProgramVersion.KIND_ARGS)
            self.last_args = args_version
            preview = args[:500] + f"… ({len(args)} chars)"
            eff["args"] = {"$v": args_version.pk}
        status = eff.get("status") or "live"
        self._effects.append(Effect(
            run=self.run, step_id=_step_of(eff, e.data),
            ordinal=int(eff.get("ordinal") or 0), name=str(eff.get("name") or "")[:200], args=preview,
            args_digest=str(eff.get("args_digest") or "")[:64], result=eff.get("result"), status=status,
            reason=eff.get("reason") or "", started_at=eff.get("started"), duration_ms=eff.get("duration_ms"),
            usage=eff.get("usage"), seq=e.seq, segment=self.segment, error=eff.get("error"),
            error_kind=eff.get("error_kind"), saved_ms=float(eff.get("saved_ms") or 0.0),
            args_version=args_version))
        usage = eff.get("usage") or {}
        tok = int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)
        cost = float(usage.get("cost") or 0.0)
        tt = self.totals
        if status == "hit":
            tt["effects_reused"] += 1
            tt["tokens_saved"] += tok[0] + tok[1]
            tt["cost_saved"] = round(tt["cost_saved"] + cost, 8)
            tt["time_saved_ms"] = round(tt["time_saved_ms"] + float(eff.get("saved_ms") or 0.0), 3)
        elif status in ("live", "miss") and not eff.get("internal"):
            # a coordinator transition (``internal``) is executed again by every replay and
            # is not the world's: the core does not count it as executed either
            tt["effects_executed"] += 1
            tt["input_tokens"] += tok[0]
            tt["output_tokens"] += tok[1]
            tt["cost"] = round(tt["cost"] + cost, 8)
        return eff

    # synthetic events from the service (e.g. a failure before the machine started)
    def emit_synthetic(self, type_: str, seq: int, **data: Any) -> ev.Event:
        event = ev.Event(seq, type_, data)
        self(event)
        return event


def _live(e: ev.Event, stored: dict[str, Any]) -> dict[str, Any]:
    """The event as the page is sent it: its full texts (the stored data holds references to
    them) plus what persisting derived (a piece's offset, the step count, a step's duration)."""
    out = e.to_json()
    data = dict(out.get("data") or {})
    for k, v in stored.items():
        data.setdefault(k, v)
    out["data"] = data
    return out


def _by_receipt(trace: Any) -> bool:
    """Whether the core's edit trace reports a message receipt's rewrite."""
    if not isinstance(trace, dict):
        return False
    return any(isinstance(r, dict) and r.get("by") == "receipt"
               for sec in trace.get("sections") or () for r in sec.get("rows") or ())


def _step_of(eff: dict[str, Any], data: dict[str, Any]) -> int:
    for v in (eff.get("step"), data.get("step")):
        if v is not None:
            return int(v)
    return -1
