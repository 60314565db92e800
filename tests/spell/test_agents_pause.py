"""Pause points of a multi-agent run (``spellide/spell/pause_turns.py``): several agents at
breakpoints at once are shown one at a time and each decision reaches its own agent, in this
process and in a child (``ProcessRun``); a whole-run pause holds every agent until the person
resumes (Step steps the run, Stop ends every agent); a per-agent pause stops that agent only."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Callable, Optional

import pytest

from spellide.spell import api
from spellide.spell import events as ev
from spellide.spell.api import Breakpoints, Controller, Decision, PausePoint, RunConfig
from spellide.spell.machine import Run, execute_with_deep_stack
from spellide.spell.process import ProcessRun

DEMO = Path(__file__).resolve().parents[2] / "spellide" / "demos" / "agents-fan-out.json"
WORKERS = (":w1", ":w2", ":w3")


def fan_out_model(tmp_path: Path) -> tuple[str, str]:
    """The fan-out demo's prompt and its per-agent script (with its model latencies) as a
    ``scripted:FILE`` model spec, which a child process can resolve too."""
    demo = json.loads(DEMO.read_text(encoding="utf-8"))
    path = tmp_path / "fan-out.json"
    path.write_text(json.dumps({"completions": demo["completions"]}), encoding="utf-8")
    return demo["prompt"], f"scripted:{path}"


class Desk(Controller):
    """A person at the IDE, as a controller: answers each pause after ``dwell`` seconds (time
    for other agents to reach their pause points meanwhile), with the edit ``edits`` gives for
    (agent, kind), once; counts how many pauses it is shown at the same time."""

    interactive = True

    def __init__(self, edits: Optional[dict[tuple[str, str], Callable[[str], str]]] = None,
                 dwell: float = 0.15, actions: Optional[list[str]] = None,
                 run_pause: bool = False, agent_pauses: frozenset[str] = frozenset()) -> None:
        self.edits = dict(edits or {})
        self.dwell = dwell
        self.actions = list(actions or [])
        self.run_pause = run_pause
        self.agent_pauses = agent_pauses
        self._lock = threading.Lock()
        self.showing = 0
        self.most_shown = 0
        self.points: list[PausePoint] = []
        self.on_show: Optional[Callable[[PausePoint], None]] = None
        self._watchers: list[Callable[[], None]] = []

    def watch(self, callback: Callable[[], None]) -> None:
        self._watchers.append(callback)

    def request_run_pause(self) -> None:
        self.run_pause = True
        for callback in self._watchers:
            callback()

    def wants_pause(self, kind: str) -> bool:
        return self.run_pause

    def agent_pause_requests(self) -> frozenset[str]:
        return self.agent_pauses

    def checkpoint(self, point: PausePoint) -> Decision:
        with self._lock:
            self.showing += 1
            self.most_shown = max(self.most_shown, self.showing)
            self.points.append(point)
            self.run_pause = False                       # a request is taken by the pause it made
            self.agent_pauses = self.agent_pauses - {point.agent}
        if self.on_show is not None:
            self.on_show(point)
        time.sleep(self.dwell)
        with self._lock:
            self.showing -= 1
        edit = self.edits.pop((point.agent, point.kind), None)
        action = self.actions.pop(0) if self.actions else api.CONTINUE
        return Decision(action, edit(point.text) if edit else None, "tester")


def execute(where: str, config: RunConfig, controller: Controller,
            listener: Optional[Callable[[ev.Event], None]] = None) -> list[ev.Event]:
    """Execute the run in this process or in a child; its events (or give ``listener``)."""
    events: list[ev.Event] = []
    listeners = [listener or events.append]
    if where == "process":
        ProcessRun(config, listeners=listeners, controller=controller).execute()
    else:
        execute_with_deep_stack(Run(config, listeners=listeners, controller=controller).execute)
    return events


def step_agents(events: list[ev.Event]) -> dict[int, str]:
    return {e.data["step"]: e.data["agent"] for e in events if e.type == ev.STEP_STARTED}


@pytest.mark.parametrize("where", ["in-process", "process"])
def test_agents_at_breakpoints_at_once_are_shown_one_at_a_time_and_each_decision_reaches_its_agent(
        tmp_path, where):
    prompt, model = fan_out_model(tmp_path)
    config = RunConfig(prompt=prompt, model=model, breakpoints=Breakpoints(before_model=True))
    desk = Desk({(":w2", api.BEFORE_MODEL): lambda t: t.replace("chapter 2", "chapter two")})
    events = execute(where, config, desk)
    assert events[-1].type == ev.RUN_FINISHED, events[-1].data
    assert desk.most_shown == 1
    agents = step_agents(events)
    shown = [(p.agent, p.kind) for p in desk.points]
    assert sorted(a for a, k in shown if k == api.BEFORE_MODEL) == [":main", ":main", *WORKERS]
    for p in desk.points:   # each point names the agent whose step it is
        assert p.agent == agents[p.step] and p.generation == 1 and not p.hold
    paused = [e for e in events if e.type == ev.PAUSED]
    assert [e.data["agent"] for e in paused] == [p.agent for p in desk.points]
    edited = [e for e in events if e.type == ev.RESUMED and e.data.get("edited")]
    assert len(edited) == 1
    assert agents[edited[0].data["step"]] == ":w2" and edited[0].data["agent"] == ":w2"
    assert "chapter two" in edited[0].data["text"]
    # the edit is in :w2's step only: the worker steps' programs start with their prefixes
    programs = {agents[e.data["step"]]: e.data["program"] for e in events if e.type == ev.PROGRAM}
    assert "chapter two" in programs[":w2"]
    assert not any("chapter two" in programs[a] for a in (":w1", ":w3"))
    # while one was shown, the others reached their pause points: they were queued, not lost
    ends = [e.data["agent"] for e in events if e.type == ev.RESUMED]
    assert sorted(ends) == sorted(a for a, _ in shown)


def hold_log(events: list[ev.Event], desk: Desk) -> tuple[list[ev.Event], Callable[[ev.Event], None]]:
    """A listener that keeps what happened while the desk showed a pause."""
    during: list[ev.Event] = []

    def listen(e: ev.Event) -> None:
        events.append(e)
        if desk.showing and e.type not in (ev.PAUSED, ev.RESUMED):
            during.append(e)
    return during, listen


@pytest.mark.parametrize("where", ["in-process", "process"])
def test_a_whole_run_pause_holds_every_agent_until_the_person_resumes(tmp_path, where):
    prompt, model = fan_out_model(tmp_path)
    desk = Desk(dwell=1.5)   # longer than any worker's model call (0.8 s at most)
    events: list[ev.Event] = []
    during, listen = hold_log(events, desk)

    def on_event(e: ev.Event) -> None:
        listen(e)
        if e.type == ev.STEP_STARTED and e.data["agent"] == ":w1":
            desk.request_run_pause()
    execute(where, RunConfig(prompt=prompt, model=model), desk, on_event)
    assert events[-1].type == ev.RUN_FINISHED, events[-1].data
    assert len(desk.points) == 1 and desk.points[0].hold
    assert desk.points[0].agent in WORKERS
    paused = [e for e in events if e.type == ev.PAUSED]
    assert len(paused) == 1 and paused[0].data["hold"] is True
    # the workers were at pause points (before their model call or after its completion):
    # none of them finished a step while the run was held
    assert not [e for e in during if e.type in (ev.STEP_FINISHED, ev.PROGRAM)]
    assert sum(1 for e in events if e.type == ev.STEP_FINISHED and e.data.get("step") in
               {s for s, a in step_agents(events).items() if a in WORKERS}) == 3


def test_step_at_a_held_pause_steps_the_run_and_stop_ends_every_agent(tmp_path):
    prompt, model = fan_out_model(tmp_path)
    desk = Desk(dwell=0.05, actions=[api.STEP, api.STEP, api.STOP], run_pause=True)
    events = execute("in-process", RunConfig(prompt=prompt, model=model), desk)
    assert [p.hold for p in desk.points] == [True, True, True]
    assert [p.reason for p in desk.points] == ["pause requested", "stepping", "stepping"]
    assert events[-1].type == ev.RUN_FAILED and events[-1].data.get("kind") == "stopped"
    finished = {step_agents(events)[e.data["step"]] for e in events if e.type == ev.STEP_FINISHED
                and e.data.get("step") in step_agents(events) and not e.data.get("error")}
    assert not finished & set(WORKERS)   # Stop ended the workers too, before any finished


@pytest.mark.parametrize("where", ["in-process", "process"])
def test_a_pause_for_one_agent_stops_it_only_and_its_edit_lands_in_its_step(tmp_path, where):
    prompt, model = fan_out_model(tmp_path)
    desk = Desk({(":w3", api.BEFORE_MODEL): lambda t: t.replace("the rescue", "the long rescue")},
                dwell=1.0, agent_pauses=frozenset({":w3"}))
    events: list[ev.Event] = []
    during, listen = hold_log(events, desk)
    execute(where, RunConfig(prompt=prompt, model=model), desk, listen)
    assert events[-1].type == ev.RUN_FINISHED, events[-1].data
    assert [(p.agent, p.kind, p.hold, p.reason) for p in desk.points] == [
        (":w3", api.BEFORE_MODEL, False, "pause requested")]
    agents = step_agents(events)
    # the other workers went on while :w3 was paused: their steps finished meanwhile
    assert {agents[e.data["step"]] for e in during if e.type == ev.STEP_FINISHED} == {":w1", ":w2"}
    programs = {agents[e.data["step"]]: e.data["program"] for e in events if e.type == ev.PROGRAM}
    assert "the long rescue" in programs[":w3"]
