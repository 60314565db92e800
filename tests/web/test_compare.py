"""Compare two runs: a fork with an edit first diverges at its fork step; the page shows the
structural diff there, which effects the fork reused from the cache and which differ, and the
cost / tokens / time of each run."""

from __future__ import annotations

import pytest

from spellide.web import runner
from spellide.web.compare import compare_runs
from spellide.web.models import Run, Step

from .conftest import finish
from .pagedata import make_run
from .test_runner import io_config

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def parent_and_fork(user, scripted, tmp_path):
    parent = finish(runner.start_run(user, io_config(scripted, tmp_path), "io"))
    program = Step.objects.get(run=parent, step_id=2).program_text()
    edited = program.replace("(str n)", "(str (* 10 n))")
    assert edited != program
    fork = finish(runner.fork_run(parent, user, 2, text=edited))
    assert fork.status == Run.Status.FINISHED, fork.error
    return parent, fork


def test_first_divergence_of_a_fork_with_an_edit_is_the_fork_step(parent_and_fork):
    parent, fork = parent_and_fork
    c = compare_runs(parent, fork)
    assert c.first_divergence == 2 and c.selected == 2
    assert [r.diverged for r in c.rows[:2]] == [False, False]
    row = next(r for r in c.rows if r.step == 2)
    assert "program" in row.differs and "completion" not in row.differs
    assert any(g.get("row") is not None for g in c.groups)          # the structural diff has a change
    verdicts = {e["b"].name: e for e in c.effect_rows if e["b"] is not None}
    assert verdicts["model/spell"]["reused"] and verdicts["model/spell"]["verdict"] == "same result"
    assert verdicts["io/spit"]["verdict"] in ("different effect or arguments", "different result")
    earlier = compare_runs(parent, fork, step=1).effect_rows
    assert earlier and all(e["reused"] and e["verdict"] == "same result" for e in earlier)


def test_compare_page(client, user, other_user, parent_and_fork):
    parent, fork = parent_and_fork
    client.force_login(user)
    r = client.get(f"/runs/{parent.public_id}/compare/{fork.public_id}/")
    assert r.status_code == 200
    html = r.content.decode()
    assert 'data-first-divergence="2"' in html and 'id="effect-diff"' in html
    assert 'class="diverged first-div selected"' in html
    assert "reused (hit)" in html and 'id="chart-compare-context"' in html
    assert client.get(f"/runs/{parent.public_id}/compare/{fork.public_id}/?step=x").status_code == 400
    same = client.get(f"/runs/{parent.public_id}/compare/{parent.public_id}/").content.decode()
    assert "No divergence" in same
    r = client.get(f"/compare/?run={parent.public_id}&run={fork.public_id}")
    assert r.status_code == 302 and r["Location"] == f"/runs/{parent.public_id}/compare/{fork.public_id}/"
    assert client.get("/compare/?run=nope").status_code == 400
    client.force_login(other_user)
    assert client.get(f"/runs/{parent.public_id}/compare/{fork.public_id}/").status_code == 404


def test_compare_of_long_runs_sends_a_window(client, user):
    a = make_run(user, 150, title="a", bulk=True)
    b = make_run(user, 150, title="b", bulk=True)
    c = compare_runs(a, b)
    assert c.total == 150 and c.first_divergence is None and len(c.rows) <= 80 and c.later == 150 - len(c.rows)
    client.force_login(user)
    html = client.get(f"/runs/{a.public_id}/compare/{b.public_id}/?step=100").content.decode()
    assert html.count("<tr data-step=") <= 80 and 'data-step="100"' in html


def test_fork_pages_link_the_comparison(client, user, parent_and_fork):
    parent, fork = parent_and_fork
    client.force_login(user)
    html = client.get(f"/runs/{fork.public_id}/").content.decode()
    assert f'href="/runs/{parent.public_id}/compare/{fork.public_id}/" id="compare-parent"' in html
    forks = client.get(f"/runs/{parent.public_id}/forks/").content.decode()
    assert f'href="/runs/{parent.public_id}/compare/{fork.public_id}/"' in forks


def test_the_run_list_selects_two_runs_to_compare(client, user):
    a, b = make_run(user, 2, title="a"), make_run(user, 2, title="b")
    client.force_login(user)
    html = client.get("/").content.decode()
    assert 'id="compare-form"' in html and html.count('form="compare-form"') == 2
    r = client.get(f"/compare/?run={a.public_id}&run={b.public_id}")
    assert r.status_code == 302 and r["Location"] == f"/runs/{a.public_id}/compare/{b.public_id}/"
