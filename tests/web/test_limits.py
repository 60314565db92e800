"""Run limits in the IDE: a runaway run fails at its memory limit in its own process while the
server and other runs go on; Stop ends a run that reaches no pause point (its process is
ended and the run is stopped, its record kept); a run evaluating its init program shows as
running; the new-run form sets the limits."""

from __future__ import annotations

import time

import pytest

from spellide.spell.api import RunConfig
from spellide.web import runner
from spellide.web.models import Effect, Run
from spellide.spell.api import OVERRUN_GRACE
from spellide.web.runner.persist import load_events

from .conftest import finish, wait_status

pytestmark = pytest.mark.django_db(transaction=True)

DOUBLING = '(loop [s "x" i 0] (if (< i 34) (recur (str s s) (inc i)) (count s)))'
# a loop that stays inside one step's evaluation: no pause point, no model call
ENDLESS = "(loop [i 0] (if (< i 1000000000000) (recur (inc i)) i))"
CATASTROPHIC = '(re-find #"(a|aa)+$" "' + "a" * 44 + '!")'


def test_a_run_past_its_memory_limit_fails_clearly_and_the_server_goes_on(user):
    run = finish(runner.start_run(user, RunConfig(init=DOUBLING, memory_mb=256), "doubling"), 60)
    assert run.status == "failed"
    assert run.error.startswith("Memory limit exceeded (256 MB)"), run.error
    assert run.error_kind == "memory-limit"
    after = finish(runner.start_run(user, RunConfig(prompt="hi"), "after"))
    assert after.status == "finished" and after.value == '"hello world"'


def test_stop_ends_a_run_that_reaches_no_pause_point(user):
    run = runner.start_run(user, RunConfig(init=ENDLESS), "endless")
    wait_status(run, "running")
    process = runner.get_active(run).execution.process
    time.sleep(0.3)
    stopped_at = time.monotonic()
    result = runner.control(run, "stop")
    assert result.ok
    run = finish(run, 30)
    took = time.monotonic() - stopped_at
    assert run.status == "stopped", (run.status, run.error)
    assert "its process was ended" in run.error
    assert took < runner.service.STOP_GRACE + 4, took
    assert not process.is_alive()
    last = load_events(run)[-1]
    assert last["type"] == "run_failed" and last["data"]["kind"] == "stopped"


def test_a_run_stopped_by_ending_its_process_keeps_its_steps_and_effects(user, scripted, tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    script = ["'(!call-now r (io/spit \"a.txt\" \"one\"))", ENDLESS]
    run = runner.start_run(user, RunConfig(prompt="P", model=scripted(script), workspace=str(ws)), "kept")

    def second_step_running() -> bool:
        return any(e["type"] == "program" and e["data"].get("step") == 1 for e in load_events(run))
    from .conftest import wait_until
    wait_until(second_step_running)
    runner.control(run, "stop")
    run = finish(run, 30)
    assert run.status == "stopped"
    assert list(Effect.objects.filter(run=run, name="io/spit").values_list("status", flat=True)) == ["live"]
    assert Effect.objects.filter(run=run, name="model/spell").count() == 2
    record = runner.record_of(run)
    assert [s["id"] for s in record.steps] == [0, 1]
    assert (ws / "a.txt").read_text() == "one"


def test_stop_at_a_pause_point_still_ends_the_run_without_ending_its_process(user, scripted):
    from spellide.spell.api import Breakpoints
    cfg = RunConfig(prompt="P", model=scripted(['"done"']), breakpoints=Breakpoints(before_model=True))
    run = runner.start_run(user, cfg, "paused")
    wait_status(run, "paused")
    execution = runner.get_active(run).execution
    runner.control(run, "stop")
    run = finish(run)
    assert run.status == "stopped" and run.error == "Run stopped by the user"
    assert not execution.killed


def test_a_run_evaluating_its_init_program_shows_as_running_and_stop_ends_it(user):
    """A catastrophic regex in the init program: the run is running (not queued) while it
    matches, and Stop ends it although the match never reaches a pause point."""
    run = runner.start_run(user, RunConfig(init=CATASTROPHIC), "regex")
    wait_status(run, "running", timeout=5)
    time.sleep(0.5)
    assert Run.objects.get(pk=run.pk).status == "running"
    runner.control(run, "stop")
    run = finish(run, 30)
    assert run.status == "stopped", (run.status, run.error)


def test_a_catastrophic_regex_ends_at_the_step_time_limit_in_wall_clock_time(user):
    """The regex package's timeout counts CPU time; a busy machine stretches it, so the run's
    process also ends itself once it is ``OVERRUN_GRACE`` past the limit."""
    started = time.monotonic()
    run = finish(runner.start_run(user, RunConfig(init=CATASTROPHIC, step_time_limit=2), "regex"), 60)
    assert run.status == "failed"
    assert run.error == "Step time limit exceeded (2 s)"
    assert run.error_kind == "timeout"
    assert time.monotonic() - started < 2 + OVERRUN_GRACE + 6


def test_a_long_call_past_the_step_time_limit_ends_the_runs_process(user):
    """Squaring a huge integer is one call in C that checks no deadline and keeps every thread of
    the run's process from running: the server ends the silent process past the time limit
    (plus the grace), with the limit's message."""
    squaring = "(loop [x 3 i 0] (if (< i 40) (recur (* x x) (inc i)) 1))"
    started = time.monotonic()
    run = finish(runner.start_run(user, RunConfig(init=squaring, step_time_limit=1), "squaring"), 60)
    assert run.status == "failed", run.error
    assert run.error_kind == "timeout"
    # the limit's own message, unless the long call kept it from being sent before the exit
    assert run.error in ("Step time limit exceeded (1 s)",
                         "Time limit exceeded (the run was ended inside one long call)")
    assert time.monotonic() - started < 30
    after = finish(runner.start_run(user, RunConfig(prompt="hi"), "after"))
    assert after.status == "finished"


def test_the_start_page_has_each_limit_field_once(client, user):
    """A second, empty ``memory_mb`` input (a merge left one) was posted after the first and
    won: the limit a person typed was dropped."""
    client.force_login(user)
    page = client.get("/").content.decode()
    for name in ("memory_mb", "step_time", "budget", "depth"):
        assert page.count(f'name="{name}"') == 1, name


def test_the_new_run_form_sets_the_limits(client, user):
    client.force_login(user)
    r = client.post("/runs/start/", {"program": "(+ 1 2)", "model": "hello", "memory_mb": "300",
                                     "step_time": "5"})
    assert r.status_code in (302, 303), r.content[:300]
    run = finish(Run.objects.get(owner=user))
    assert run.config["memory_mb"] == 300 and run.config["step_time_limit"] == 5.0
    assert run.status == "finished"


@pytest.mark.parametrize("data, message", [
    ({"memory_mb": "10"}, "memory limit (MB) must be at least 64"),
    ({"memory_mb": "lots"}, "memory limit (MB) must be a whole number"),
    ({"step_time": "nan"}, "step time limit (s) must be a positive number of seconds"),
    ({"step_time": "0"}, "step time limit (s) must be a positive number of seconds"),
])
def test_the_new_run_form_refuses_bad_limits(client, user, data, message):
    client.force_login(user)
    r = client.post("/runs/start/", {"program": "(+ 1 2)", "model": "hello", **data})
    assert r.status_code == 422
    assert message in r.content.decode()
    assert not Run.objects.exists()


def test_the_new_run_form_shows_the_limit_fields(client, user):
    client.force_login(user)
    page = client.get("/").content.decode()
    assert 'name="memory_mb"' in page and 'name="step_time"' in page


def test_an_action_on_an_announced_pause_waits_for_its_checkpoint():
    """The run's ``paused`` event reaches the page (and the database) just before its pause
    point reaches the controller: a Resume in between waits for it instead of being taken as
    cancelling a pause request (which left the run paused for good)."""
    import threading

    from spellide.spell import api
    from spellide.web.runner.controller import IdeController
    controller = IdeController()
    controller.act("pause")
    controller.pause_coming()
    results = []
    acting = threading.Thread(target=lambda: results.append(controller.act("resume")))
    acting.start()
    time.sleep(0.2)
    decision = controller.checkpoint(api.PausePoint(api.BEFORE_MODEL, 0, "(do "))
    acting.join(5)
    assert results and results[0].ok and results[0].message == "resumed"
    assert decision.action == api.CONTINUE
