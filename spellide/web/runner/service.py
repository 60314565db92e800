"""The run service: start, steer, fork and resume runs of the Spell turn machine.

Each execution of a run is a child process of this server running the turn machine
(``spellide.spell.process.ProcessRun``: it has a core of its own instead of sharing this
process's interpreter lock with the event writer, the websocket loop and page requests), and a
thread here relaying it: its events go to a ``RunPersister`` (database, then channel layer),
its pause points to the run's ``IdeController``, which controls reach through the in-process
registry of active runs. A child that dies leaves its run interrupted, resumable like after a
server restart.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from django.conf import settings
from django.db import close_old_connections, connection

from spellide.spell import api
from spellide.spell.api import ProcessRun, RunConfig, RunProcessDied, RunProcessFailed, events as ev

from ..models import ACTIVE_STATUSES, MAIN_AGENT, Agent, Run, Step
from .controller import ActResult, IdeController, check_parse
from .journal import journal_path, read_journal, remove_journal
from .persist import RunPersister, load_events
from .pids import pid_alive

log = logging.getLogger("spellide.runner")

PROCESS_ID = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
# Stop always wins: a run that has not reached a pause point this long after Stop (it is inside
# one long builtin or loop) has its process ended; one that reached a pause point gets longer
# to end by itself (storing its last events).
STOP_GRACE = 2.0
STOP_LATE = 10.0


@dataclass
class ActiveRun:
    run_pk: int
    public_id: str
    controller: IdeController
    persister: RunPersister
    thread: Optional[threading.Thread] = None
    execution: Optional[ProcessRun] = None
    done: threading.Event = field(default_factory=threading.Event)


_registry: dict[str, ActiveRun] = {}
_registry_lock = threading.Lock()


class RunRefused(Exception):
    """A run could not be started as asked (bad fork step, unparseable fork edit...)."""

    def __init__(self, message: str, result: Optional[ActResult] = None):
        super().__init__(message)
        self.message = message
        self.result = result


# --- registry -------------------------------------------------------------------------------
def get_active(run: Run | str) -> Optional[ActiveRun]:
    key = str(run.public_id if isinstance(run, Run) else run)
    with _registry_lock:
        return _registry.get(key)


def active_runs() -> list[ActiveRun]:
    with _registry_lock:
        return list(_registry.values())


def wait_for(run: Run | str, timeout: Optional[float] = None) -> bool:
    """Block until the run's current execution ended (True) or the timeout passed."""
    active = get_active(run)
    if active is None:
        from . import scale  # scale mode: a run worker executes it (scale.py)
        return scale.wait_for_remote(run, timeout) if scale.dispatching() else True
    return active.done.wait(timeout)


# --- workspaces -----------------------------------------------------------------------------
def workspace_path(public_id: Any) -> Path:
    return Path(settings.WORKSPACES_DIR) / str(public_id)


def make_workspace(public_id: Any, seed: Optional[Path] = None) -> str:
    """A per-run io/ directory, optionally seeded with a copy of ``seed`` (symlinks skipped)."""
    path = workspace_path(public_id)
    path.mkdir(parents=True, exist_ok=True)
    if seed is not None and Path(seed).is_dir():
        _copy_tree(Path(seed), path)
    return str(path)


def _copy_tree(src: Path, dst: Path) -> None:
    for item in src.iterdir():
        if item.is_symlink():
            continue
        target = dst / item.name
        if item.is_dir():
            target.mkdir(exist_ok=True)
            _copy_tree(item, target)
        elif item.is_file():
            shutil.copyfile(item, target)


# --- starting -------------------------------------------------------------------------------
def start_run(owner: Any, config: RunConfig, title: str = "", parent_run: Optional[Run] = None,
              fork_step: Optional[int] = None, fork_edit: Optional[dict[str, Any] | str] = None, *,
              demo: Optional[str] = None, record: Any = None, public_id: Optional[uuid.UUID] = None) -> Run:
    """Create the run's row and start executing it (``_launch``).

    With ``parent_run`` (a fork), the parent's record (rebuilt from its persisted events) is
    replayed from the effect cache through ``fork_step`` and the run goes on live after it;
    ``fork_edit`` (``{"text", "point", "author"}``, or a program text) is applied at the fork
    step's pause point (``after_completion`` by default, ``before_model`` for a prefix edit).
    """
    from spellide.spell.api import RecordedEdit

    if parent_run is not None:
        if record is None:
            record = record_of(parent_run)
        if config.cache_mode == "live":
            config.cache_mode = "replay"
        if fork_step is not None and not any(s.get("id") == fork_step for s in record.steps):
            raise RunRefused(f"the parent run has no step {fork_step}")
    if fork_edit is not None:
        if fork_step is None:
            raise RunRefused("an edit needs the step it applies to")
        if isinstance(fork_edit, str):
            fork_edit = {"text": fork_edit}
        point = fork_edit.get("point") or api.AFTER_COMPLETION
        if point not in (api.BEFORE_MODEL, api.AFTER_COMPLETION):
            raise RunRefused(f"a fork edit applies before the model call or after the completion, not {point!r}")
        text = fork_edit.get("text")
        if not isinstance(text, str):
            raise RunRefused("the fork edit has no text")
        refused = check_parse(point, text)
        if refused is not None:
            raise RunRefused(f"the edit does not parse: {refused.error} at {refused.line}:{refused.col}", refused)
        record.edits.append(RecordedEdit(fork_step, point, text, fork_edit.get("author")
                                         or getattr(owner, "username", None), time.time()))
    run = Run.objects.create(
        public_id=public_id or uuid.uuid4(), owner=owner, title=(title or "")[:200],
        status=Run.Status.QUEUED, config=config.to_json(), parent_run=parent_run, fork_step=fork_step,
        demo=demo, worker=PROCESS_ID)
    _launch(run, config, record=record, fork_at=fork_step if parent_run is not None else None,
            start_seq=0, segment=0)
    return run


def record_of(run: Run) -> Any:
    """The run's record, rebuilt from its persisted events."""
    from spellide.spell.api import Record
    return Record.from_events(load_events(run))


def fork_run(parent: Run, user: Any, step: int, *, text: Optional[str] = None,
             point: str = api.AFTER_COMPLETION, title: Optional[str] = None) -> Run:
    config = RunConfig.from_json(parent.config)
    config.breakpoints = api.Breakpoints.from_json((parent.config or {}).get("breakpoints"))
    public_id = uuid.uuid4()
    if config.workspace is not None:
        # The fork gets its own workspace, a copy of the parent's as it is now (files the
        # parent wrote after the fork step are included: workspaces are not versioned).
        src = Path(config.workspace)
        config.workspace = make_workspace(public_id, src if src.is_dir() else None)
    edit = None if text is None else {"text": text, "point": point, "author": getattr(user, "username", None)}
    return start_run(user, config, title or f"{parent.title or 'run'} · fork at step {step}",
                     parent_run=parent, fork_step=step, fork_edit=edit, public_id=public_id,
                     demo=parent.demo)


def resume_interrupted(run: Run) -> Run:
    """Resume a run a server restart interrupted, on the same row: its record (rebuilt from
    the persisted events) is replayed from the effect cache, so no recorded effect runs
    again, and the run goes on live where the record ends. Event numbering continues."""
    from spellide.spell.api import Record

    if run.status != Run.Status.INTERRUPTED:
        raise RunRefused(f"only an interrupted run can be resumed (this one is {run.status})")
    if get_active(run) is not None:
        raise RunRefused("the run is already executing")
    # claim it (two requests racing to resume: one wins)
    if not Run.objects.filter(pk=run.pk, status=Run.Status.INTERRUPTED).update(
            status=Run.Status.QUEUED, worker=PROCESS_ID):
        raise RunRefused("the run is already being resumed")
    try:
        run.refresh_from_db()
        events = load_events(run)
        start_seq = run.last_seq
        # effects that ran but whose events never reached the database (the process died
        # first): stored now as the run's next events, so the numbering has no gap (their
        # journal numbers may lie past events that were lost with them, or be taken by the
        # event that said the run was interrupted)
        stored = {e["seq"] for e in events if e["type"] == ev.EFFECT}
        lost = sorted((j for j in read_journal(run.public_id)
                       if j.get("segment") == run.segment and int(j.get("seq") or 0) not in stored),
                      key=lambda j: int(j.get("seq") or 0))
        if lost:
            events += _store_lost_effects(run, lost)
            start_seq = events[-1]["seq"]
        record = Record.from_events(events)
        config = RunConfig.from_json(run.config)
        if config.cache_mode == "live":
            config.cache_mode = "replay"
        run.refresh_from_db()
        run.segment += 1
        run.status = Run.Status.QUEUED
        run.worker = PROCESS_ID
        run.pause = None
        run.error = None
        run.last_seq = start_seq
        run.save(update_fields=["segment", "status", "worker", "pause", "error", "last_seq", "updated_at"])
    except BaseException:
        Run.objects.filter(pk=run.pk).update(status=Run.Status.INTERRUPTED, worker="")
        raise
    _launch(run, config, record=record, fork_at=None, start_seq=start_seq, segment=run.segment)
    return run


def _store_lost_effects(run: Run, lost: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Journal entries as effect events numbered on from the run's last event; returns them."""
    writer = RunPersister(run, segment=run.segment, threaded=False)
    out = []
    try:
        for seq, j in enumerate(lost, start=run.last_seq + 1):
            effect = dict(j["effect"])
            effect["reason"] = effect.get("reason") or "recovered from the effect journal (arguments not recorded)"
            data = {"step": effect.get("step"), "effect": effect}
            writer.emit_synthetic(ev.EFFECT, seq, **data)
            out.append({"seq": seq, "type": ev.EFFECT, "data": data})
    finally:
        writer.close()
    return out


def _launch(run: Run, config: RunConfig, *, record: Any, fork_at: Optional[int], start_seq: int,
            segment: int) -> ActiveRun:
    from . import scale  # scale mode: hand the execution to a run worker (scale.py, worker.py)
    if scale.dispatching():
        return scale.dispatch(run, config, record=record, fork_at=fork_at, start_seq=start_seq,
                              segment=segment)
    controller = IdeController()
    persister = RunPersister(run, segment=segment)
    active = ActiveRun(run.pk, str(run.public_id), controller, persister)
    with _registry_lock:
        _registry[active.public_id] = active
    controller.on_stop(lambda: threading.Thread(target=_end_if_stuck, args=(active,), daemon=True,
                                                name=f"spell-run-stop-{run.public_id}").start())

    def target() -> None:
        execution = ProcessRun(config, listeners=[persister], controller=controller, record=record,
                               fork_at=fork_at, start_seq=start_seq, journal_path=journal_path(run.public_id),
                               segment=segment, stack_mb=settings.SPELLIDE_RUN_STACK_MB,
                               recursion=settings.SPELLIDE_RECURSION_LIMIT)
        active.execution = execution
        persister.behind = execution.more_waiting
        interrupted = False
        try:
            execution.execute()
        except RunProcessDied as e:
            if execution.killed:   # Stop ended it (_end_if_stuck)
                _stopped_by_kill(run, persister, execution, segment)
            else:
                # the run can go on from its record (and journal): resumable, like after a restart
                log.error("run %s: %s", run.public_id, e)
                interrupted = True
                persister.emit_synthetic(ev.RUN_FAILED, execution.last_seq + 1, kind="interrupted",
                                         error=f"{e}; resume it to continue from its record.", span=None)
        except BaseException as e:  # never crash the server for a run
            kind = "internal"
            if isinstance(e, RunProcessFailed):
                if e.kind == "internal":
                    log.error("run %s crashed: %s\n%s", run.public_id, e.message, e.detail)
                kind, message = e.kind, e.message
            else:
                log.exception("run %s crashed", run.public_id)
                message = f"internal error: {type(e).__name__}: {e}"
            persister.emit_synthetic(ev.RUN_FAILED, execution.last_seq + 1, error=message, kind=kind,
                                     span=None)
        finally:
            controller.close()
            persister.close()
            try:
                _finalize(run, persister, keep_journal=interrupted)
            except Exception:
                log.exception("finalizing run %s failed", run.public_id)
            with _registry_lock:
                if _registry.get(active.public_id) is active:
                    del _registry[active.public_id]
            connection.close()
            active.done.set()

    thread = threading.Thread(target=target, name=f"spell-run-{run.public_id}", daemon=True)
    active.thread = thread
    thread.start()
    return active


def _end_if_stuck(active: ActiveRun) -> None:
    """After Stop: end the run's process if the run does not end by itself in time."""
    if active.done.wait(STOP_GRACE):
        return
    if active.controller.stop_answered and active.done.wait(STOP_LATE):
        return
    execution = active.execution
    if execution is not None:
        log.info("run %s: no pause point %.0f s after Stop: ending its process", active.public_id,
                 STOP_GRACE)
        execution.kill()


def _stopped_by_kill(run: Run, persister: RunPersister, execution: ProcessRun, segment: int) -> None:
    """The run's process was ended after Stop: the effects it journaled but whose events it had
    not sent yet become events of the run (so a fork replays them instead of running them
    again), then the run ends stopped."""
    seq = execution.last_seq
    for j in read_journal(run.public_id):
        if j.get("segment") == segment and int(j.get("seq") or 0) > seq:
            seq = int(j["seq"])
            persister.emit_synthetic(ev.EFFECT, seq, step=j["effect"].get("step"), effect=j["effect"])
    persister.emit_synthetic(ev.RUN_FAILED, seq + 1, kind="stopped", span=None,
                             error=f"Run stopped by the user (it reached no pause point within "
                                   f"{STOP_GRACE:g} s of Stop, so its process was ended)")


def _finalize(run: Run, persister: RunPersister, *, keep_journal: bool = False) -> None:
    fields: dict[str, Any] = {"worker": ""}
    current = Run.objects.filter(pk=run.pk).values_list("status", flat=True).first()
    if persister.error is not None:
        fields.update(status=Run.Status.FAILED, error=f"events could not be stored: {persister.error}")
    elif current in ACTIVE_STATUSES:
        # the machine ended without a final event (should not happen): do not leave it "running"
        fields.update(status=Run.Status.FAILED, error=run.error or "the run ended unexpectedly")
    Run.objects.filter(pk=run.pk).update(**fields)
    Step.objects.filter(run=run, status__in=[Step.Status.RUNNING, Step.Status.PAUSED]).update(
        status=Step.Status.FAILED)
    if persister.error is None and not keep_journal:
        remove_journal(run.public_id)   # every event is in the database now


# --- controls -------------------------------------------------------------------------------
def agent_refusal(run: Run, agent: Any) -> Optional[str]:
    """Why ``agent`` (a control's optional ``agent`` field) names no agent of ``run``; None when
    it does. ``:main`` is every run's root agent; the others are the ones the run registered."""
    if not isinstance(agent, str) or not agent.startswith(":") or len(agent) > 100:
        return "agent must be an agent's handle, such as :main"
    if agent == MAIN_AGENT or Agent.objects.filter(run=run, handle=agent).exists():
        return None
    return f"the run has no agent {agent}"


def control(run: Run, action: str, text: Optional[str] = None, author: Optional[str] = None,
            *, step: bool = False, agent: Optional[str] = None) -> ActResult:
    """Apply a person's action to ``run`` (``agent``: one agent's pause, see ``controller``)."""
    if agent is not None and (refused := agent_refusal(run, agent)) is not None:
        return ActResult(False, refused, text=text)
    active = get_active(run)
    from . import scale  # scale mode: the run executes in a run worker (scale.py)
    remote = active is None and scale.dispatching() and run.status in ACTIVE_STATUSES
    if active is None and not remote:
        if run.status == Run.Status.INTERRUPTED:
            return ActResult(False, "the run was interrupted by a server restart: resume it first")
        return ActResult(False, f"the run is not active ({run.status})")
    result = (scale.remote_control(run, action, text, author, step=step, agent=agent) if active is None
              else active.controller.act(action, text, author, step=step, agent=agent))
    if not result.ok and result.text is not None and result.error:
        # keep what the person typed, with the problem, on the paused run
        pause = dict(Run.objects.filter(pk=run.pk).values_list("pause", flat=True).first() or {})
        if pause:
            pause.update(draft=result.text, draft_error={"message": result.error, "line": result.line,
                                                         "col": result.col})
            Run.objects.filter(pk=run.pk).update(pause=pause)
    return result


# --- restarts -------------------------------------------------------------------------------
def mark_interrupted_runs() -> int:
    """Runs left queued/running/paused by a server process that is gone become interrupted.

    Runs of this process, and of another live process on this host, are left alone; runs of
    processes on other hosts (scale mode) too, since their liveness cannot be seen from here."""
    host, pid, _token = PROCESS_ID.split(":")
    marked = 0
    close_old_connections()
    for r in Run.objects.filter(status__in=ACTIVE_STATUSES).only("pk", "worker"):
        parts = (r.worker or "").split(":")
        if r.worker == PROCESS_ID:
            continue
        if len(parts) == 3:
            w_host, w_pid = parts[0], parts[1]
            if w_host != host:
                continue
            if w_pid.isdigit() and int(w_pid) != int(pid) and pid_alive(int(w_pid)):
                continue
        if Run.objects.filter(pk=r.pk, status__in=ACTIVE_STATUSES).update(
                status=Run.Status.INTERRUPTED, pause=None, worker=""):
            # said with the run's next event, like every change a page shows: a page that
            # reconnects sees it, and the run's open steps end with it
            run = Run.objects.get(pk=r.pk)
            writer = RunPersister(run, segment=run.segment, threaded=False)
            writer.emit_synthetic(ev.RUN_FAILED, run.last_seq + 1, kind="interrupted", span=None,
                                  error="The server stopped while this run was active; "
                                        "resume it to continue from its record.")
            writer.close()
            marked += 1
    return marked
