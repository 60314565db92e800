"""Caps on runs that hold a process (issue 11 item 6): a user's active runs
(SPELLIDE_MAX_ACTIVE_RUNS_PER_USER) and the server's paused runs (SPELLIDE_MAX_PAUSED_RUNS),
checked on start, fork, resume after a restart and pause, refused with 429 and a message."""

from __future__ import annotations

import pytest
from django.test import Client

from spellide.web.models import Run

from .conftest import finish
from .pagedata import make_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(user) -> Client:
    c = Client()
    c.force_login(user)
    return c


@pytest.fixture
def capped(settings):
    settings.SPELLIDE_MAX_ACTIVE_RUNS_PER_USER = 2
    settings.SPELLIDE_MAX_PAUSED_RUNS = 3
    return settings


def test_a_user_at_the_active_cap_cannot_start_fork_or_resume(client, user, capped):
    make_run(user, 1, title="one", status="running")
    make_run(user, 1, title="two", status="paused")
    parent = make_run(user, 3, title="parent", status="finished")
    interrupted = make_run(user, 3, title="cut off", status="interrupted")
    before = Run.objects.count()
    r = client.post("/runs/start/", {"title": "third", "prompt": "Say hi", "budget": "0.3"})
    assert r.status_code == 429
    html = r.content.decode()
    assert "you have 2 active runs (queued, running or paused; the limit is 2" in html
    assert 'class="form-errors"' in html
    assert 'value="third"' in html and ">Say hi</textarea>" in html and 'value="0.3"' in html
    r = client.post("/runs/start/", {"demo": "call-now"}, headers={"HX-Request": "true"})
    assert r.status_code == 429 and b"the limit is 2" in r.content
    r = client.post(f"/runs/{parent.public_id}/fork/", {"step": "1"}, headers={"HX-Request": "true"})
    assert r.status_code == 429 and b"you have 2 active runs" in r.content
    r = client.post(f"/runs/{interrupted.public_id}/resume-interrupted/", headers={"HX-Request": "true"})
    assert r.status_code == 429 and b"you have 2 active runs" in r.content
    assert Run.objects.count() == before
    assert Run.objects.get(pk=interrupted.pk).status == "interrupted"


def test_the_server_wide_paused_cap(client, user, other_user, capped):
    for i in range(3):
        make_run(other_user, 1, title=f"theirs {i}", status="paused")
    running = make_run(user, 1, title="mine", status="running")
    r = client.post("/runs/start/", {"prompt": "Say hi"}, headers={"Accept": "application/json"})
    assert r.status_code == 429 and "already holds 3 paused runs" in r.json()["message"]
    r = client.post(f"/runs/{running.public_id}/pause/", headers={"HX-Request": "true"})
    assert r.status_code == 429 and b"SPELLIDE_MAX_PAUSED_RUNS" in r.content


@pytest.mark.django_db(transaction=True)
def test_under_the_cap_runs_start_and_zero_switches_it_off(client, user, other_user, capped):
    make_run(other_user, 1, title="bob's", status="running")
    make_run(other_user, 1, title="bob's too", status="running")
    make_run(user, 1, title="mine", status="running")
    r = client.post("/runs/start/", {"prompt": "Say hi"})    # 1 of 2: another user's do not count
    assert r.status_code == 302
    run = finish(Run.objects.filter(owner=user).order_by("-id").first())
    assert run.status == "finished"
    make_run(user, 1, title="mine too", status="paused")
    assert client.post("/runs/start/", {"prompt": "Say hi"}).status_code == 429
    capped.SPELLIDE_MAX_ACTIVE_RUNS_PER_USER = 0
    r = client.post("/runs/start/", {"prompt": "Say hi"})
    assert r.status_code == 302
    finish(Run.objects.filter(owner=user).order_by("-id").first())
