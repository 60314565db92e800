"""Finding things (issue 10 rough edge 7): filtering the run list, searching a run's steps
(on a 10,000-step run, by database query, paged), and renaming, tagging and deleting runs
(owner only, POST with CSRF; deleting removes records, journal and workspace)."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from pathlib import Path

import pytest
from django.test import Client

from spellide.web.models import Effect, ProgramVersion, Run, RunEvent, RunTag, Step
from spellide.web.run_manage import set_tags
from spellide.web.runner import make_workspace
from spellide.web.runner.journal import journal_path

from .pagedata import make_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(user) -> Client:
    c = Client()
    c.force_login(user)
    return c


def listed(client: Client, **params) -> list[str]:
    html = client.get("/", params).content.decode()
    return re.findall(r'<td><a href="/runs/[0-9a-f-]+/">([^<]*)</a>', html)


def test_the_run_list_filters_by_title_status_model_tag_and_date(client, user, other_user):
    a = make_run(user, 1, title="parse the logs", status="finished")
    b = make_run(user, 1, title="Parse CSV", status="failed")
    c = make_run(user, 1, title="write a poem", status="stopped")
    make_run(other_user, 1, title="parse theirs", status="finished")
    Run.objects.filter(pk=c.pk).update(config={"model": "profile:openai-tc"},
                                       created_at=dt.datetime(2026, 1, 5, tzinfo=dt.timezone.utc))
    Run.objects.filter(pk=b.pk).update(created_at=dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc))
    set_tags(a, ["logs", "prod"])
    set_tags(c, ["prod"])
    assert sorted(listed(client, q="parse")) == ["Parse CSV", "parse the logs"]
    assert listed(client, status="failed") == ["Parse CSV"]
    assert listed(client, model="openai") == ["write a poem"]
    assert sorted(listed(client, tag="prod")) == ["parse the logs", "write a poem"]
    assert listed(client, q="parse", tag="prod") == ["parse the logs"]
    assert listed(client, until="2026-02-01") == ["write a poem"]
    assert sorted(listed(client, since="2026-02-01", until="2026-06-30")) == ["Parse CSV"]
    html = client.get("/", {"q": "nothing like it"}).content.decode()
    assert "No run matches these filters" in html
    html = client.get("/", {"since": "yesterday", "q": "parse"}).content.decode()
    assert "a date such as 2026-12-03" in html and "(filters not applied)" in html
    assert len(re.findall(r'<td><a href="/runs/', html)) == 3       # nothing filtered, none hidden
    html = client.get("/", {"tag": "prod"}).content.decode()
    assert 'href="/?tag=logs"' in html and 'value="prod"' in html   # chips, and the filter kept


def test_the_run_list_pages_keep_the_filters(client, user):
    for i in range(55):
        make_run(user, 1, title=f"batch {i}", status="finished")
    make_run(user, 1, title="other", status="finished")
    html = client.get("/", {"q": "batch"}).content.decode()
    assert "55 runs found" in html and 'href="?q=batch&amp;page=2"' in html
    assert len(listed(client, q="batch", page="2")) == 5


def test_rename_tag_and_delete_are_owner_only_posts_with_csrf(user, other_user):
    run = make_run(user, 2, title="mine", status="finished")
    theirs = Client()
    theirs.force_login(other_user)
    for action, data in (("rename", {"title": "x"}), ("tags", {"tags": "x"}), ("delete", {})):
        assert theirs.post(f"/runs/{run.public_id}/{action}/", data).status_code == 404
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    for action, data in (("rename", {"title": "x"}), ("tags", {"tags": "x"}), ("delete", {})):
        assert strict.post(f"/runs/{run.public_id}/{action}/", data).status_code == 403
    owner = Client()
    owner.force_login(user)
    for action in ("rename", "tags", "delete"):
        assert owner.get(f"/runs/{run.public_id}/{action}/").status_code == 405
    run.refresh_from_db()
    assert run.title == "mine" and not RunTag.objects.exists()


def test_rename_and_tag(client, user):
    run = make_run(user, 1, title="old name", status="finished")
    r = client.post(f"/runs/{run.public_id}/rename/", {"title": "  new <name> ", "next": "/?q=new"})
    assert r.status_code == 302 and r["Location"] == "/?q=new"
    assert Run.objects.get(pk=run.pk).title == "new <name>"
    r = client.post(f"/runs/{run.public_id}/rename/", {"title": "t" * 201}, headers={"HX-Request": "true"})
    assert r.status_code == 422 and b"at most 200 characters" in r.content
    r = client.post(f"/runs/{run.public_id}/rename/", {"title": "x", "next": "https://evil.example/"})
    assert r["Location"] == "/"
    r = client.post(f"/runs/{run.public_id}/tags/", {"tags": "Prod, logs prod"}, headers={"HX-Request": "true"})
    assert r.status_code == 200 and b"tagged prod, logs" in r.content
    assert sorted(run.tags.values_list("name", flat=True)) == ["logs", "prod"]
    r = client.post(f"/runs/{run.public_id}/tags/", {"tags": "logs <b>"}, headers={"HX-Request": "true"})
    assert r.status_code == 422 and b"is not a tag" in r.content
    assert sorted(run.tags.values_list("name", flat=True)) == ["logs", "prod"]
    client.post(f"/runs/{run.public_id}/tags/", {"tags": "logs"})
    assert list(run.tags.values_list("name", flat=True)) == ["logs"]


def test_delete_removes_records_journal_workspace_and_replay_record(client, user, settings):
    run = make_run(user, 5, title="doomed", status="finished", payload="p")
    keep = make_run(user, 2, title="kept", status="finished")
    fork = make_run(user, 2, title="a fork", status="finished", parent=run, fork_step=1)
    RunEvent.objects.create(run=run, seq=1, type="run_started", data={}, created_at=run.created_at)
    set_tags(run, ["x"])
    ws = Path(make_workspace(run.public_id))
    (ws / "notes.txt").write_text("hello")
    jp = journal_path(run.public_id)
    jp.parent.mkdir(parents=True, exist_ok=True)
    jp.write_text(json.dumps({"seq": 1}) + "\n")
    record = Path(settings.RECORDS_DIR) / f"{run.public_id}.json"
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text("{}")
    counts = {m: m.objects.filter(run=keep).count() for m in (Step, Effect, ProgramVersion)}
    r = client.post(f"/runs/{run.public_id}/delete/", {"next": "/"})
    assert r.status_code == 302
    assert not Run.objects.filter(pk=run.pk).exists()
    for model in (Step, Effect, ProgramVersion, RunEvent, RunTag):
        assert not model.objects.filter(run_id=run.pk).exists(), model
    assert not ws.exists() and not jp.exists() and not record.exists()
    assert {m: m.objects.filter(run=keep).count() for m in counts} == counts
    fork.refresh_from_db()
    assert fork.parent_run is None
    assert client.get(f"/runs/{run.public_id}/").status_code == 404


def test_an_active_run_is_not_deleted(client, user):
    run = make_run(user, 1, title="busy", status="paused")
    r = client.post(f"/runs/{run.public_id}/delete/", headers={"HX-Request": "true"})
    assert r.status_code == 409 and b"stop it before deleting it" in r.content
    assert Run.objects.filter(pk=run.pk).exists()


def big_run(owner, steps: int = 10_000) -> Run:
    """A run of ``steps`` steps made directly (the texts are short; what matters is the count)."""
    run = Run.objects.create(owner=owner, title="big", status="finished", config={"model": "hello"})
    t0 = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
    pv = ProgramVersion.store(run, "(quine completion (eval (do (def needle-in-prefix 1) ")
    rows, effects = [], []
    for i in range(steps):
        rows.append(Step(run=run, step_id=i, parent=i - 1 if i else None, depth=i + 1, started_at=t0,
                         status="failed" if i % 1000 == 999 else "continued",
                         completion=f"(def v{i} {i}) '(!extend)" + (" (io/spit \"needle.txt\" 1)" if i == 7777 else ""),
                         value=f"[{i} :done]" if i == steps - 1 else None,
                         error="Unbound symbol: needle-in-error" if i == 4242 else None,
                         prefix_version=pv if i == 0 else None))
        effects.append(Effect(run=run, step_id=i, ordinal=0, name="model/spell", status="live"))
        if i in (7777, 8888):
            effects.append(Effect(run=run, step_id=i, ordinal=1, name="io/spit", status="live"))
    Step.objects.bulk_create(rows, batch_size=2000)
    Effect.objects.bulk_create(effects, batch_size=2000)
    return run


def found(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'class="step-link hit" data-step="(\d+)"', html)]


def test_step_search_on_a_10000_step_run(client, user, django_assert_max_num_queries):
    run = big_run(user)
    url = f"/runs/{run.public_id}/steps/search/"
    hx = {"HX-Request": "true"}
    t0 = time.perf_counter()
    with django_assert_max_num_queries(6):
        r = client.get(url, {"q": "needle.txt"}, headers=hx)
    elapsed = time.perf_counter() - t0
    assert r.status_code == 200 and found(r.content.decode()) == [7777]
    assert "<mark>needle.txt</mark>" in r.content.decode() and "completion:" in r.content.decode()
    assert elapsed < 2.0, elapsed
    assert found(client.get(url, {"q": "needle-in-error"}, headers=hx).content.decode()) == [4242]
    assert found(client.get(url, {"q": "needle-in-error", "where": "completion"}, headers=hx).content.decode()) == []
    assert found(client.get(url, {"q": "NEEDLE-IN-PREFIX", "where": "prefix"}, headers=hx).content.decode()) == [0]
    assert found(client.get(url, {"q": ":done", "where": "value"}, headers=hx).content.decode()) == [9999]
    assert found(client.get(url, {"effect": "io"}, headers=hx).content.decode()) == [7777, 8888]
    assert found(client.get(url, {"effect": "io/spit", "q": "needle"}, headers=hx).content.decode()) == [7777]
    # status: ten failed steps; many hits come a page at a time with the total
    html = client.get(url, {"status": "failed"}, headers=hx).content.decode()
    assert found(html) == list(range(999, 10_000, 1000)) and 'data-count="10"' in html
    html = client.get(url, {"q": "extend"}, headers=hx).content.decode()
    assert 'data-count="10000"' in html and found(html) == list(range(50)) and "page 1 of 200" in html
    html = client.get(url, {"q": "extend", "page": "3"}, headers=hx).content.decode()
    assert found(html) == list(range(100, 150)) and "page=4" in html
    r = client.get(url, {"effect": "<script>"}, headers=hx)
    assert r.status_code == 400 and b"an effect kind is a namespace" in r.content


def test_step_search_page_form_and_share_link(client, user):
    run = make_run(user, 4, title="small", payload="findme")
    html = client.get(f"/runs/{run.public_id}/").content.decode()
    assert 'class="step-search"' in html and f'hx-get="/runs/{run.public_id}/steps/search/"' in html
    assert 'id="step-hits"' in html
    r = client.get(f"/runs/{run.public_id}/steps/search/", {"q": "findme"})
    assert r.status_code == 200 and "<html" in r.content.decode() and found(r.content.decode()) == [0, 1, 2, 3]
    Run.objects.filter(pk=run.pk).update(share_token="tok-find")
    anon = Client()
    r = anon.get("/share/tok-find/steps/search/", {"q": "findme"})
    assert r.status_code == 200 and 'href="/share/tok-find/steps/0/"' in r.content.decode()
    assert anon.get("/share/wrong/steps/search/", {"q": "findme"}).status_code == 404
