"""The actors underneath: waits continue the program without growing the host stack, each
agent's step has its own clock, step ids stay unique and ordered, and a run's agents end
with it."""

from __future__ import annotations

import inspect

from spellide.spell.data import kw

from agents_harness import Harness, init, m, registers


def test_waits_in_tail_position_are_trampolined():
    n = 25
    main = [f"'(agents/!ask :w {i})" for i in range(1, n + 1)] + [f"(:body msg-{n + 1})"]
    w = [f"(* 10 (:body msg-{j}))" for j in range(1, n + 2)]
    h = Harness({"main": main, "w": w}, init=registers(["w"], "(agents/!ask :w 0)"))
    depths = {}
    for i in range(1, n + 2):
        h.at("main", i, lambda i=i: depths.__setitem__(i, len(inspect.stack(0))))
    assert h.execute().value == 10 * n
    assert depths[n + 1] == depths[2], depths   # the 25th wait uses no more stack than the first


def test_a_spawned_agents_step_has_its_own_clock():
    h = Harness({"w": ["'(loop [i 0] (recur (inc i)))"], "main": ["(:phase (:body msg-1))"]},
                init=init('(agents/!spawn-ask "Spin." :w)'), step_time_limit=0.5)
    assert h.execute().value == kw("lifecycle")
    assert "Step time limit exceeded" in h.run.agents.failures[kw("w")]


def test_step_ids_are_unique_and_ordered_across_agents():
    specs = " ".join(f'["T{i}." :w{i}]' for i in range(8))
    script = {"main": [f"'(agents/!spawn-ask [{specs}])", "(count (:body msg-1))"]}
    for i in range(8):
        script[f"w{i}"] = [f"'(!call-now x {i})", "x"]
    h = Harness(script, prompt="P")
    assert h.execute().value == 8
    ids = [s["id"] for s in h.result.steps]
    assert ids == list(range(len(ids))) and len(ids) == 2 + 16
    for i in range(8):
        first, second = h.steps(f"w{i}")
        assert second["parent"] == first["id"] and second["prefix"].endswith(f"(def x {i}) ")


def test_sleeping_agents_unwind_when_the_run_ends():
    h = Harness({"main": ["'(do (agents/spawn \"Ask back.\" :w) :done)"], "w": ["'(agents/!ask :main 1)"]},
                prompt="P")
    assert h.execute().value == kw("done")
    assert all(not t.is_alive() for t in h.run.agents.threads)
    assert h.coord.closed


def test_a_wait_in_a_non_tail_position_has_the_continuations_value():
    h = Harness({"w": ["(* 2 (:body msg-1))"], "main": ["(:body msg-1)"]},
                init=registers(["w"], "(do (def x (agents/!ask :w 21)) [x :after])"))
    assert h.execute().value == m("[42 :after]")
    assert len(h.steps("main")) == 1
