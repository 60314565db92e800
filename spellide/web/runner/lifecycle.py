"""Server-process hooks, run from the ASGI entry point.

* Every connection tells the broadcaster which event loop the server runs (worker threads
  hand their messages to it).
* On the first connection a process serves, runs that a previous server process left active
  are marked ``interrupted`` (``service.mark_interrupted_runs``). Doing this here rather than
  in ``AppConfig.ready`` keeps ``migrate`` and other commands away from it; the ASGI lifespan
  startup event does the same when a server sends one.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from asgiref.sync import sync_to_async

from .broadcast import broadcaster

log = logging.getLogger("spellide.runner")


class ServerHooks:
    def __init__(self, app: Any) -> None:
        self.app = app
        self._started = False
        self._lock: asyncio.Lock | None = None

    async def _startup(self) -> None:
        if self._started:
            return
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._started:
                return
            from .service import mark_interrupted_runs
            try:
                n = await sync_to_async(mark_interrupted_runs, thread_sensitive=True)()
                if n:
                    log.info("marked %d run(s) left active by a previous server as interrupted", n)
            except Exception:
                log.exception("could not mark interrupted runs")
            self._started = True

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        broadcaster.attach(asyncio.get_running_loop())
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await self._startup()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if not self._started:
            await self._startup()
        await self.app(scope, receive, send)
