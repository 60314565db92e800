"""The run websocket's origin check and control token (issue 11, item 1): a page of another
origin of the same host (another port, another scheme) cannot open a run's socket with the
user's cookies, and a control frame without the page's control token is refused.

Handshakes through a real daphne are in ``tests/browser/test_security.py``."""

from __future__ import annotations

import json

import pytest
from channels.db import database_sync_to_async
from django.test import override_settings

from spellide.spell.api import Breakpoints, RunConfig
from spellide.web import access
from spellide.web.models import Run

from .test_consumers import chain, connect, control, finished, refusal, start, wait_status

pytestmark = pytest.mark.django_db(transaction=True)

HOST = b"127.0.0.1:8000"


async def handshake(run, user, origin: bytes, host: bytes = HOST) -> bool:
    comm, ok, _ = await connect(run, user, origin=(b"origin", origin), host=host)
    if ok:
        await comm.disconnect()
    return ok


async def test_origin_must_match_scheme_host_and_port(user):
    run = await database_sync_to_async(Run.objects.create)(owner=user, title="x")
    assert await handshake(run, user, b"http://127.0.0.1:8000")
    assert not await handshake(run, user, b"http://127.0.0.1:9999")       # another port
    assert not await handshake(run, user, b"http://127.0.0.1")            # port 80
    assert not await handshake(run, user, b"https://127.0.0.1:8000")      # another scheme
    assert not await handshake(run, user, b"http://localhost:8000")       # another host
    assert not await handshake(run, user, b"null")                        # a sandboxed page
    # the Host must be one of ALLOWED_HOSTS (a rebound DNS name is no origin of ours)
    assert not await handshake(run, user, b"http://evil.example:8000", host=b"evil.example:8000")


async def test_trusted_origins_are_accepted(user):
    run = await database_sync_to_async(Run.objects.create)(owner=user, title="x")
    # behind a TLS proxy: the socket arrives as ws:// on ide.example.com, the page is https://
    with override_settings(ALLOWED_HOSTS=["ide.example.com"],
                           CSRF_TRUSTED_ORIGINS=["https://ide.example.com", "https://*.team.example"]):
        assert await handshake(run, user, b"https://ide.example.com", host=b"ide.example.com")
        assert await handshake(run, user, b"https://a.team.example", host=b"ide.example.com")
        assert not await handshake(run, user, b"https://ide.example.com:8443", host=b"ide.example.com")
        assert not await handshake(run, user, b"http://ide.example.com:9999", host=b"ide.example.com")


async def test_controls_need_the_page_token(user, scripted):
    run = await start(user, RunConfig(prompt="P", model=scripted(chain(2)),
                                      breakpoints=Breakpoints(before_model=True)))
    await wait_status(run, "paused", 0)
    comm, ok, _ = await connect(run, user, origin=(b"origin", b"http://127.0.0.1:8000"), host=HOST)
    assert ok
    other = await database_sync_to_async(Run.objects.create)(owner=user, title="other")
    wrong = [None, "", "0" * 64, access.control_token(user, other, "some-session"),
             access.control_token(user, run, "another-session"), ["list"]]
    for token in wrong:
        await comm.send_to(text_data=json.dumps({"action": "resume", "control_token": token}))
        frame = await refusal(comm)
        assert "page token" in frame
    await comm.send_to(text_data=json.dumps({"action": "stop"}))
    assert "page token" in await refusal(comm)
    r = await database_sync_to_async(Run.objects.get)(pk=run.pk)
    assert r.status == "paused" and r.pause["step"] == 0
    # with the page's token the same control steers the run
    await comm.send_to(text_data=control(comm, "stop"))
    assert (await finished(run)).status == "stopped"
    await comm.disconnect()


def test_the_run_page_carries_the_token_only_for_its_owner(client, user, other_user):
    run = Run.objects.create(owner=user, title="x", status="running")
    client.force_login(user)
    html = client.get(f"/runs/{run.public_id}/").content.decode()
    token = access.control_token(user, run, client.session.session_key)
    assert f'data-control-token="{token}"' in html
    other_user.is_staff = True
    other_user.save()
    client.force_login(other_user)     # staff may watch, not steer: no token on the page
    html = client.get(f"/runs/{run.public_id}/").content.decode()
    assert "data-control-token" not in html
