"""Broadcasting run events to the channel layer from worker threads, without blocking.

A worker thread must never block the server's event loop, and the event loop must never wait
for a worker. Messages are handed to one dispatcher task per event loop through
``call_soon_threadsafe``; the task sends them with ``group_send`` one after another, so the
order of a run's events is kept.

Which loop: the server's (captured by the ASGI entry point on every connection, see
``lifecycle.ServerHooks``), because the in-memory channel layer is only safe to use from the
loop its consumers run in. With no server loop in this process (a management command, a
headless bench) and a cross-process layer (Redis), a private loop thread is used; with the
in-memory layer and no server loop nobody can be listening, so nothing is sent.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any, Optional

log = logging.getLogger("spellide.runner")


class _Dispatcher:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: Optional[asyncio.Queue] = None
        self.task: Optional[asyncio.Task] = None

    def start(self) -> None:  # in the loop's thread
        self.queue = asyncio.Queue()
        self.task = self.loop.create_task(self._drain())

    async def _drain(self) -> None:
        from channels.layers import get_channel_layer
        assert self.queue is not None
        while True:
            pending = [await self.queue.get()]
            while not self.queue.empty() and len(pending) < 1000:
                pending.append(self.queue.get_nowait())
            layer = get_channel_layer()
            if layer is None:
                continue
            for group, message in _coalesce(pending):
                try:
                    await layer.group_send(group, message)
                except Exception:  # never stop a run for this; clients gap-fill from the DB
                    log.exception("group_send to %s failed", group)

    def put(self, group: str, message: dict) -> bool:
        try:
            self.loop.call_soon_threadsafe(self._put_nowait, group, message)
            return True
        except RuntimeError:  # loop closed
            return False

    def _put_nowait(self, group: str, message: dict) -> None:
        if self.queue is None:
            self.start()
        assert self.queue is not None
        if self.task is not None and self.task.done():
            self.task = self.loop.create_task(self._drain())
        self.queue.put_nowait((group, message))


def _coalesce(pending: list[tuple[str, dict]]) -> list[tuple[str, dict]]:
    """Merge consecutive ``run.events`` messages to the same group (fewer frames under load;
    order kept)."""
    out: list[tuple[str, dict]] = []
    for group, message in pending:
        if (out and out[-1][0] == group and message.get("type") == "run.events"
                and out[-1][1].get("type") == "run.events"):
            merged = dict(out[-1][1])
            merged["events"] = list(merged["events"]) + list(message["events"])
            out[-1] = (group, merged)
        else:
            out.append((group, message))
    return out


class Broadcaster:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._server: Optional[_Dispatcher] = None
        self._private: Optional[_Dispatcher] = None

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Called from the server's event loop (each ASGI connection): use that loop."""
        current = self._server
        if current is not None and current.loop is loop:
            return
        with self._lock:
            if self._server is None or self._server.loop is not loop:
                d = _Dispatcher(loop)
                d.start()
                self._server = d

    def may_have_listeners(self, group: str) -> bool:
        """False only when nobody can be listening: the in-memory layer, and no consumer of
        this process in the group (then events need no rendering; a consumer that joins later
        catches up from the database, where the events already are)."""
        if not _layer_is_in_memory():
            return True
        d = self._server
        if d is None or d.loop.is_closed():
            return False
        from channels.layers import get_channel_layer
        layer = get_channel_layer()
        groups = getattr(layer, "groups", None)
        if not isinstance(groups, dict):
            return True
        return bool(groups.get(group))

    def send(self, group: str, message: dict[str, Any]) -> None:
        d = self._server
        if d is not None and not d.loop.is_closed() and d.put(group, message):
            return
        if _layer_is_in_memory():
            return  # no server loop in this process: nobody can be listening here
        self._private_dispatcher().put(group, message)

    def _private_dispatcher(self) -> _Dispatcher:
        with self._lock:
            if self._private is None or self._private.loop.is_closed():
                loop = asyncio.new_event_loop()
                d = _Dispatcher(loop)
                ready = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    d.start()
                    ready.set()
                    loop.run_forever()

                threading.Thread(target=run, name="spellide-broadcast", daemon=True).start()
                ready.wait()
                self._private = d
            return self._private


def _layer_is_in_memory() -> bool:
    from django.conf import settings
    backend = (getattr(settings, "CHANNEL_LAYERS", {}).get("default") or {}).get("BACKEND", "")
    return backend.endswith("InMemoryChannelLayer")


broadcaster = Broadcaster()
