"""The Charts view of a real run: the figures it draws equal the run's stored figures, edit-time
removal shows where a prune shrank the prefix, and a 10,000-step run is downsampled."""

from __future__ import annotations

import re

import pytest

from spellide.spell.api import RunConfig
from spellide.web import charts, runner
from spellide.web.models import Run, Step

from .conftest import finish
from .pagedata import make_run

pytestmark = pytest.mark.django_db(transaction=True)

PRUNE_SCRIPT = [
    "(def a \"" + "x" * 400 + "\") '(!extend)",
    "(prune 2) (def b 2) '(!extend)",
    "(+ b 1)",
]


def test_charts_show_the_run_figures(client, user, scripted):
    run = finish(runner.start_run(user, RunConfig(prompt="P", model=scripted(PRUNE_SCRIPT)), "prune"))
    assert run.status == Run.Status.FINISHED, run.error
    client.force_login(user)
    r = client.get(f"/runs/{run.public_id}/charts/")
    assert r.status_code == 200
    html = r.content.decode()
    for box in ("chart-context", "chart-tokens", "chart-waterfall"):
        assert f'id="{box}"' in html and "<svg" in html
    steps = list(Step.objects.filter(run=run).order_by("step_id"))
    # every step's point carries its prefix length, as stored
    for s in steps:
        assert re.search(rf'class="pt s-context"[^>]*data-step="{s.step_id}" data-value="{len(s.prefix_text())}"', html), s.step_id
    # the prune removed the 400-character definition between step 1's program and step 2's prefix
    removed = len(steps[1].program_text()) - len(steps[2].prefix_text())
    assert removed > 400
    assert re.search(rf'class="bar s-removed"[^>]*data-step="2" data-value="{removed}"', html)
    data = charts.summary(charts.run_charts(run))
    assert data["removed"] == removed and data["steps"] == 3
    part = client.get(f"/runs/{run.public_id}/charts/", HTTP_HX_REQUEST="true").content.decode()
    assert part.startswith('<section class="run-view charts-view"')


def test_a_long_run_is_downsampled(client, user, monkeypatch):
    monkeypatch.setattr(charts, "MAX_POINTS", 40)
    run = make_run(user, 120, title="long", bulk=True)
    c = charts.run_charts(run)
    assert c.steps == 120 and len(c.points) == 40 and c.bucket == 3
    assert c.points[0].first == 0 and c.points[-1].last == 119
    assert c.points[1].input_tokens == 30      # a bucket sums its steps' tokens
    client.force_login(user)
    html = client.get(f"/runs/{run.public_id}/charts/").content.decode()
    assert 'id="charts-downsampled"' in html and html.count('class="pt s-context"') == 40


def test_charts_follow_access(client, user, other_user):
    run = make_run(user, 3)
    client.force_login(other_user)
    assert client.get(f"/runs/{run.public_id}/charts/").status_code == 404
    Run.objects.filter(pk=run.pk).update(share_token="tok-charts")
    client.logout()
    assert client.get("/share/tok-charts/charts/").status_code == 200
