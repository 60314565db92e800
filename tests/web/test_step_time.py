"""A step's time is the time it ran, not the time it sat paused at a breakpoint: on a fresh
page (rows and detail) and in the streamed step_finished event alike."""

from __future__ import annotations

import time

import pytest

from spellide.web.models import RunEvent, Step
from spellide.web import stepinfo

from .conftest import wait_status, wait_until
from .test_controls import _fast, client, htmx, run_from  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db(transaction=True)


def test_time_spent_paused_is_not_the_steps_time(client):  # noqa: F811
    run = run_from(client.post("/runs/start/", {"prompt": "Count down", "model": "demo:countdown",
                                                "bp_before_model": "1"}))
    run = wait_status(run, "paused")
    time.sleep(1.2)
    assert htmx(client, f"/runs/{run.public_id}/resume/").status_code == 200
    from spellide.web.models import Run
    wait_until(lambda: (Run.objects.get(pk=run.pk).pause or {}).get("step") == 1, 20)   # step 1 stops too
    client.post(f"/runs/{run.public_id}/stop/")
    step0 = Step.objects.get(run=run, step_id=0)
    wall = (step0.finished_at - step0.started_at).total_seconds() * 1000
    assert wall > 1200                                       # it was paused that long
    row = stepinfo.window_around(run, 0, 5).rows[0]
    assert row["id"] == 0 and row["ms"] < 1000, row
    finished = RunEvent.objects.get(run=run, type="step_finished", data__step=0)
    assert finished.data["duration_ms"] < 1000
    html = client.get(f"/runs/{run.public_id}/steps/0/").content.decode()
    assert 'id="detail-0-ms">1.' not in html and 'id="detail-0-ms">2.' not in html
