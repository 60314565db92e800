"""The run websocket: ``/ws/runs/<public_id>/?last_seq=N``.

On connect (logged-in users who may view the run; the origin's scheme, host and port are
checked by ``origins.SameOriginValidator`` in ``asgi.py``) the consumer joins the run's
group, sends every persisted event after ``last_seq`` in order, then the live ones. Each frame is HTML for
htmx 4's websocket extension (``<hx-partial>`` fragments from ``fragments.render_batch``).
Events are numbered; the consumer sends each number once and in order: a live event that is
already sent is dropped, and a gap (a dropped channel message) is filled from the database,
where every event is stored before it is broadcast. Events replayed from the database are
rendered with the state as it is now (each batch carries whole state, not changes), so a
replay can only bring a page closer to the server's state. A client that missed more than
``REPLAY_LIMIT`` events is not sent them all: it gets one ``data-resync`` element and loads
its state over HTTP instead (the page does the same on every reconnect and on any gap).

A gap shows only when a later event arrives, so the last events of a run could be lost for
good (a channel layer drops messages when a group's buffer is full; a page can miss frames).
Every ``HEARTBEAT`` seconds the consumer therefore reads the newest persisted number, sends
what it has not sent, and then a ``data-head`` element with the newest number: a page that is
behind it loads its state.

Client frames (htmx 4 ``hx-ws:send`` posts JSON: ``{"text"?, "headers": {...}, ...form
fields}``) steer the run: ``{"action": "pause"|"resume"|"step"|"stop"|"approve"|"reject"|"edit",
"text"?: ..., "control_token": ...}``; only the run's owner may, and only with the page's
control token (``access.control_token``: the run page renders it, ``ide.js`` adds it to every
frame it sends), as HTTP controls need a CSRF token. The answer is a small fragment for
``#run-control-result``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Optional
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.utils.html import escape

from .access import can_control, can_view, check_control_token
from .models import Run

log = logging.getLogger("spellide.ws")

CATCH_UP_BATCH = 200
REPLAY_LIMIT = 2_000   # more missed events than this: the page reloads its state instead
HEARTBEAT = 3.0        # seconds between checks that nothing was lost at the end of a stream
CONTROL_ACTIONS = ("pause", "resume", "step", "stop", "approve", "reject", "edit")


@database_sync_to_async
def _get_run(public_id: str) -> Optional[Run]:
    return Run.objects.select_related("owner").filter(public_id=public_id).first()


@database_sync_to_async
def _load_rendered(run: Run, after_seq: int, until_seq: Optional[int], limit: int) -> list[tuple[int, str]]:
    from .runner.persist import iter_events, render
    for chunk in iter_events(run, after_seq, until_seq, batch=limit):
        # the state a replayed batch carries is read after its events: at least as new as they
        run.refresh_from_db()
        return [(seq, html) for seq, html in render(run, chunk)]
    return []


@database_sync_to_async
def _last_persisted(run: Run) -> int:
    return Run.objects.filter(pk=run.pk).values_list("last_seq", flat=True).first() or 0


def resync_html(seq: int) -> str:
    """Tells the page to load its state over HTTP (it has missed too much to replay)."""
    return f'<hx-partial hx-target="#ws-seq" hx-swap="none" data-resync="{int(seq)}"></hx-partial>'


def head_html(seq: int) -> str:
    """The newest event number: a page that has applied less loads its state."""
    return f'<hx-partial hx-target="#ws-seq" hx-swap="none" data-head="{int(seq)}"></hx-partial>'


def control_result_html(ok: bool, message: str, error: Optional[str] = None,
                        line: Optional[int] = None, col: Optional[int] = None) -> str:
    """The answer to a control frame, for ``#run-control-result`` (all text escaped)."""
    where = f" at line {line}, column {col}" if line is not None else ""
    detail = f": {escape(error)}{where}" if error else ""
    pos = f' data-line="{int(line)}" data-col="{int(col or 0)}"' if line is not None else ""
    cls = "ok" if ok else "refused"
    return (f'<hx-partial hx-target="#run-control-result" hx-swap="innerHTML">'
            f'<span class="control-result {cls}" data-ok="{str(ok).lower()}"{pos}>'
            f'{escape(message)}{detail}</span></hx-partial>')


class RunConsumer(AsyncWebsocketConsumer):
    run: Run
    group: str
    last_sent: int

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        public_id = str(self.scope["url_route"]["kwargs"]["public_id"])
        run = await _get_run(public_id)
        if run is None or not can_view(user, run):
            await self.close(code=4403)
            return
        self.run = run
        self.group = run.group_name
        self.last_sent = _last_seq(self.scope)
        self.sending = asyncio.Lock()    # the heartbeat and the group handlers send in turn
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        self.heartbeat = asyncio.ensure_future(self._heartbeat())
        latest = await _last_persisted(run)
        async with self.sending:
            if latest - self.last_sent > REPLAY_LIMIT:
                self.last_sent = latest
                await self.send(text_data=resync_html(latest))
                return
            await self._catch_up(None)

    async def disconnect(self, code: int) -> None:
        beat = getattr(self, "heartbeat", None)
        if beat is not None:
            beat.cancel()
        group = getattr(self, "group", None)
        if group:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def _heartbeat(self) -> None:
        try:
            while True:
                await asyncio.sleep(HEARTBEAT)
                latest = await _last_persisted(self.run)
                async with self.sending:
                    if latest > self.last_sent:
                        await self._catch_up(latest)
                    await self.send(text_data=head_html(self.last_sent))
        except asyncio.CancelledError:
            pass
        except Exception:   # a closed socket or database hiccup: the next connect starts anew
            log.debug("heartbeat ended", exc_info=True)

    async def _catch_up(self, until: Optional[int]) -> None:
        """Send the persisted events after ``last_sent`` (through ``until``), in batches."""
        while True:
            batch = await _load_rendered(self.run, self.last_sent, until, CATCH_UP_BATCH)
            if not batch:
                return
            await self.send(text_data="".join(html for _, html in batch))
            self.last_sent = batch[-1][0]
            if len(batch) < CATCH_UP_BATCH:
                return

    # --- group messages ------------------------------------------------------------------
    async def run_events(self, message: dict[str, Any]) -> None:
        """A batch of events ``[[seq, html], ...]`` in order: send the unsent ones as one frame,
        after filling any gap before them from the database."""
        async with self.sending:
            items = [(int(seq), html) for seq, html in message.get("events") or []]
            items = [(seq, html) for seq, html in items if seq > self.last_sent]
            if not items:
                return  # already sent (catch-up overlapped with the live stream)
            if items[0][0] > self.last_sent + 1:
                await self._catch_up(items[0][0] - 1)  # a gap: fill it from the database
                items = [(seq, html) for seq, html in items if seq > self.last_sent]
                if not items:
                    return
            await self.send(text_data="".join(html for _, html in items))
            self.last_sent = items[-1][0]

    async def run_event(self, message: dict[str, Any]) -> None:
        """One event (``{seq, html}``)."""
        await self.run_events({"events": [[message["seq"], message["html"]]]})

    # --- client frames -------------------------------------------------------------------
    async def receive(self, text_data: Optional[str] = None, bytes_data: Optional[bytes] = None) -> None:
        try:
            data = json.loads(text_data or "{}")
        except ValueError:
            await self.send(text_data=control_result_html(False, "the frame is not JSON"))
            return
        if not isinstance(data, dict):
            return
        action = data.get("action")
        if isinstance(action, list):
            action = action[0] if action else None
        if action not in CONTROL_ACTIONS:
            await self.send(text_data=control_result_html(False, f"unknown action {str(action)[:40]!r}"))
            return
        user = self.scope["user"]
        if not can_control(user, self.run):
            await self.send(text_data=control_result_html(False, "only the run's owner can steer it"))
            return
        session = self.scope.get("session")
        if not check_control_token(user, self.run, getattr(session, "session_key", None),
                                   data.get("control_token")):
            await self.send(text_data=control_result_html(
                False, "refused: the control carries no valid page token (reload the page)"))
            return
        text = next((data[k] for k in ("text", "program", "edit_text") if isinstance(data.get(k), str)), None)
        step = str(data.get("step") or "").lower() in ("1", "true", "on", "yes")
        agent = data.get("agent") or None   # one agent's pause (runner.controller); checked there
        if agent is not None and not isinstance(agent, str):
            await self.send(text_data=control_result_html(False, "agent must be an agent's handle"))
            return
        from .runner import control
        result = await database_sync_to_async(control)(self.run, action, text, user.get_username(), step=step,
                                                       agent=agent)
        await self.send(text_data=control_result_html(result.ok, result.message, result.error,
                                                      result.line, result.col))


def _last_seq(scope: dict) -> int:
    qs = parse_qs((scope.get("query_string") or b"").decode("latin-1"))
    try:
        return max(0, int((qs.get("last_seq") or ["0"])[0]))
    except ValueError:
        return 0
