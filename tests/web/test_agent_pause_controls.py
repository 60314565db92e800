"""The pause control with ``agent`` (websocket and POST): the field is validated against the
run's agents, only the named agent stops while the others go on, an action for an agent other
than the one shown is refused, and an edit sent for the paused agent lands in its step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.test import Client

from spellide.spell.api import RunConfig
from spellide.web.models import Agent, Edit, Run, Step

from .test_consumers import connect, control, finished, poll, refusal, start, wait_status

pytestmark = pytest.mark.django_db(transaction=True)

DEMO = Path(__file__).resolve().parents[2] / "spellide" / "demos" / "agents-fan-out.json"


def fan_out(scripted, slow_w3: float = 2.5) -> RunConfig:
    """The fan-out demo, its :w3 worker's model call ``slow_w3`` s long: time to pause it."""
    demo = json.loads(DEMO.read_text(encoding="utf-8"))
    completions = demo["completions"]
    completions["w3"][0]["latency"] = slow_w3
    return RunConfig(prompt=demo["prompt"], model=scripted(completions))


async def agent_row(run, handle: str) -> None:
    await poll(lambda: Agent.objects.filter(run=run, handle=handle).exists())


async def test_a_pause_for_one_agent_over_the_websocket(user, scripted):
    run = await start(user, fan_out(scripted))
    comm, ok, _ = await connect(run, user)
    assert ok
    await comm.send_to(text_data=control(comm, "pause", agent=":nobody"))
    assert "the run has no agent :nobody" in await refusal(comm)
    await comm.send_to(text_data=control(comm, "pause", agent=["not", "a", "handle"]))
    assert "agent must be" in await refusal(comm)
    await agent_row(run, ":w3")
    await comm.send_to(text_data=control(comm, "pause", agent=":w3"))
    r = await wait_status(run, "paused")
    assert r.pause["agent"] == ":w3" and r.pause["hold"] is False
    # the others went on: both other workers finished their steps while :w3 is paused
    await poll(lambda: Step.objects.filter(run=run, agent__in=[":w1", ":w2"], status="completed").count() == 2)
    assert (await database_sync_to_async(Run.objects.get)(pk=run.pk)).status == "paused"
    # a decision for another agent than the one shown is refused
    await comm.send_to(text_data=control(comm, "resume", agent=":w1"))
    assert "agent :w1 is not paused" in await refusal(comm)
    await comm.send_to(text_data=control(comm, "step", agent=":w1"))
    assert "the pause shown is agent :w3&#x27;s, not :w1" in await refusal(comm)
    point = r.pause["point"]
    edit = ("(quine completion (eval (do (def note \"edited\") 'nil)))" if point == "before_model"
            else '"Divers save the whole crew."')
    # a whole-run pause now: the others stop at their next pause point (:main, woken by :w3's
    # report, before its next model call), shown after :w3 resumes, holding the run
    await comm.send_to(text_data=control(comm, "pause"))
    await comm.send_to(text_data=control(comm, "edit", agent=":w3", text=edit))
    held = await wait_status(run, "paused", after_seq=r.pause["seq"])
    assert (held.pause["agent"], held.pause["hold"]) == (":main", True)
    await comm.send_to(text_data=control(comm, "resume", agent=":main"))
    final = await finished(run)
    assert final.status == "finished", (final.status, final.error)
    edits = await database_sync_to_async(lambda: [
        (e.step_id, Step.objects.get(run=run, step_id=e.step_id).agent) for e in Edit.objects.filter(run=run)])()
    assert [agent for _, agent in edits] == [":w3"]
    if point == "after_completion":
        assert "Divers save the whole crew." in json.dumps(final.value)
    await comm.disconnect()


async def test_a_pause_for_one_agent_over_post_and_a_whole_run_pause(user, scripted):
    run = await start(user, fan_out(scripted))

    def post(action, **data):
        c = Client(enforce_csrf_checks=False)
        c.force_login(user)
        return c.post(f"/runs/{run.public_id}/{action}/", data, headers={"HX-Request": "true"})

    r = await sync_to_async(post)("pause", agent=":ghost")
    assert r.status_code == 409 and b"the run has no agent :ghost" in r.content
    await agent_row(run, ":w3")
    r = await sync_to_async(post)("pause", agent=":w3")
    assert r.status_code == 200 and b"agent :w3 stops at its next pause point" in r.content
    # cancelled before it arrives: resume with the agent
    r = await sync_to_async(post)("resume", agent=":w3")
    assert r.status_code == 200
    assert b"pause of agent :w3 cancelled" in r.content or b"resumed" in r.content
    # a whole-run pause: the first agent at a pause point shows it, holding the others
    r = await sync_to_async(post)("pause")
    assert r.status_code == 200
    paused = await wait_status(run, "paused")
    assert paused.pause["hold"] is True and paused.pause["agent"]
    r = await sync_to_async(post)("stop")
    assert r.status_code == 200
    assert (await finished(run)).status == "stopped"
