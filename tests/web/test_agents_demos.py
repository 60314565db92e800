"""The bundled multi-agent demos: each is a per-agent scripted model (no API key), runs for real
through the run service (the run's own process, the core's agents runtime, the persister) to
its value, and leaves the agent rows its lanes are drawn from; its woken steps' diffs label the
receipt's rewrite; a strict replay of it reproduces its agents from the cache."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from spellide.web import lanes, stepinfo
from spellide.web.demos import get_demo, list_demos
from spellide.web.models import Agent, Effect, Message, Run, Step
from spellide.web.runner.persist import ABANDONED
from spellide.web.runner.replay import replay_run

from .agent_runtime import demo_params
from .conftest import finish
from .test_controls import client, htmx, run_from  # noqa: F401  (client is a fixture)

pytestmark = pytest.mark.django_db(transaction=True)

DEMOS = {   # name -> (agents, value)
    "agents-auction": ((":main", ":alice", ":bob", ":carol"), "{:winner :alice :price 160}"),
    "agents-telephone": ((":main", ":p1", ":p2", ":p3"), '"in: the cat sat on the mat / out: the bat sat on a hat"'),
    "agents-negotiate": ((":main", ":seller"), "[:deal 135]"),
    "agents-fan-out": ((":main", ":w1", ":w2", ":w3"),
                       '["Boats crowd a small harbour." "A storm wrecks the pier." "Divers save the crew."]'),
    "agents-plet": ((":main", ":pricer", ":stock"), "{:lamps 5 :total 200}"),
}


@pytest.fixture
def quick_demos(settings, tmp_path_factory):
    """The bundled demos without the model latency each agent's script keeps for watchers."""
    dst = tmp_path_factory.mktemp("agent-demos")
    shutil.copytree(Path(settings.DEMOS_DIR), dst, dirs_exist_ok=True)
    for name in DEMOS:
        f = dst / f"{name}.json"
        data = json.loads(f.read_text(encoding="utf-8"))
        for entries in data["completions"].values():
            for c in entries:
                c["latency"] = 0
        f.write_text(json.dumps(data), encoding="utf-8")
    settings.DEMOS_DIR = dst
    return dst


def start(client, demo: str) -> Run:
    return run_from(htmx(client, "/runs/start/", {"demo": demo}))


def test_the_agent_demos_are_listed_with_their_agents():
    names = {d.name: d for d in list_demos()}
    for name, (handles, _) in DEMOS.items():
        demo = names[name]
        assert set(demo.agents) == set(handles), name
        assert demo.title.startswith("agents: ") and demo.description
    assert get_demo("countdown").agents == ()     # a single-agent demo's script is one list
    offered = dict(dict(stepinfo.model_choices())["No key needed"])   # the start form's model menu
    assert {f"demo:{name}" for name in DEMOS} <= set(offered)


@pytest.mark.parametrize("name", demo_params(DEMOS))
def test_each_agent_demo_runs_to_its_value_with_its_lanes(client, quick_demos, name):
    handles, value = DEMOS[name]
    run = finish(start(client, name), 90)
    assert (run.status, run.value, run.error) == ("finished", value, None)
    assert tuple(Agent.objects.filter(run=run).order_by("order").values_list("handle", flat=True)) == handles
    assert run.agent_count == len(handles)
    steps = set(Step.objects.filter(run=run).values_list("agent", flat=True))
    assert steps <= set(handles) and len(steps) >= 2
    t = lanes.timeline(run, f"/runs/{run.public_id}")
    assert t is not None and [l.handle for l in t.lanes] == list(handles)
    assert not Step.objects.filter(run=run, status__in=["running", "paused"]).exists()
    page = client.get(f"/runs/{run.public_id}/").content.decode()
    assert 'id="lanes-panel"' in page


def test_the_diff_labels_the_receipt_of_a_wait_that_resumed(client, quick_demos):
    """:main's first step waits in its spawn-ask; the wait resumes with the report bound to
    msg-1. That step's diff shows its own turn (the model's action) and then the receipt's
    rewrite, labelled receipt, as the core's edit trace reports them."""
    run = finish(start(client, "agents-fan-out"), 90)
    waited = Step.objects.get(run=run, agent=":main", receipt_base_version__isnull=False)
    html = client.get(f"/runs/{run.public_id}/steps/{waited.step_id}/?tab=diff").content.decode()
    receipt = html[html.index('id="receipt-diff"'):]
    rows = re.findall(r'<div class="drow dk-(\w+)"><span class="dlabel">([^<]+)</span>', receipt)
    assert rows == [("receipt", "receipt")] * 3, rows
    assert "(def msg-1 {:from [:w1 :w2 :w3]" in html_text(receipt)
    own = html[:html.index('id="receipt-diff"')]
    assert re.search(r'<div class="drow dk-appended">\s*<span class="dlabel">appended by the model</span>', own)
    assert "dk-injected" not in own
    woken = Step.objects.filter(run=run, agent=":main").order_by("step_id").last()
    assert woken.parent == waited.step_id


def html_text(html: str) -> str:
    import html as h
    return h.unescape(re.sub(r"<[^>]+>", "", html))


def shape(run: Run, step_ids: set[int]) -> tuple:
    """What a strict replay must reproduce: the agents, the messages, and each of ``step_ids``
    (its agent, place in the tree, status, completion, value, own program, receipt rewrite)."""
    steps = [(s.step_id, s.agent, s.generation, s.parent, s.status, s.completion, s.value,
              s.program_version.text() if s.program_version_id else None,
              s.receipt_base_version.text() if s.receipt_base_version_id else None)
             for s in Step.objects.filter(run=run, step_id__in=step_ids).order_by("step_id")]
    return (list(Agent.objects.filter(run=run).order_by("order").values_list("handle", "parent", "status")),
            sorted(Message.objects.filter(run=run).values_list("kind", "sender", "targets", "edge")), steps)


def comparable_steps(src: Run, rep: Run) -> set[int]:
    """The steps that ended before the run did in both ``src`` and its replay ``rep``. At most
    one worker's step may be missing or abandoned in one of them: a step that starts as the
    root returns (the negotiation's seller, woken by the buyer's last reply) races the run's
    end, in the original and in a replay alike (the run's end closes the coordinator without
    a turn)."""
    def ended(run: Run) -> set[int]:
        return set(Step.objects.filter(run=run).exclude(error=ABANDONED).values_list("step_id", flat=True))
    both = ended(src) & ended(rep)
    racing = set(Step.objects.filter(run__in=[src, rep]).exclude(step_id__in=both).values_list("step_id", "agent"))
    assert len({sid for sid, _ in racing}) <= 1 and all(agent != ":main" for _, agent in racing), racing
    return both


@pytest.mark.parametrize("name", demo_params(DEMOS))
def test_a_strict_replay_of_an_agent_demo_reproduces_its_agents(client, user, quick_demos, name):
    """The IDE replays from the record it rebuilds from the run's events: every agent's
    model calls come from the cache, the agents interleave as recorded (the turns of the
    run's ``agents_ended`` event), nothing of the world executes, and the steps are the same
    (``comparable_steps``: but for one that races the run's end)."""
    src = finish(start(client, name), 90)
    rep = finish(replay_run(src, user, strict=True), 90)
    assert (rep.status, rep.value) == ("finished", src.value), rep.error
    assert rep.totals["effects_executed"] == 0
    both = comparable_steps(src, rep)
    assert rep.totals["effects_reused"] >= len(both) > 1   # each step's model call, from the cache
    assert shape(rep, both) == shape(src, both)


def test_a_fork_at_a_workers_step_carries_the_agents(client, user, quick_demos):
    """A fork at one bidder's step replays the run up to there from the cache and goes on
    live: the fork has the same agents, each step keeps its agent, and its lanes draw."""
    from spellide.web.runner.service import fork_run

    src = finish(start(client, "agents-auction"), 90)
    bob = Step.objects.filter(run=src, agent=":bob").order_by("step_id").first()
    fork = finish(fork_run(src, user, bob.step_id), 90)
    assert (fork.status, fork.value) == ("finished", src.value), fork.error
    assert fork.totals["effects_reused"] >= 1
    assert (list(Agent.objects.filter(run=fork).order_by("order").values_list("handle", "parent"))
            == list(Agent.objects.filter(run=src).order_by("order").values_list("handle", "parent")))
    assert (sorted(Step.objects.filter(run=fork).values_list("agent", flat=True))
            == sorted(Step.objects.filter(run=src).values_list("agent", flat=True)))
    assert lanes.timeline(fork, "/f") is not None


def test_an_interrupted_agent_demo_resumes_following_its_persisted_turns(client, user, quick_demos):
    """A server died in the middle of a multi-agent run: its events stop before the run's end
    (no ``agents_ended``), but its step and effect events carried the turn order so far. The
    resumed run follows that order, so every model call the events stored is reused (none
    runs twice), and the agents go on free to the same value."""
    from spellide.spell.api import Event
    from spellide.web.runner.persist import RunPersister, load_events
    from spellide.web.runner.service import resume_interrupted

    src = finish(start(client, "agents-auction"), 90)
    events = load_events(src)
    cut = next(i for i, e in enumerate(events) if e["type"] == "step_started" and e["data"]["agent"] == ":main"
               and e["data"]["step"] > 0)   # :main's second step: the bids are in, the raise is not
    crashed = Run.objects.create(owner=user, title="crashed", status=Run.Status.INTERRUPTED, config=src.config,
                                 demo=src.demo)
    writer = RunPersister(crashed, threaded=False, broadcast=False)
    for e in events[:cut]:
        writer(Event(e["seq"], e["type"], e["data"], e["ts"]))
    Run.objects.filter(pk=crashed.pk).update(status=Run.Status.INTERRUPTED)
    crashed.refresh_from_db()
    cached = sum(1 for e in events[:cut] if e["type"] == "effect" and e["data"]["effect"]["name"] == "model/spell")
    assert cached >= 4

    resumed = finish(resume_interrupted(crashed), 90)
    assert (resumed.status, resumed.value) == ("finished", src.value), resumed.error
    assert Effect.objects.filter(run=resumed, segment=1, status="hit", name="model/spell").count() == cached
    assert Effect.objects.filter(run=resumed, segment=1, name="model/spell").exclude(status="hit").count() \
        == src.totals["steps"] - cached


def test_a_spawned_agents_first_diff_is_against_where_it_started(client, quick_demos):
    """A worker's first step hangs under the spawner's step but did not grow out of its
    program: its diff compares it with its own start, so it removes none of :main's forms."""
    run = finish(start(client, "agents-fan-out"), 90)
    worker = Step.objects.filter(run=run, agent=":w2").order_by("step_id").first()
    html = client.get(f"/runs/{run.public_id}/steps/{worker.step_id}/?part=detail&tab=diff").content.decode()
    assert "where :w2 started (spawned at step" in html
    own = html[:html.index('id="receipt-diff"')] if 'id="receipt-diff"' in html else html
    kinds = re.findall(r'<div class="drow dk-(\w+)">', own)
    assert "removed" not in kinds and kinds, kinds
