"""The run websocket, with channels' WebsocketCommunicator: events arrive in order with their
sequence numbers, a reconnect with ``last_seq`` gets exactly the missed events, controls work
over the socket and over POST, and anonymous, wrong-origin and other users' sockets are refused.

Every test is ``django_db(transaction=True)`` (channels closes old connections before each
handler; see shared/stack-notes.md)."""

from __future__ import annotations

import asyncio
import html
import json
import re

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from spellide.spell.api import Breakpoints, RunConfig
from spellide.web import access, runner
from spellide.web.asgi import application
from spellide.web.models import Run, RunEvent
from spellide.web.runner import persist

from .conftest import HOST, ORIGIN

pytestmark = pytest.mark.django_db(transaction=True)

SEQ = re.compile(r'data-seq="(\d+)"')


def plain_render(run, event) -> str:
    """One element per event, with its number and type: what these tests parse."""
    seq, typ = int(event["seq"]), html.escape(str(event["type"]))
    return (f'<hx-partial hx-target="#events" hx-swap="beforeend"><pre data-seq="{seq}" '
            f'data-type="{typ}">{seq} {typ}</pre></hx-partial>')


@pytest.fixture(autouse=True)
def quiet_heartbeat(monkeypatch):
    """The heartbeat's frames would interleave with what these tests read; the test of the
    heartbeat sets its own period."""
    from spellide.web import consumers
    monkeypatch.setattr(consumers, "HEARTBEAT", 3600.0)


@pytest.fixture(autouse=True)
def plain_renderer(monkeypatch):
    """Frames are parsed by their data-seq attributes: render each event as one element (the
    real fragments are tested with the pages)."""
    monkeypatch.setattr(persist, "render_batch",
                        lambda run, events, closed=(): [(e["seq"], plain_render(run, e)) for e in events])


def chain(n: int, latency: float = 0.0) -> list:
    items = [f"(def a{i} {i}) '(!extend)" for i in range(n)] + ['"done"']
    return [{"text": t, "latency": latency} for t in items] if latency else items


def session_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def connect(run, user=None, last_seq: int = 0, origin=ORIGIN, host=HOST):
    """A socket to ``run``'s stream; ``comm.control_token`` is what the run page would give
    this session to steer the run with."""
    headers = ([origin] if origin else []) + [(b"host", host)]
    token = None
    if user is not None:
        cookie = await database_sync_to_async(session_cookie)(user)
        headers.append((b"cookie", cookie))
        token = access.control_token(user, run, cookie.decode().split("=", 1)[1])
    comm = WebsocketCommunicator(application, f"/ws/runs/{run.public_id}/?last_seq={last_seq}",
                                 headers=headers)
    comm.control_token = token
    connected, code = await comm.connect(timeout=10)
    return comm, connected, code


def control(comm, action: str, **fields) -> str:
    """A control frame as the run page sends it: with the page's control token."""
    return json.dumps({"action": action, "control_token": comm.control_token, **fields})


async def read_seqs(comm, until_seq: int | None = None, until_type: str | None = None,
                    timeout: float = 20.0) -> list[int]:
    """Read frames until an event with seq >= until_seq (or of until_type) arrived."""
    seqs: list[int] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        frame = await comm.receive_from(timeout=max(0.1, deadline - loop.time()))
        found = [int(s) for s in SEQ.findall(frame)]
        seqs += found
        if until_seq is not None and seqs and seqs[-1] >= until_seq:
            return seqs
        if until_type is not None and f'data-type="{until_type}"' in frame:
            return seqs


async def refusal(comm) -> str:
    """Skip event frames and accepted controls until a refused control's answer."""
    while True:
        frame = await comm.receive_from(timeout=10)
        if "run-control-result" in frame and 'data-ok="false"' in frame:
            return frame


async def start(user, config, title="t"):
    return await database_sync_to_async(runner.start_run)(user, config, title)


async def finished(run, timeout=30.0):
    assert await asyncio.to_thread(runner.wait_for, run, timeout)
    return await database_sync_to_async(Run.objects.get)(pk=run.pk)


async def poll(check, timeout=20.0):
    """Poll ``check`` (sync, ORM) without holding the shared database thread while waiting."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await database_sync_to_async(check)()
        if value:
            return value
        assert loop.time() < deadline, f"timed out waiting for {check}"
        await asyncio.sleep(0.02)


async def wait_status(run, status, step=None, timeout=20.0, point=None, after_seq=0):
    def check():
        r = Run.objects.get(pk=run.pk)
        p = r.pause or {}
        ok = (r.status == status and (step is None or p.get("step") == step)
              and (point is None or p.get("point") == point) and (p.get("seq") or 0) > after_seq)
        return r if ok else None
    return await poll(check, timeout)


async def step_until(run, point, send):
    """Step (``send`` one step control) until the run pauses at ``point``."""
    for _ in range(5):
        before = (await database_sync_to_async(Run.objects.get)(pk=run.pk)).pause["seq"]
        await send()
        r = await wait_status(run, "paused", after_seq=before)
        if r.pause["point"] == point:
            return r
    raise AssertionError(f"never paused at {point}")


async def test_events_arrive_in_order_with_sequence_numbers(user, scripted):
    run = await start(user, RunConfig(prompt="P", model=scripted(chain(30, 0.01))))
    comm, ok, _ = await connect(run, user)
    assert ok
    seqs = await read_seqs(comm, until_type="run_finished")
    final = await finished(run)
    assert seqs == list(range(1, final.last_seq + 1))
    assert final.status == "finished"
    await comm.disconnect()


async def test_reconnect_gets_exactly_the_missed_events(user, scripted):
    run = await start(user, RunConfig(prompt="P", model=scripted(chain(40, 0.01))))
    comm, ok, _ = await connect(run, user)
    assert ok
    first = await read_seqs(comm, until_seq=15)
    await comm.disconnect()
    last_seen = first[-1]
    await asyncio.sleep(0.2)                       # events go on while the client is away
    comm, ok, _ = await connect(run, user, last_seq=last_seen)
    assert ok
    rest = await read_seqs(comm, until_type="run_finished")
    final = await finished(run)
    assert first + rest == list(range(1, final.last_seq + 1))
    await comm.disconnect()
    # after the run: a reconnect gets exactly the tail it has not seen, then nothing
    comm, ok, _ = await connect(run, user, last_seq=final.last_seq - 3)
    assert await read_seqs(comm, until_seq=final.last_seq) == [final.last_seq - 2, final.last_seq - 1,
                                                               final.last_seq]
    assert await comm.receive_nothing(timeout=0.3)
    await comm.disconnect()


async def test_a_client_that_missed_too_much_is_told_to_load_its_state(user, scripted, monkeypatch):
    """Past REPLAY_LIMIT missed events the consumer sends no replay but one data-resync element
    with the last stored number, then only the events after it."""
    from spellide.web import consumers
    run = await start(user, RunConfig(prompt="P", model=scripted(chain(12)),
                                      breakpoints=Breakpoints(before_model=True)))
    await wait_status(run, "paused", 0)
    monkeypatch.setattr(consumers, "REPLAY_LIMIT", 2)
    at = (await database_sync_to_async(Run.objects.get)(pk=run.pk)).last_seq
    comm, ok, _ = await connect(run, user, last_seq=0)
    assert ok
    assert await comm.receive_from() == consumers.resync_html(at)
    await database_sync_to_async(runner.control)(run, "resume")
    seqs = await read_seqs(comm, until_type="paused")
    assert seqs and seqs[0] == at + 1 and seqs == list(range(at + 1, seqs[-1] + 1))
    await database_sync_to_async(runner.control)(run, "stop")
    await comm.disconnect()


async def test_gap_in_the_live_stream_is_filled_from_the_database(user, scripted, monkeypatch):
    run = await start(user, RunConfig(prompt="P", model=scripted(chain(3)),
                                      breakpoints=Breakpoints(before_model=True)))
    await wait_status(run, "paused", 0)
    comm, ok, _ = await connect(run, user)
    assert ok
    caught_up = await read_seqs(comm, until_type="paused")
    n = await database_sync_to_async(RunEvent.objects.filter(run=run).count)()
    assert caught_up == list(range(1, n + 1))
    # lose every live message of the next turn...
    lost: list[dict] = []
    monkeypatch.setattr(persist.broadcaster, "send", lambda group, message: lost.append(message))
    await database_sync_to_async(runner.control)(run, "resume")
    await wait_status(run, "paused", 1)
    assert await comm.receive_nothing(timeout=0.2)
    items = [item for m in lost for item in m["events"]]
    assert len(items) >= 3 and [seq for seq, _ in items] == list(range(n + 1, n + 1 + len(items)))
    # ...but the last one: the consumer fetches the missing ones first, in order, once
    from channels.layers import get_channel_layer
    layer = get_channel_layer()
    await layer.group_send(run.group_name, {"type": "run.events", "events": [items[-1]]})
    seqs = await read_seqs(comm, until_seq=items[-1][0])
    assert seqs == list(range(n + 1, items[-1][0] + 1))
    await layer.group_send(run.group_name, {"type": "run.events", "events": items[-3:-1]})  # late: dropped
    assert await comm.receive_nothing(timeout=0.2)
    await database_sync_to_async(runner.control)(run, "stop")
    await comm.disconnect()


async def test_the_heartbeat_sends_what_was_lost_at_the_end_and_the_newest_number(user, scripted,
                                                                                  monkeypatch):
    """Lost live messages show as a gap only when a later one arrives; at the end of a stream
    none does. The heartbeat reads the newest stored number, sends the missing events in order,
    then ``data-head`` with that number (a page behind it loads its state)."""
    from spellide.web import consumers
    monkeypatch.setattr(consumers, "HEARTBEAT", 0.3)
    lost: list[dict] = []
    monkeypatch.setattr(persist.broadcaster, "send", lambda group, message: lost.append(message))
    run = await start(user, RunConfig(prompt="P", model=scripted(chain(3)),
                                      breakpoints=Breakpoints(before_model=True)))
    await wait_status(run, "paused", 0)
    comm, ok, _ = await connect(run, user)
    assert ok
    n = (await database_sync_to_async(Run.objects.get)(pk=run.pk)).last_seq
    assert await read_seqs(comm, until_seq=n) == list(range(1, n + 1))
    assert await comm.receive_from(timeout=5) == consumers.head_html(n)
    await database_sync_to_async(runner.control)(run, "resume")   # every live message is lost
    r = await wait_status(run, "paused", 1)
    seqs: list[int] = []
    while True:
        frame = await comm.receive_from(timeout=5)
        if frame == consumers.head_html(r.last_seq):
            break
        assert "data-head" not in frame
        seqs += [int(s) for s in SEQ.findall(frame)]
    assert lost and seqs == list(range(n + 1, r.last_seq + 1))
    await database_sync_to_async(runner.control)(run, "stop")
    await comm.disconnect()


async def test_controls_over_the_websocket(user, scripted):
    run = await start(user, RunConfig(prompt="P", model=scripted(chain(3)),
                                      breakpoints=Breakpoints(before_model=True)))
    comm, ok, _ = await connect(run, user)
    assert ok
    await wait_status(run, "paused", 0)
    await comm.send_to(text_data=control(comm, "resume", headers={"HX-Request": "true"}))
    await wait_status(run, "paused", 1)
    r = await step_until(run, "after_completion",
                         lambda: comm.send_to(text_data=control(comm, "step", headers={})))
    assert r.pause["step"] == 1
    await comm.send_to(text_data=control(comm, "edit", text="(quine completion (eval (do ]"))
    # the answer to the refused edit names the position
    frame = await refusal(comm)
    assert "data-line=" in frame
    await comm.send_to(text_data=control(comm, "stop"))
    final = await finished(run)
    assert final.status == "stopped"
    await comm.send_to(text_data="not json")
    await comm.disconnect()


async def test_controls_over_post(user, scripted):
    run = await start(user, RunConfig(prompt="P", model=scripted(chain(3)),
                                      breakpoints=Breakpoints(before_model=True)))
    await wait_status(run, "paused", 0)

    def post(action, **data):
        c = Client(enforce_csrf_checks=False)
        c.force_login(user)
        return c.post(f"/runs/{run.public_id}/{action}/", data, headers={"HX-Request": "true"})

    r = await sync_to_async(post)("resume")
    assert r.status_code == 200 and b'data-ok="true"' in r.content
    await wait_status(run, "paused", 1)

    async def step():
        r = await sync_to_async(post)("step")
        assert r.status_code == 200

    await step_until(run, "after_completion", step)
    r = await sync_to_async(post)("edit", text="(do ))")
    assert r.status_code == 422 and b"data-line=" in r.content and b"(do ))" in r.content
    r = await sync_to_async(post)("stop")
    assert r.status_code == 200
    assert (await finished(run)).status == "stopped"
    r = await sync_to_async(post)("resume")
    assert r.status_code == 409


async def test_anonymous_socket_refused(user, scripted):
    run = await database_sync_to_async(Run.objects.create)(owner=user, title="x")
    comm, ok, code = await connect(run, None)
    assert not ok


async def test_wrong_origin_refused(user):
    run = await database_sync_to_async(Run.objects.create)(owner=user, title="x")
    comm, ok, _ = await connect(run, user, origin=(b"origin", b"http://evil.example"))
    assert not ok
    comm, ok, _ = await connect(run, user, origin=None)
    assert not ok


async def test_another_users_run_refused(user, other_user):
    run = await database_sync_to_async(Run.objects.create)(owner=user, title="x")
    comm, ok, _ = await connect(run, other_user)
    assert not ok
    comm, ok, _ = await connect(run, user)
    assert ok
    await comm.disconnect()


async def test_viewer_cannot_steer(user, other_user, scripted):
    def make_staff():
        other_user.is_staff = True
        other_user.save()
    await database_sync_to_async(make_staff)()
    run = await start(user, RunConfig(prompt="P", model=scripted(chain(2)),
                                      breakpoints=Breakpoints(before_model=True)))
    await wait_status(run, "paused", 0)
    comm, ok, _ = await connect(run, other_user)
    assert ok                                      # staff may watch
    await comm.send_to(text_data=json.dumps({"action": "resume"}))
    frame = await refusal(comm)
    assert "owner" in frame
    assert (await database_sync_to_async(Run.objects.get)(pk=run.pk)).status == "paused"
    await database_sync_to_async(runner.control)(run, "stop")
    await comm.disconnect()
