"""A multi-agent run's events through the real persistence path (``RunPersister``): steps keep
their agent and generation, agents their status intervals, messages their receipts; a
single-agent run gets none of these rows and reads as before."""

from __future__ import annotations

import pytest

from spellide.spell.api import events as ev
from spellide.web.models import MAIN_AGENT, Agent, Message, Receipt, Run, Step
from spellide.web.runner.persist import RunPersister

from .agent_events import T0, as_events, fan_out_events

pytestmark = pytest.mark.django_db


def persist(run: Run, items, mode: str = "sync", start_seq: int = 0) -> RunPersister:
    writer = RunPersister(run, mode=mode, broadcast=False)
    for e in as_events(items, start_seq):
        writer(e)
    writer.close()
    assert writer.error is None
    return writer


@pytest.fixture
def run(user):
    return Run.objects.create(owner=user, title="fan-out")


@pytest.mark.parametrize("mode", ["sync", "inline"])
def test_steps_keep_their_agent_and_generation(run, mode):
    persist(run, fan_out_events(), mode)
    got = list(Step.objects.filter(run=run).order_by("step_id").values_list("step_id", "agent", "generation"))
    assert got == [(1, ":main", 1), (2, ":a", 1), (3, ":b", 1), (4, ":main", 1)]


def test_agents_have_parents_order_and_status_intervals(run):
    persist(run, fan_out_events())
    agents = {a.handle: a for a in Agent.objects.filter(run=run)}
    assert [a.handle for a in Agent.objects.filter(run=run).order_by("order")] == [":main", ":a", ":b"]
    assert agents[":main"].parent is None and agents[":a"].parent == ":main"
    assert agents[":a"].spawn_step == 1
    assert {h: a.status for h, a in agents.items()} == {":main": "finished", ":a": "finished", ":b": "finished"}
    main = [(s, round(a - T0, 3), None if b is None else round(b - T0, 3), g) for s, a, b, g in agents[":main"].intervals]
    assert main == [("running", 0.0, 0.7, 1), ("sleeping", 0.7, 2.1, 1), ("running", 2.1, 2.8, 1),
                    ("finished", 2.8, None, 1)]
    a = [(s, round(x - T0, 3)) for s, x, _, _ in agents[":a"].intervals]
    assert a == [("running", 0.6), ("finished", 1.5)]


def test_messages_and_their_receipts(run):
    persist(run, fan_out_events())
    msgs = list(Message.objects.filter(run=run).order_by("seq"))
    assert [(m.msg_id, m.kind, m.sender, m.targets, m.edge, m.step_id) for m in msgs] == [
        ("1", "request", ":main", [":a", ":b"], 1, 1), ("2", "report", "[:a :b]", [":main"], 1, 3)]
    assert msgs[1].body.startswith("[{:from :a")
    rcpt = sorted(Receipt.objects.filter(run=run).values_list("msg_id", "agent", "step_id", "site", "name"))
    assert rcpt == [("1", ":a", 2, "startup", "msg-1"), ("1", ":b", 3, "startup", "msg-1"),
                    ("2", ":main", 4, "wait-resume", "msg-1")]


def test_a_repeated_status_does_not_start_an_interval(run):
    items = fan_out_events(finish=False)
    items.append((ev.AGENT, {"agent": ":main", "parent": None, "status": "running", "generation": 1}, T0 + 2.3))
    persist(run, items)
    main = Agent.objects.get(run=run, handle=":main")
    assert [i[0] for i in main.intervals] == ["running", "sleeping", "running"]
    assert main.intervals[-1][2] is None      # still open: it lasts until the latest event


def test_a_resumed_execution_does_not_store_messages_twice(run):
    items = fan_out_events()
    persist(run, items)
    # a resume replays the record: the same messages and receipts are reported again
    again = [x for x in items if x[0] in (ev.MESSAGE, ev.RECEIPT)]
    persist(run, again, start_seq=len(items))
    assert Message.objects.filter(run=run).count() == 2
    assert Receipt.objects.filter(run=run).count() == 3


def test_the_root_is_a_lane_even_when_only_spawned_agents_are_announced(run):
    items = [x for x in fan_out_events() if not (x[0] == ev.AGENT and x[1]["agent"] == MAIN_AGENT)]
    persist(run, items)
    main = Agent.objects.get(run=run, handle=MAIN_AGENT)
    assert main.order == 0 and main.intervals[0][:2] == ["running", T0]


def test_a_single_agent_run_gets_no_agent_rows(run):
    items = [(ev.RUN_STARTED, {"config": {}}, T0),
             (ev.STEP_STARTED, {"step": 1, "parent": None, "depth": 1, "prefix": "(quine", "model": "m"}, T0 + 0.1),
             (ev.STEP_FINISHED, {"step": 1, "value": "1", "error": None, "continued_by": None}, T0 + 0.2),
             (ev.RUN_FINISHED, {"value": "1"}, T0 + 0.3)]
    persist(run, items)
    assert not Agent.objects.filter(run=run).exists()
    assert list(Step.objects.filter(run=run).values_list("agent", "generation")) == [(":main", 1)]


def test_streamed_text_of_overlapping_steps_is_kept_per_step(run):
    """Agents' steps overlap: a piece of :a's text arriving after :b's step started is placed
    in :a's step, not dropped."""
    items = fan_out_events(finish=False)
    at = next(i for i, x in enumerate(items) if x[0] == ev.STEP_STARTED and x[1]["step"] == 3) + 1
    items.insert(at, (ev.COMPLETION_DELTA, {"step": 2, "text": ":r"}, T0 + 0.95))
    items.insert(at + 1, (ev.COMPLETION_DELTA, {"step": 3, "text": ":x"}, T0 + 0.96))
    persist(run, items[:at + 2])
    assert Step.objects.get(run=run, step_id=2).completion == ":r"
    assert Step.objects.get(run=run, step_id=3).completion == ":x"


def test_agents_still_working_when_the_root_returns_are_abandoned_with_their_steps(run):
    """The root returned while :b's step was open: the run's last batch ends that step (so a
    page that watched the run shows it ended, like a fresh load) and :b's lane says abandoned."""
    from spellide.web.fragments import render_batch
    from spellide.web.runner.persist import ABANDONED, load_events

    items = fan_out_events(finish=False)
    items = [x for x in items if not (x[1].get("step") == 3 and x[0] in (ev.COMPLETION, ev.STEP_FINISHED))
             and not (x[0] == ev.AGENT and x[1]["agent"] == ":b" and x[1]["status"] == "finished")]
    items += [(ev.STEP_FINISHED, {"step": 4, "value": "1", "error": None, "continued_by": None}, T0 + 2.6),
              (ev.STEP_FINISHED, {"step": 1, "value": "1", "error": None, "continued_by": None}, T0 + 2.6),
              (ev.RUN_FINISHED, {"value": "1"}, T0 + 2.9)]
    writer = RunPersister(run, mode="sync", broadcast=False)
    closed = []
    real_write = writer._write

    def write(batch):     # what the last batch's broadcast would carry
        real_write(batch)
        closed.extend(writer._closed)
    writer._write = write
    from .agent_events import as_events
    for e in as_events(items):
        writer(e)
    three = Step.objects.get(run=run, step_id=3)
    assert (three.status, three.error) == ("failed", ABANDONED)
    assert Step.objects.get(run=run, step_id=4).status == "completed"
    assert closed == [3]
    b = Agent.objects.get(run=run, handle=":b")
    assert b.status == "abandoned" and b.intervals[-1][0] == "abandoned"
    main = Agent.objects.get(run=run, handle=":main")
    assert main.status == "finished"         # the root's lifecycle ended with the run
    last = load_events(run)[-1]
    run.refresh_from_db()
    html = "".join(h for _, h in render_batch(run, [last], closed))
    assert 'id="step-row-3"' in html and 'data-status="failed"' in html


def test_a_receipts_rewrite_of_a_steps_program_is_kept_beside_its_own_turn(run):
    """A wait inside step 1 resumed with messages: the core reports the rewritten program of
    step 1 with a trace whose rows are by "receipt". The step keeps the program its own turn
    made (and that turn's trace) as the rewrite's base."""
    own_trace = {"version": 1, "sections": [{"name": "body", "rows": [{"op": "added", "by": "model", "new": [2, 1, 5]}]}]}
    receipt = {"version": 1, "sections": [{"name": "body", "rows": [
        {"op": "kept", "old": 0, "new": 0, "n": 3}, {"op": "added", "by": "receipt", "new": [3, None, None]}]}]}
    items = fan_out_events(finish=False)
    at = next(i for i, x in enumerate(items) if x[0] == ev.COMPLETION and x[1]["step"] == 1) + 1
    items.insert(at, (ev.PROGRAM, {"step": 1, "program": "(own turn)", "provenance": [{"start": 0, "end": 3, "source": "model"}],
                                   "trace": own_trace}, T0 + 0.55))
    at = next(i for i, x in enumerate(items) if x[0] == ev.RECEIPT and x[1]["agent"] == ":main")
    items.insert(at + 1, (ev.PROGRAM, {"step": 1, "program": "(own turn) (def msg-1 {})", "provenance": [],
                                       "trace": receipt}, T0 + 2.15))
    persist(run, items)
    one = Step.objects.get(run=run, step_id=1)
    assert one.program_text() == "(own turn) (def msg-1 {})"
    assert one.receipt_base_version.text() == "(own turn)"
    assert one.edit_trace == own_trace and one.receipt_trace == receipt
    assert one.provenance == [{"start": 0, "end": 3, "source": "model"}]
