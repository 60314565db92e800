"""Scale mode: runs execute in separate run workers, on Channels workers.

Switched on by ``SPELLIDE_RUN_WORKERS=channels`` (the default whenever SPELLIDE_REDIS_URL is
set). The pieces, all over the Redis channel layer:

* **Dispatch.** Starting, forking or resuming a run creates/claims the ``Run`` row as in the
  embedded mode and prepares everything the execution needs (configuration, the record to
  replay, where to fork, event numbering) in the web process; ``service._launch`` then hands
  it to ``dispatch`` instead of starting a thread. The payload is written to
  ``var/dispatch/<run>.json`` (records can be megabytes: they do not travel through Redis),
  the run's ``worker`` field gets a dispatch token ``dispatch:<unix time>:<nonce>`` and a
  ``run.execute`` message goes to the channel ``spellide-runs``. ``manage.py runworker
  spellide-runs`` (see ``worker.py``) receives it, claims the run (a conditional update on the
  token: a duplicated message cannot execute a run twice), and executes it with the same
  ``service._launch`` code as the embedded mode (a child process, relayed by a thread). A
  dispatch that no worker claimed within ``REDISPATCH_AFTER`` seconds (no worker was running;
  channel messages expire) is sent again by the next worker that checks.
* **Controls.** While a worker executes a run, its process channel is in the group
  ``run-ctl-<public_id>``. ``service.control`` in a web process that does not hold the run
  calls ``remote_control``: edits are parse-checked here (refusals with line:col come back at
  once), then the control goes to that group with this process's reply channel, and the
  worker's answer (the controller's ``ActResult``) comes back within ``CONTROL_TIMEOUT``.
* **Events** go through the database and the group ``run-<public_id>`` as in the embedded
  mode; with channels_redis every daphne process's consumers receive them.
* **Crashed workers.** A worker keeps a heartbeat key ``<prefix>:runworker:<id>`` (TTL
  ``HEARTBEAT_TTL``) in Redis; the runs it executes carry its id ``host:pid:rw-<nonce>`` in
  ``Run.worker``. ``check_runs`` (run by every worker at start and every ``CHECK_EVERY``
  seconds, and by a web process when a control gets no answer) marks the active runs of
  workers whose heartbeat is gone, or whose process on this host is gone, ``interrupted``;
  they resume on request from their record (``service.resume_interrupted``: effects are served
  from the cache and the effect journal, so none runs twice).

All processes must share the database, Redis and the ``SPELLIDE_VAR`` directory (workspaces,
the effect journal and dispatch payloads live there): one machine, or a shared filesystem.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Awaitable, Callable, Optional

from django.conf import settings
from django.db.models import Q

from .pids import pid_alive

log = logging.getLogger("spellide.runner")

RUNS_CHANNEL = "spellide-runs"
HEARTBEAT_TTL = 15          # seconds a worker's heartbeat key lives without renewal
HEARTBEAT_EVERY = 2.0       # how often a worker renews it
CHECK_EVERY = 4.0           # how often a worker looks for runs of dead workers
REGROUP_EVERY = 3600.0      # re-join control groups (channels_redis expires groups after a day)
REDISPATCH_AFTER = 30.0     # a dispatch nobody claimed for this long is sent again
WORKER_TAG = "rw-"
DISPATCH_TAG = "dispatch"

HOST = socket.gethostname()

_in_worker = False          # set in a run worker process (worker.py): execute here, never dispatch


def enabled() -> bool:
    return getattr(settings, "SPELLIDE_RUN_WORKERS", "threads") == "channels"


def dispatching() -> bool:
    """True in a process that hands runs to run workers instead of executing them."""
    return enabled() and not _in_worker


def control_timeout() -> float:
    return float(getattr(settings, "SPELLIDE_CONTROL_TIMEOUT", 5.0))


def ctl_group(public_id: Any) -> str:
    return f"run-ctl-{public_id}"


def dispatch_path(public_id: Any) -> Path:
    return Path(settings.VAR_DIR) / "dispatch" / f"{public_id}.json"


def new_worker_id() -> str:
    return f"{HOST}:{os.getpid()}:{WORKER_TAG}{uuid.uuid4().hex[:12]}"


def is_worker_id(worker: str) -> bool:
    parts = (worker or "").split(":")
    return len(parts) == 3 and parts[2].startswith(WORKER_TAG)


# --- the bus: a private event loop with a channel layer instance of its own ----------------
class _Bus:
    """Cross-process messages of this module, from any thread.

    channels_redis allows receiving on process-local (``!``) channels from one event loop
    per layer instance only; daphne's loop already receives for the websocket consumers, and
    request threads have no loop. So this module uses its own loop thread and its own layer
    instance, and one process channel: control requests arrive on it (in a worker) and
    replies to this process's requests arrive on it (in a web process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self.layer: Any = None
        self.channel: Optional[str] = None
        self._channel_lock: Optional[asyncio.Lock] = None
        self._waiters: dict[str, asyncio.Future] = {}
        self.on_control: Optional[Callable[[dict], dict]] = None   # set by a run worker

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self.loop is None or self.loop.is_closed():
                from channels.layers import DEFAULT_CHANNEL_LAYER, channel_layers
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    ready.set()
                    loop.run_forever()

                threading.Thread(target=run, name="spellide-scale-bus", daemon=True).start()
                ready.wait()
                self.layer = channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)
                self.channel = None
                self._channel_lock = None
                self._waiters = {}
                self.loop = loop
            return self.loop

    def call(self, coro_fn: Callable[..., Awaitable[Any]], *args: Any, timeout: float = 10.0) -> Any:
        """Run ``coro_fn(*args)`` on the bus loop and wait for its result (never call this
        from the bus loop itself)."""
        loop = self._ensure_loop()
        return asyncio.run_coroutine_threadsafe(coro_fn(*args), loop).result(timeout)

    # --- on the bus loop -------------------------------------------------------------------
    async def process_channel(self) -> str:
        if self._channel_lock is None:
            self._channel_lock = asyncio.Lock()
        async with self._channel_lock:
            if self.channel is None:
                self.channel = await self.layer.new_channel("spellide-proc.")
                asyncio.get_running_loop().create_task(self._receive_loop(self.channel))
        return self.channel

    async def _receive_loop(self, channel: str) -> None:
        while True:
            try:
                message = await self.layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("receiving on %s failed", channel)
                await asyncio.sleep(1.0)
                continue
            typ = message.get("type")
            if typ == "run.control.reply":
                fut = self._waiters.pop(str(message.get("id")), None)
                if fut is not None and not fut.done():
                    fut.set_result(message)
            elif typ == "run.control":
                asyncio.get_running_loop().create_task(self._answer(message))

    async def _answer(self, message: dict) -> None:
        handler = self.on_control
        if handler is None:
            result = {"ok": False, "message": "this process executes no runs"}
        else:
            try:
                result = await asyncio.get_running_loop().run_in_executor(None, handler, message)
            except Exception as e:  # never leave the requester waiting for nothing
                log.exception("control %s failed", message.get("action"))
                result = {"ok": False, "message": f"the control failed in the run worker: {e}"}
        reply_to = message.get("reply_to")
        if reply_to:
            try:
                await self.layer.send(reply_to, dict(result, type="run.control.reply", id=message.get("id")))
            except Exception:
                log.exception("replying to %s failed", reply_to)

    async def request(self, group: str, message: dict, timeout: float) -> Optional[dict]:
        channel = await self.process_channel()
        rid = uuid.uuid4().hex
        fut = asyncio.get_running_loop().create_future()
        self._waiters[rid] = fut
        try:
            await self.layer.group_send(group, dict(message, id=rid, reply_to=channel))
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            return None
        finally:
            self._waiters.pop(rid, None)

    async def send(self, channel: str, message: dict) -> None:
        await self.layer.send(channel, message)

    async def group_add(self, group: str) -> None:
        await self.layer.group_add(group, await self.process_channel())

    async def group_discard(self, group: str) -> None:
        if self.channel is not None:
            await self.layer.group_discard(group, self.channel)


bus = _Bus()


# --- dispatching ----------------------------------------------------------------------------
def _token() -> str:
    return f"{DISPATCH_TAG}:{int(time.time())}:{uuid.uuid4().hex[:12]}"


def dispatch(run: Any, config: Any, *, record: Any, fork_at: Optional[int], start_seq: int,
             segment: int) -> None:
    """Hand a prepared execution of ``run`` to the run workers (see the module docstring)."""
    from ..models import Run
    payload = {"run": run.pk, "public_id": str(run.public_id), "config": config.to_json(),
               "record": record.to_json() if record is not None else None, "fork_at": fork_at,
               "start_seq": start_seq, "segment": segment}
    path = dispatch_path(run.public_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)
    token = _token()
    Run.objects.filter(pk=run.pk).update(worker=token)
    run.worker = token
    _send_execute(run.pk, str(run.public_id), token)


def _send_execute(pk: int, public_id: str, token: str) -> None:
    try:
        bus.call(bus.send, RUNS_CHANNEL, {"type": "run.execute", "run": pk, "public_id": public_id,
                                          "token": token})
    except Exception:
        # the run stays queued with its payload; a worker's check sends it again
        log.exception("could not send run %s to the run workers", public_id)


def _redispatch(run_pk: int, public_id: str, old_token: str) -> bool:
    from ..models import Run
    if not dispatch_path(public_id).is_file():
        return bool(Run.objects.filter(pk=run_pk, status=Run.Status.QUEUED, worker=old_token).update(
            status=Run.Status.INTERRUPTED, worker="",
            error="The run's start request was lost before a run worker took it; resume it to start it."))
    token = _token()
    if not Run.objects.filter(pk=run_pk, status=Run.Status.QUEUED, worker=old_token).update(worker=token):
        return False   # claimed meanwhile
    _send_execute(run_pk, public_id, token)
    return True


# --- controls from a process that does not hold the run -------------------------------------
def remote_control(run: Any, action: str, text: Optional[str], author: Optional[str], *,
                   step: bool = False, agent: Optional[str] = None) -> Any:
    from spellide.spell import api
    from .controller import EDITABLE_POINTS, ActResult, check_parse

    if text is not None:
        # Parse-check here so a refusal (with line:col) needs no round trip; the worker
        # checks again against the pause it holds.
        point = (run.pause or {}).get("point") or api.AFTER_COMPLETION
        if point in EDITABLE_POINTS:
            refused = check_parse(point, text)
            if refused is not None:
                return refused
    message = {"type": "run.control", "public_id": str(run.public_id), "action": action, "text": text,
               "author": author, "step": bool(step), "agent": agent}
    timeout = control_timeout()
    try:
        reply = bus.call(bus.request, ctl_group(run.public_id), message, timeout, timeout=timeout + 5)
    except Exception as e:
        log.exception("sending a control to run %s failed", run.public_id)
        return ActResult(False, f"the control could not be sent to the run worker: {e}", text=text)
    if reply is None:
        try:
            check_runs()
        except Exception:
            log.exception("checking run workers failed")
        return ActResult(False, "no run worker answered for this run (if its worker stopped, the run "
                                "is marked interrupted: resume it)", text=text)
    return ActResult(bool(reply.get("ok")), str(reply.get("message") or ""), error=reply.get("error"),
                     line=reply.get("line"), col=reply.get("col"), text=reply.get("text"))


def wait_for_remote(run: Any, timeout: Optional[float]) -> bool:
    """``service.wait_for`` for a run executed by a run worker: poll its row."""
    from ..models import ACTIVE_STATUSES, Run
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        status = Run.objects.filter(pk=run.pk).values_list("status", flat=True).first()
        if status not in ACTIVE_STATUSES:
            return True
        if deadline is not None and time.monotonic() > deadline:
            return False
        time.sleep(0.1)


# --- heartbeats and dead workers ------------------------------------------------------------
_redis_client: Any = None


def redis_client() -> Any:
    global _redis_client
    if _redis_client is None:
        import redis
        _redis_client = redis.Redis.from_url(os.environ.get("SPELLIDE_REDIS_URL") or _layer_host(),
                                             socket_timeout=5, socket_connect_timeout=5)
    return _redis_client


def _layer_host() -> str:
    hosts = (settings.CHANNEL_LAYERS.get("default") or {}).get("CONFIG", {}).get("hosts") or []
    host = hosts[0] if hosts else "redis://127.0.0.1:6379/0"
    return host if isinstance(host, str) else host.get("address", "redis://127.0.0.1:6379/0")


def _prefix() -> str:
    return (settings.CHANNEL_LAYERS.get("default") or {}).get("CONFIG", {}).get("prefix") or "spellide"


def heartbeat_key(worker_id: str) -> str:
    return f"{_prefix()}:runworker:{worker_id}"


def beat(worker_id: str) -> None:
    redis_client().set(heartbeat_key(worker_id), str(time.time()), ex=HEARTBEAT_TTL)


def forget(worker_id: str) -> None:
    redis_client().delete(heartbeat_key(worker_id))


def worker_alive(worker_id: str) -> bool:
    host, pid, _tag = worker_id.split(":")
    if host == HOST and pid.isdigit() and not pid_alive(int(pid)):
        return False
    return bool(redis_client().exists(heartbeat_key(worker_id)))


def check_runs() -> int:
    """Mark the active runs of dead run workers interrupted; send dispatches nobody claimed
    again. Returns how many runs were marked. Safe to run in several processes at once (every
    change is a conditional update)."""
    from django.db import close_old_connections

    from ..models import ACTIVE_STATUSES, Run
    close_old_connections()
    marked = 0
    alive: dict[str, bool] = {}
    now = time.time()
    rows = Run.objects.filter(status__in=ACTIVE_STATUSES).filter(
        Q(worker__contains=f":{WORKER_TAG}") | Q(worker__startswith=f"{DISPATCH_TAG}:")).values_list(
        "pk", "public_id", "worker", "status")
    for pk, public_id, worker, status in rows:
        if worker.startswith(f"{DISPATCH_TAG}:"):
            try:
                ts = int(worker.split(":")[1])
            except (IndexError, ValueError):
                ts = 0
            if status == Run.Status.QUEUED and now - ts > REDISPATCH_AFTER:
                _redispatch(pk, str(public_id), worker)
            continue
        if not is_worker_id(worker):
            continue
        if worker not in alive:
            alive[worker] = worker_alive(worker)
        if not alive[worker]:
            n = Run.objects.filter(pk=pk, status__in=ACTIVE_STATUSES, worker=worker).update(
                status=Run.Status.INTERRUPTED, pause=None, worker="",
                error="The run worker executing this run stopped; resume it to continue from its record.")
            if n:
                log.warning("run %s: its worker %s is gone, marked interrupted", public_id, worker)
            marked += n
    return marked
