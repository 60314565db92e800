"""The run worker of scale mode: ``manage.py runworker spellide-runs``.

A Channels worker (``channels.worker.Worker``, started by Channels' ``runworker``, which
``spellide.web.management.commands.runworker`` extends to start the services below) routes
messages on the channel ``spellide-runs`` to ``RunWorkerConsumer`` (``asgi.py``:
``ProtocolTypeRouter({"channel": ...})``). For ``run.execute`` it claims the run, reads the
payload the web process prepared (``scale.dispatch``) and executes the run with
``service._launch``, the code the embedded mode uses (a child process of this one per run).

While it executes a run, the process channel of ``scale.bus`` is in the group
``run-ctl-<public_id>``: controls sent there by any web process reach the run's
``IdeController`` and are answered on the sender's reply channel. A service thread renews the
worker's heartbeat in Redis and marks runs of dead workers interrupted (``scale.check_runs``).
Several workers can listen on ``spellide-runs``; each message goes to one of them.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any, Optional

from channels.consumer import SyncConsumer

from . import scale

log = logging.getLogger("spellide.runner")


class WorkerServices:
    def __init__(self) -> None:
        self.worker_id = scale.new_worker_id()
        self._lock = threading.Lock()
        self._started = False
        self._stop = threading.Event()
        self._groups: set[str] = set()

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            if self._started:
                return
            scale._in_worker = True
            scale.bus.on_control = self.handle_control
            scale.beat(self.worker_id)
            try:
                n = scale.check_runs()
                if n:
                    log.info("marked %d run(s) of stopped run workers interrupted", n)
            except Exception:
                log.exception("checking run workers failed")
            scale.bus.call(scale.bus.process_channel)   # ready to take controls
            threading.Thread(target=self._loop, name="spellide-worker-heartbeat", daemon=True).start()
            self._started = True
            log.info("run worker %s ready", self.worker_id)

    def stop(self) -> None:
        """The worker process is leaving: the runs it executes become interrupted now (their
        threads end with the process), and its heartbeat goes."""
        self._stop.set()
        try:
            from ..models import ACTIVE_STATUSES, Run
            Run.objects.filter(worker=self.worker_id, status__in=ACTIVE_STATUSES).update(
                status=Run.Status.INTERRUPTED, pause=None, worker="",
                error="The run worker executing this run was stopped; resume it to continue from its record.")
        except Exception:
            log.exception("marking the runs of %s interrupted failed", self.worker_id)
        try:
            scale.forget(self.worker_id)
        except Exception:
            log.exception("removing the heartbeat of %s failed", self.worker_id)

    def _loop(self) -> None:
        from django.db import connection
        last_check = last_regroup = time.monotonic()
        while not self._stop.wait(scale.HEARTBEAT_EVERY):
            try:
                scale.beat(self.worker_id)
            except Exception:
                log.exception("heartbeat failed")
            now = time.monotonic()
            if now - last_check >= scale.CHECK_EVERY:
                last_check = now
                try:
                    scale.check_runs()
                except Exception:
                    log.exception("checking run workers failed")
                finally:
                    connection.close()
            if now - last_regroup >= scale.REGROUP_EVERY:
                last_regroup = now
                for group in list(self._groups):
                    try:
                        scale.bus.call(scale.bus.group_add, group)
                    except Exception:
                        log.exception("re-joining %s failed", group)

    # --- executing ---------------------------------------------------------------------------
    def execute(self, message: dict[str, Any]) -> None:
        from spellide.spell.api import RunConfig
        from spellide.spell.api import Record

        from ..models import Run
        from . import service

        pk, public_id, token = message.get("run"), str(message.get("public_id")), message.get("token")
        # claim: exactly one worker executes one dispatch
        if not Run.objects.filter(pk=pk, status=Run.Status.QUEUED, worker=token).update(worker=self.worker_id):
            log.info("run %s: dispatch %s is stale or taken, ignored", public_id, token)
            return
        path = scale.dispatch_path(public_id)
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
            config = RunConfig.from_json(payload["config"])
            record = Record.from_json(payload["record"]) if payload.get("record") else None
            run = Run.objects.get(pk=pk)
        except Exception as e:
            log.exception("run %s: cannot read its dispatch payload", public_id)
            Run.objects.filter(pk=pk, worker=self.worker_id).update(
                status=Run.Status.INTERRUPTED, worker="", error=f"the run worker could not start it: {e}")
            return
        try:
            path.unlink()
        except OSError:
            pass
        group = scale.ctl_group(public_id)
        try:
            scale.bus.call(scale.bus.group_add, group)   # before the run can pause
            self._groups.add(group)
        except Exception:
            log.exception("run %s: cannot join its control group (controls from other processes "
                          "will not reach it)", public_id)
        try:
            active = service._launch(run, config, record=record, fork_at=payload.get("fork_at"),
                                     start_seq=int(payload.get("start_seq") or 0),
                                     segment=int(payload.get("segment") or 0))
        except Exception as e:
            log.exception("run %s: could not start", public_id)
            Run.objects.filter(pk=pk, worker=self.worker_id).update(
                status=Run.Status.INTERRUPTED, worker="", error=f"the run worker could not start it: {e}")
            self._groups.discard(group)
            return
        log.info("run %s: executing (segment %s)", public_id, payload.get("segment"))

        def leave_group_when_done() -> None:
            active.done.wait()
            self._groups.discard(group)
            try:
                scale.bus.call(scale.bus.group_discard, group)
            except Exception:
                log.exception("run %s: leaving its control group failed", public_id)

        threading.Thread(target=leave_group_when_done, name=f"spellide-ctl-{public_id}", daemon=True).start()

    # --- controls ----------------------------------------------------------------------------
    def handle_control(self, message: dict[str, Any]) -> dict[str, Any]:
        from .service import get_active
        public_id = str(message.get("public_id"))
        active = get_active(public_id)
        deadline = time.monotonic() + 2.0
        while active is None and time.monotonic() < deadline:   # joining the group precedes _launch
            time.sleep(0.02)
            active = get_active(public_id)
        if active is None:
            return {"ok": False, "message": "the run is not active in this worker"}
        text: Optional[str] = message.get("text")
        result = active.controller.act(str(message.get("action")), text, message.get("author"),
                                       step=bool(message.get("step")), agent=message.get("agent"))
        return result.to_json()


services = WorkerServices()


class RunWorkerConsumer(SyncConsumer):
    """Messages on ``spellide-runs``. Handlers only claim and start: the run itself executes
    in its own thread, so the worker keeps taking messages."""

    def run_execute(self, message: dict[str, Any]) -> None:
        from . import scale as _scale
        if not _scale.enabled():
            log.error("a run reached the run worker, but SPELLIDE_RUN_WORKERS is not 'channels' here")
            return
        services.start()
        services.execute(message)
