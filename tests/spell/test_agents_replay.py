"""Deterministic replay of multi-agent runs (spell-agents.md section 8): the record keeps the
turnstile's order of every agent's transitions; a strict replay makes each agent wait for its
recorded turn, so the agents interleave as they did, with no effect executed (model calls from
the cache; coordinator and globals transitions executed again on a fresh coordinator), and a
replay that leaves the record stops at the first divergence, naming the agents."""

from __future__ import annotations

import json

from spellide.spell import events as ev
from spellide.spell.api import RunConfig
from spellide.spell.machine import Run, execute_with_deep_stack
from spellide.spell.models.local import NoLiveModel, ScriptedModel
from spellide.spell.record import Record

N = 12


def _script() -> dict:
    specs = " ".join(f'["Task {i}." :w{i}]' for i in range(N))
    script = {"main": [f"'(agents/!spawn-ask [{specs}])", "'[(reduce + (map :body (:body msg-1))) (globals/get :n)]"]}
    for i in range(N):
        script[f"w{i}"] = [{"text": "'(!call-now g (globals/update :n (fnil inc 0)) o (globals/get :order))",
                            "latency": 0.01 * (i % 3)},
                           f"'(do (globals/update :order (fnil conj []) {i}) (+ {i} (* 0 g)))"]
    return script


def _record(tmp_path) -> tuple[object, Record]:
    result, run, _ = _run_with_events()
    path = tmp_path / "run.json"
    run.record().save(path)
    return result, Record.load(path)


def _run_with_events(script: dict | None = None, prompt: str = "Fan out.") -> tuple[object, Run, list[dict]]:
    """A live run, and its events as the IDE persists them (JSON, as they cross to the database)."""
    events: list[dict] = []
    run = Run(RunConfig(prompt=prompt, recover=False), model=ScriptedModel(script or _script()),
              listeners=[lambda e: events.append(json.loads(json.dumps(e.to_json())))])
    result = execute_with_deep_stack(run.execute)
    assert result.error is None, result.error
    return result, run, events


def _replay(record: Record, timeout: float = 10.0):
    cfg = RunConfig(prompt="Fan out.", recover=False, cache_mode="strict")
    run = Run(cfg, model=NoLiveModel(record.model_settings), record=record)
    run.coordinator.replay_timeout = timeout
    return execute_with_deep_stack(run.execute)


def test_strict_replay_reproduces_the_interleaving_with_no_effect_executed(tmp_path):
    original, record = _record(tmp_path)
    assert record.turns["order"] and record.journal and len(record.agents) == N + 1
    replayed = _replay(record)
    assert replayed.error is None, replayed.error
    assert replayed.value_text == original.value_text
    assert replayed.effects_executed == 0 and replayed.effects_reused == len(original.steps)
    assert [(s["id"], s["agent"], s["prefix"]) for s in replayed.steps] == \
        [(s["id"], s["agent"], s["prefix"]) for s in original.steps]
    assert [e["kind"] for e in replayed.journal] == [e["kind"] for e in record.journal]


def test_a_replay_out_of_the_recorded_order_reports_the_first_divergence(tmp_path):
    _, record = _record(tmp_path)
    order = record.turns["order"]
    actors = record.turns["actors"]
    # drop one turn of a worker from the middle: it now makes a transition the record says
    # belongs to someone else
    i = next(k for k in range(len(order) // 2, len(order)) if actors[order[k]][0] != ":main")
    del order[i]
    replayed = _replay(record, timeout=1.0)
    assert replayed.status == "diverged" and replayed.error_kind == "divergence"
    assert "Strict replay diverged" in replayed.error and ":w" in replayed.error
    assert ("stuck at turn" in replayed.error or "the record does not have" in replayed.error)


def test_the_record_rebuilt_from_the_events_replays_strictly_with_no_effect_executed():
    """The IDE replays from ``Record.from_events``: a step whose wait resumed keeps its own
    program (the receipt's rewrite goes to ``received``), and the agents, journal and turn
    order arrive with the ``agents_ended`` event, so the rebuilt record is the run's own."""
    original, run, events = _run_with_events()
    assert [e["type"] for e in events].count(ev.AGENTS_ENDED) == 1
    rebuilt, own = Record.from_events(events), run.record()
    assert rebuilt.turns == own.turns and rebuilt.turns["order"]
    assert rebuilt.journal == own.journal and rebuilt.agents == own.agents and rebuilt.warnings == own.warnings
    keys = ("id", "parent", "depth", "completion", "program", "received", "agent", "generation")
    assert [{k: s.get(k) for k in keys} for s in rebuilt.steps] == [{k: s.get(k) for k in keys} for s in own.steps]
    received = [s for s in rebuilt.steps if s.get("received")]
    assert received and all(s["program"] != s["received"][-1] for s in received)
    replayed = _replay(Record.from_json(json.loads(json.dumps(rebuilt.to_json()))))
    assert replayed.error is None, replayed.error
    assert replayed.value_text == original.value_text
    assert replayed.effects_executed == 0 and replayed.effects_reused == len(original.steps)
    assert [(s["id"], s["agent"], s["program"]) for s in replayed.steps] == \
        [(s["id"], s["agent"], s["program"]) for s in original.steps]


def test_a_single_agent_runs_events_and_rebuilt_record_are_as_before():
    """No ``agents_ended`` event for a run of :main alone; its rebuilt record has no turns and
    replays strictly as it always did."""
    script = {"main": ["'(!extend completion)", "42"]}
    original, _, events = _run_with_events(script, "Count.")
    assert ev.AGENTS_ENDED not in [e["type"] for e in events]
    rebuilt = Record.from_events(events)
    assert rebuilt.turns == {} and rebuilt.journal == [] and rebuilt.agents == []
    cfg = RunConfig(prompt="Count.", recover=False, cache_mode="strict")
    replayed = execute_with_deep_stack(Run(cfg, model=NoLiveModel(rebuilt.model_settings), record=rebuilt).execute)
    assert (replayed.error, replayed.value_text) == (None, original.value_text)
    assert replayed.effects_executed == 0 and replayed.effects_reused == len(original.steps) >= 2


def test_a_run_resumed_from_the_events_of_a_killed_process_follows_their_turns():
    """The process died mid-run: no ``agents_ended`` event, but the step and effect events
    carried the turn order so far. The resumed run (replay mode, as the IDE resumes) follows
    it, so every model call whose effect event was persisted is reused, then goes on free."""
    original, _, events = _run_with_events()
    for cut in (len(events) // 3, 2 * len(events) // 3):
        kept = events[:cut]
        assert ev.AGENTS_ENDED not in [e["type"] for e in kept]
        cached = sum(1 for e in kept if e["type"] == ev.EFFECT and e["data"]["effect"]["name"] == "model/spell")
        record = Record.from_events(kept)
        assert record.turns["partial"] and 0 < len(record.turns["order"])
        cfg = RunConfig(prompt="Fan out.", recover=False, cache_mode="replay")
        resumed = execute_with_deep_stack(Run(cfg, model=ScriptedModel(_script()), record=record).execute)
        assert (resumed.error, resumed.value_text) == (None, original.value_text)
        assert resumed.effects_reused == cached > 0
        assert resumed.effects_executed == len(original.steps) - cached


def test_a_strict_replay_of_a_partial_record_diverges_where_its_turns_end():
    _, _, events = _run_with_events()
    record = Record.from_events(events[:len(events) // 2])
    replayed = _replay(record, timeout=1.0)
    assert replayed.status == "diverged", replayed.error
    assert f"the record has {len(record.turns['order'])})" in replayed.error
