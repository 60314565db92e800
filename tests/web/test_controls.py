"""The control endpoints (POST): login, CSRF and owner checks, starting runs from the form
(demos, programs, breakpoints, workspaces), forks, share links, and the set-up commands."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client

from spellide.spell.api import Breakpoints, RunConfig
from spellide.web import runner
from spellide.web.access import can_view
from spellide.web.demos import get_demo, list_demos
from spellide.web.models import Effect, Run

from .conftest import finish, wait_status, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fast(fast_demos):
    return fast_demos


@pytest.fixture
def client(user) -> Client:
    c = Client()
    c.force_login(user)
    return c


def htmx(client: Client, url: str, data: dict | None = None):
    return client.post(url, data or {}, headers={"HX-Request": "true"})


def run_from(resp) -> Run:
    url = resp["HX-Redirect"] if resp.has_header("HX-Redirect") else resp["Location"]
    public_id = url.rstrip("/").split("/")[-1]
    return Run.objects.get(public_id=public_id)


def test_login_required_everywhere(user):
    anon = Client()
    r = anon.post("/runs/start/", {"demo": "call-now"})
    assert r.status_code == 302 and "/accounts/login/" in r["Location"]
    run = Run.objects.create(owner=user, title="x")
    for action in ("pause", "resume", "stop", "fork", "share"):
        r = anon.post(f"/runs/{run.public_id}/{action}/")
        assert r.status_code == 302 and "/accounts/login/" in r["Location"]
    assert anon.get("/accounts/login/").status_code == 200


def test_csrf_is_checked(user):
    c = Client(enforce_csrf_checks=True)
    c.force_login(user)
    assert c.post("/runs/start/", {"demo": "call-now"}).status_code == 403


def test_owner_checked(user, other_user):
    run = Run.objects.create(owner=user, title="x", status="paused")
    c = Client()
    c.force_login(other_user)
    for action in ("pause", "resume", "step", "stop", "edit", "approve", "reject", "fork", "share",
                   "unshare", "resume-interrupted"):
        assert c.post(f"/runs/{run.public_id}/{action}/", {"text": "1", "step": 0}).status_code == 404
    assert c.get(f"/runs/{run.public_id}/status.json").status_code == 404


def test_start_a_demo_from_the_form(client, user):
    r = htmx(client, "/runs/start/", {"demo": "io-task"})
    assert r.status_code == 200 and r.has_header("HX-Redirect")
    run = finish(run_from(r), 60)
    assert run.status == "finished", run.error
    assert run.demo == "io-task" and run.value == '{:items 3 :written "done.txt"}'
    ws = Path(run.config["workspace"])
    assert ws == runner.workspace_path(run.public_id)
    assert (ws / "done.txt").read_text().startswith("[x] write the parser")
    assert (Path(get_demo("io-task").workspace_seed) / "done.txt").exists() is False
    status = client.get(f"/runs/{run.public_id}/status.json").json()
    assert status["status"] == "finished" and status["totals"]["effects_executed"] == 9


def test_start_with_a_program_breakpoints_and_limits(client):
    r = client.post("/runs/start/", {"program": "(eval '(!llm-self \"(do \"))", "model": "hello",
                                     "depth": "3", "budget": "0", "bp_before_model": "on",
                                     "effect_kinds": "io, model/text", "title": "mine"})
    assert r.status_code == 302
    run = run_from(r)
    assert run.title == "mine"
    assert run.config["breakpoints"] == {"before_model": True, "after_completion": False,
                                         "on_error": False, "effect_kinds": ["io", "model/text"]}
    assert run.config["depth"] == 3 and run.config["budget"] is None
    run = wait_status(run, "paused")
    assert run.pause["point"] == "before_model"
    r = htmx(client, f"/runs/{run.public_id}/resume/")
    assert r.status_code == 200
    run = finish(run)
    assert run.status == "finished" and run.value == '"hello world"'


@pytest.mark.parametrize("data,message", [
    ({"program": "(do ]"}, b"does not read: Unmatched delimiter: ] at line 1, column 5"),
    ({"prompt": "x", "model": "scripted:/etc/passwd"}, b"unknown demo model"),
    ({"prompt": "x", "model": "replay:/etc/passwd"}, b"unknown recorded run"),
    ({"prompt": "x", "model": "file:/x"}, b"unknown model"),
    ({"prompt": "x", "program": "1"}, b"not both"),
    ({}, b"needs a prompt"),
    ({"prompt": "x", "depth": "zero"}, b"whole number"),
    ({"prompt": "x", "model": "profile:no-such-profile"}, b"unknown model"),
    ({"demo": "../settings"}, b"unknown demo"),
    ({"prompt": "x", "workspace": "../../etc"}, b"unknown workspace"),
])
def test_start_refuses_bad_input(client, data, message):
    r = htmx(client, "/runs/start/", data)
    assert r.status_code == 422 and message in r.content, r.content
    assert Run.objects.count() == 0


def test_fork_and_replay_through_post(client, user):
    parent = finish(run_from(htmx(client, "/runs/start/", {"demo": "call-now"})), 60)
    assert parent.status == "finished"
    r = htmx(client, f"/runs/{parent.public_id}/fork/", {"step": "1"})
    fork = finish(run_from(r), 60)
    assert fork.parent_run == parent and fork.fork_step == 1 and fork.value == parent.value
    assert set(Effect.objects.filter(run=fork, step_id__lte=1).values_list("status", flat=True)) == {"hit"}
    r = htmx(client, f"/runs/{parent.public_id}/fork/", {"step": "0", "text": "(do ]"})
    assert r.status_code == 422 and b"data-line=" in r.content
    r = htmx(client, f"/runs/{parent.public_id}/fork/", {"step": "99"})
    assert r.status_code == 422
    # replay a recorded run as the model of a new run: every model call is a cache hit
    r = htmx(client, "/runs/start/", {"prompt": "Add up the numbers in numbers.txt.",
                                      "model": f"replay:{parent.public_id}", "workspace": "call-now"})
    replay = finish(run_from(r), 60)
    assert replay.status == "finished", replay.error
    assert replay.value == parent.value
    assert replay.totals["effects_executed"] == 0 and replay.totals["effects_reused"] == 4


def test_share_link_create_and_revoke(client, user, other_user):
    run = Run.objects.create(owner=user, title="x", status="finished")
    r = client.post(f"/runs/{run.public_id}/share/", headers={"Accept": "application/json"})
    token = r.json()["token"]
    run.refresh_from_db()
    assert run.share_token == token and len(token) >= 24
    assert can_view(None, run, token) and not can_view(None, run, token + "x") and not can_view(None, run)
    assert not can_view(other_user, run) and can_view(user, run)
    htmx(client, f"/runs/{run.public_id}/unshare/")
    run.refresh_from_db()
    assert run.share_token is None and not can_view(None, run, token)


def test_resume_interrupted_endpoint(client, user, scripted):
    run = Run.objects.create(owner=user, title="x", status="finished")
    r = htmx(client, f"/runs/{run.public_id}/resume-interrupted/")
    assert r.status_code == 409
    cfg = RunConfig(prompt="P", model=scripted(["(def a 1) '(!extend)", "a"]),
                    breakpoints=Breakpoints(before_model=True))
    live = runner.start_run(user, cfg, "p")
    wait_status(live, "paused")
    r = htmx(client, f"/runs/{live.public_id}/resume-interrupted/")
    assert r.status_code == 409
    runner.control(live, "stop")
    finish(live)


def test_ensure_local_user_and_load_demos(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    out = io.StringIO()
    call_command("ensure_local_user", stdout=out)
    line = out.getvalue().strip()
    assert line.startswith("Sign in at http://127.0.0.1:8000/ as spell / ")
    password = line.rsplit(" ", 1)[1]
    assert (tmp_path / "local-user.txt").read_text().splitlines()[1] == f"password={password}"
    assert oct((tmp_path / "local-user.txt").stat().st_mode & 0o777) == "0o600"
    out2 = io.StringIO()
    call_command("ensure_local_user", stdout=out2)
    assert out2.getvalue().strip() == line                      # idempotent
    c = Client()
    assert c.login(username="spell", password=password)
    out = io.StringIO()
    call_command("load_demos", stdout=out)
    recorded = [d.name for d in list_demos() if d.record]
    assert len(recorded) >= 1
    assert Run.objects.filter(demo__in=recorded, status="finished").count() == len(recorded)
    call_command("load_demos", stdout=io.StringIO())           # idempotent
    assert Run.objects.filter(demo__in=recorded).count() == len(recorded)


def test_demos_are_complete():
    names = {d.name for d in list_demos()}
    assert {"call-now", "peek-prune", "rethink", "persist", "io-task", "xss"} <= names
    xss = get_demo("xss")
    text = json.dumps(json.loads(xss.path.read_text())["completions"])
    assert "<script>" in text and "onerror=" in text


def test_a_provider_failing_after_its_retries_pauses_the_run_for_retry_or_edit(client, tmp_path, monkeypatch):
    """Issue 4: when a provider's retries are exhausted the run pauses on the error (shown on
    the page) instead of failing; resuming retries the call, and the prefix can be edited
    first. Real HTTP server on 127.0.0.1, the run service's own thread and controller."""
    from tests.providers.servers import ModelServer, Reply

    with ModelServer(default=Reply(text="(def a 1) '(!extend)")) as srv:
        profiles = tmp_path / "models.toml"
        profiles.write_text(f'[profiles.flaky]\nprovider = "openai"\nbase_url = "{srv.openai_url}"\n'
                            f'model = "fake-model"\ntransport = "message"\napi_key_env = "FLAKY_KEY"\n'
                            f'max_retries = 1\nbackoff_base = 0.01\nbackoff_max = 0.02\n')
        monkeypatch.setenv("SPELLIDE_MODELS", str(profiles))
        monkeypatch.setenv("FLAKY_KEY", "sk-flaky-key-123")
        down = Reply(status=500, error_message="upstream <b>down</b>")
        srv.push(down, down)
        run = run_from(client.post("/runs/start/", {"prompt": "P", "model": "profile:flaky", "budget": "0"}))
        run = wait_status(run, "paused")
        assert run.pause["point"] == "on_model_error" and "down" in run.pause["error"]
        html = client.get(f"/runs/{run.public_id}/").content.decode()
        assert "upstream &lt;b&gt;down&lt;/b&gt;" in html and "sk-flaky" not in html
        assert len(srv.requests) == 2                      # the call and its one retry

        # retry: the next two requests fail again -> paused again; then edit the prefix
        srv.push(Reply(status=500), Reply(status=500))
        assert htmx(client, f"/runs/{run.public_id}/resume/").status_code == 200
        wait_until(lambda: len(srv.requests) == 4, 20)
        run = wait_status(run, "paused")
        prefix = run.pause["text"]                         # the prefix the failed call would send
        assert '(quine prompt "P")' in prefix
        srv.push(Reply(text="42"))
        r = htmx(client, f"/runs/{run.public_id}/resume/", {"text": prefix.replace('"P"', '"P, edited"')})
        assert r.status_code == 200
        run = finish(run)
        assert run.status == "finished" and run.value == "42"
        assert len(srv.requests) == 5 and "P, edited" in srv.requests[-1].body["messages"][-1]["content"]
