"""A trace directory from the Clojure reference (or one ``spellide run --trace-dir`` wrote),
imported as a run that browses like any other: steps, programs, diffs, effects.

The core reads the directory (``api.import_trace_dir``: ``trace.edn`` plus a program file per
node); this module turns the steps it reports into the same events a live run emits and writes
them through ``RunPersister``, the one path by which events become rows, so the imported run is
stored exactly as a recorded one.

A multi-agent run's trace (one spellide wrote: each node names its agent and lifecycle) is
imported with the multi-agent events a live run emits, so the run page shows its agents: an
``agent`` event for the root at the start and when another agent (or a new lifecycle of it)
makes its first call, under the step that spawned it; each agent's final status (from the
run's ``agents`` list) after its last call, the root's and those still active at the run's end;
a ``message`` and a ``receipt`` for every message a prompt received (read back from the
receipt forms in the prompts: ``api.trace_message_receipts``; the ids are numbered here, the
trace keeps none). A reference trace names no agents (its steps all belong to ``:main``:
``api.import_trace_dir``), so it imports as a single-agent run. Either kind's coordinator
warnings become ``warning`` events at their timestamps (and stay in ``origin``, as before).

Uploads arrive as a zip or tar of the directory and are unpacked with limits (size, file
count, plain files only, no path leaving the folder).
"""

from __future__ import annotations

import io
import shutil
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any, Optional

from spellide.spell import api
from spellide.web.models import Run
from spellide.web.runner.persist import RunPersister

MAX_FILES = 20_000
MAX_BYTES = 512 * 1024 * 1024      # unpacked
MAX_UPLOAD = 256 * 1024 * 1024


class TraceRefused(ValueError):
    """An archive or directory that is not an importable trace; the message says why."""


MAIN = ":main"


def import_trace(directory: str | Path, owner: Any, title: str = "") -> Run:
    """The trace directory as a new run of ``owner``, stored through ``RunPersister``; raises
    ``TraceRefused`` (with the reason) for a directory that is not an importable trace."""
    try:
        result = api.import_trace_dir(directory)
    except (FileNotFoundError, NotADirectoryError, ValueError) as e:
        raise TraceRefused(str(e)) from None
    steps = sorted(result.get("steps") or [], key=lambda s: s["id"])
    origin = "reference trace" if result.get("source") == "reference-trace" else "spellide trace"
    run = Run.objects.create(owner=owner, title=(title or f"{origin}: {Path(directory).name}")[:200],
                             status=Run.Status.RUNNING, config={"prompt": (steps[0].get("prefix") if steps else None),
                                                                "model": "trace", "breakpoints": {}},
                             origin={"trace": origin, "directory": Path(directory).name,
                                     "warnings": result.get("warnings") or []})
    persister = RunPersister(run, threaded=False, broadcast=False)
    seq = 0

    def emit(type_: str, ts: Optional[float], **data: Any) -> None:
        nonlocal seq
        seq += 1
        persister(api.Event(seq, type_, data, ts if ts is not None else time.time()))

    t0 = steps[0].get("started") if steps and steps[0].get("started") else time.time()
    emit(api.RUN_STARTED, t0, config=run.config, model_settings={"model": "trace"})
    agents = _AgentEvents(result, steps, emit)
    agents.start(t0)
    for s in steps:
        sid = s["id"]
        agents.before_step(s)
        emit(api.STEP_STARTED, s.get("started"), step=sid, parent=s.get("parent"), depth=s.get("depth") or 1,
             prefix=s.get("prefix") or "", model="trace", agent=s.get("agent") or MAIN,
             generation=s.get("generation") or 1)
        emit(api.COMPLETION, s.get("started"), step=sid, completion=s.get("completion") or "",
             usage=s.get("usage") or {}, model="trace", transport="")
        if s.get("program") is not None:
            emit(api.PROGRAM, s.get("started"), step=sid, program=s["program"], provenance=[])
        for i, eff in enumerate(s.get("effects") or []):
            if isinstance(eff, dict):
                emit(api.EFFECT, s.get("finished"), step=sid, effect=dict({"step": sid, "ordinal": i}, **eff))
        # a trace says each node's parent and value, not which child continued it in tail
        # position: nested calls show under their parent, each with its own value
        emit(api.STEP_FINISHED, s.get("finished") or s.get("started"), step=sid, value=s.get("value"),
             error=s.get("error"), continued_by=None)
        agents.after_step(s)
    end = steps[-1].get("finished") if steps else None
    agents.at_end(end)
    if result.get("error"):
        emit(api.RUN_FAILED, end, error=result["error"], kind=result.get("error_kind"))
    else:
        emit(api.RUN_FINISHED, end, value=result.get("value"))
    persister.close()
    if persister.error is not None:
        raise TraceRefused(f"the trace could not be stored: {persister.error}")
    run.refresh_from_db()
    return run


class _AgentEvents:
    """The multi-agent events of an imported run, emitted around its steps (module docstring).
    A run whose steps all belong to ``:main`` generation 1 with no other agent listed is a
    single-agent run, and a live single-agent run emits none of these."""

    def __init__(self, result: dict, steps: list[dict], emit: Any):
        self.emit = emit
        listed = [a for a in result.get("agents") or [] if isinstance(a, dict) and a.get("handle")]
        self.listed = {str(a["handle"]): a for a in listed}
        self.multi = any((s.get("agent") or MAIN) != MAIN or (s.get("generation") or 1) != 1 for s in steps) \
            or any(h != MAIN for h in self.listed)
        self.lifecycle: dict[str, int] = {}      # agent -> the generation of its last step
        self.receipts: dict[int, list[dict]] = {}
        self.warnings = [w for w in result.get("warnings") or [] if isinstance(w, dict)]
        if self.multi:
            for r in api.trace_message_receipts(steps):
                self.receipts.setdefault(r["step"], []).append(r)
        self.finished = {s["id"]: s.get("finished") or s.get("started") for s in steps}
        self.last_step = {(s.get("agent") or MAIN): s["id"] for s in steps}   # steps are in id order
        self.ended: set[str] = set()
        self.next_message = 0

    def start(self, t0: float) -> None:
        """The root agent runs from the start of the run (its first call may come after the
        calls of agents its init program spawned)."""
        if self.multi:
            self.lifecycle[MAIN] = 1
            self.emit(api.events.AGENT, t0, agent=MAIN, parent=None, status="running", generation=1, step=None)

    def before_step(self, s: dict) -> None:
        self._warnings_until(s.get("started"))
        if not self.multi:
            return
        agent, generation = s.get("agent") or MAIN, s.get("generation") or 1
        if self.lifecycle.get(agent) != generation:
            first = agent not in self.lifecycle
            self.lifecycle[agent] = generation
            parent = self.listed.get(agent, {}).get("parent", None if agent == MAIN else MAIN)
            # an agent's first call hangs under the step that spawned it (spell-agents.md 9)
            self.emit(api.events.AGENT, s.get("started"), agent=agent, parent=parent, status="running",
                      generation=generation, step=s.get("parent") if first else None)
        batch = self.receipts.get(s["id"], [])
        for r in batch:
            self.next_message += 1
            r["id"] = self.next_message
            # sent when the sender's step ended at the latest, and before it was received
            sent = self.finished.get(r["sender_step"]) if r["sender_step"] is not None else None
            received = s.get("started")
            at = min(sent, received) if sent and received else (sent or received)
            self.emit(api.events.MESSAGE, at, id=r["id"], kind=r["kind"], sender=r["sender"],
                      targets=[agent], edge=r["edge"], step=r["sender_step"],
                      **({"body": r["body"]} if r["body"] is not None else {}))
        by_site: dict[str, list[dict]] = {}
        for r in batch:
            by_site.setdefault(r["site"], []).append(r)
        for site, rs in by_site.items():
            self.emit(api.events.RECEIPT, s.get("started"), agent=agent, step=s["id"], site=site,
                      messages=[{"id": r["id"], "name": r["name"]} for r in rs])

    def after_step(self, s: dict) -> None:
        """An agent that ended (finished or failed) did so with its last call: its final
        status is shown from there, not from the end of the run."""
        agent = s.get("agent") or MAIN
        if self.multi and self.last_step.get(agent) == s["id"] and agent != MAIN:
            a = self.listed.get(agent, {})
            if a.get("status") in ("finished", "failed"):
                self._final(agent, a, self.finished.get(s["id"]))

    def at_end(self, end: Optional[float]) -> None:
        self._warnings_until(None)
        if not self.multi:
            return
        for agent, a in self.listed.items():
            if agent not in self.ended and a.get("status") in api.events.AGENT_STATUSES:
                self._final(agent, a, end)

    def _final(self, agent: str, a: dict, ts: Optional[float]) -> None:
        self.ended.add(agent)
        self.emit(api.events.AGENT, ts, agent=agent, parent=a.get("parent"), status=a["status"],
                  generation=a.get("generation") or self.lifecycle.get(agent) or 1, step=None)

    def _warnings_until(self, ts: Optional[float]) -> None:
        """The warnings raised before ``ts`` (all that are left when None), in time order."""
        while self.warnings:
            w = self.warnings[0]
            at = w.get("timestamp_ms") / 1000 if isinstance(w.get("timestamp_ms"), (int, float)) else None
            if ts is not None and (at is None or at > ts):
                return
            self.warnings.pop(0)
            self.emit(api.events.WARNING, at, message=str(w.get("message") or ""), data=w.get("data"))


def import_archive(raw: bytes, name: str, owner: Any, title: str = "") -> Run:
    """An uploaded zip or tar (optionally compressed) of a trace directory."""
    if len(raw) > MAX_UPLOAD:
        raise TraceRefused(f"the archive is {len(raw):,} bytes; the limit is {MAX_UPLOAD:,}")
    tmp = Path(tempfile.mkdtemp(prefix="spellide-trace-"))
    try:
        _unpack(raw, name, tmp)
        found = sorted(p.parent for p in tmp.rglob("trace.edn") if len(p.relative_to(tmp).parts) <= 3)
        if not found:
            raise TraceRefused(f"{name}: no trace.edn in the archive (zip or tar a trace directory)")
        return import_trace(found[0], owner, title or f"trace: {Path(name).name}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _safe(member: str) -> PurePosixPath:
    p = PurePosixPath(member)
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise TraceRefused(f"archive member {member!r} would land outside the trace folder")
    return p


def _unpack(raw: bytes, name: str, dest: Path) -> None:
    files = total = 0

    def write(member: str, data: bytes) -> None:
        nonlocal files, total
        files += 1
        total += len(data)
        if files > MAX_FILES or total > MAX_BYTES:
            raise TraceRefused(f"the archive holds more than {MAX_FILES:,} files or {MAX_BYTES:,} bytes unpacked")
        target = dest.joinpath(*_safe(member).parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    if zipfile.is_zipfile(io.BytesIO(raw)):
        with zipfile.ZipFile(io.BytesIO(raw)) as z:
            for info in z.infolist():
                if info.is_dir():
                    continue
                if info.file_size > MAX_BYTES:
                    raise TraceRefused(f"archive member {info.filename!r} is too large")
                if (info.external_attr >> 16) & 0o170000 == 0o120000:
                    continue                   # a symlink: never followed
                write(info.filename, z.read(info))
        return
    try:
        tf = tarfile.open(fileobj=io.BytesIO(raw), mode="r:*")
    except tarfile.TarError:
        raise TraceRefused(f"{name}: not a zip or tar archive") from None
    with tf:
        for m in tf:
            if not m.isfile():
                continue                       # directories are made as needed; links skipped
            if m.size > MAX_BYTES:
                raise TraceRefused(f"archive member {m.name!r} is too large")
            f = tf.extractfile(m)
            write(m.name, f.read() if f else b"")
