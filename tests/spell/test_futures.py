"""Futures and ``blocking/`` (spell-agents.md section 5; conformance cases 32, 33 and the
future part of 36), their errors, their effects' keys and strict replay, and how Stop, the run's
time limit and the run's end end them. Runs use the real turn machine."""

from __future__ import annotations

import threading
import time

import immutables
import pytest

from spellide.spell.api import (STOP, Breakpoints, Controller, Decision, PausePoint, RunConfig)
from spellide.spell.data import Builtin, Vector, kw
from spellide.spell.errors import SpellError, TypedError
from spellide.spell.evaluator import evaluate, make_context
from spellide.spell.futures import HostFuture, waitable
from spellide.spell.machine import Run, execute_with_deep_stack
from spellide.spell.models.base import Completion, ModelRequest, Usage
from spellide.spell.models.local import ScriptedModel
from spellide.spell.reader import read_one


class LeafModel:
    """Step completions from a script (by call index); ``leaf-llm`` answers by the first
    prompt substring of ``leaf`` found in the prompt, after ``delay[substring]`` seconds."""

    name = "leaf-test"
    transport = "prefill"

    def __init__(self, script=(), leaf=None, delay=None):
        self.script = list(script)
        self.leaf = dict(leaf or {})
        self.delay = dict(delay or {})
        self.leaf_calls: list[str] = []
        self.spans: list[tuple[float, float]] = []   # (start, end) of each leaf call
        self._lock = threading.Lock()

    def complete(self, request: ModelRequest) -> Completion:
        if request.kind == "text":
            key = next(k for k in self.leaf if k in request.prefix)
            start = time.monotonic()
            time.sleep(self.delay.get(key, 0.0))
            with self._lock:
                self.leaf_calls.append(request.prefix)
                self.spans.append((start, time.monotonic()))
            return Completion(self.leaf[key], Usage(), self.name, self.transport)
        return Completion(self.script[request.extra["call_index"]], Usage(), self.name,
                          self.transport)

    def cache_settings(self) -> dict:
        return {"model": self.name}


class Ticker:
    """The ``t/`` test namespace: ``tick`` counts, ``slow`` sleeps ``s`` seconds first."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def tick(self, *tag) -> int:
        with self._lock:
            self.count += 1
            return self.count

    def slow(self, s, x):
        time.sleep(s)
        with self._lock:
            self.count += 1
        return x

    def ns(self) -> dict:
        return {"tick": self.tick, "slow": self.slow}


def run(init=None, *, model=None, ticker=None, controller=None, record=None, **cfg):
    config = RunConfig(init=init, recover=cfg.pop("recover", False), **cfg)
    t = ticker or Ticker()
    r = Run(config, model=model or ScriptedModel([]), controller=controller, record=record,
            effect_namespaces={"t": t.ns()})
    return execute_with_deep_stack(r.execute), r, t


def action(src: str) -> str:
    """An Init written as a bare quoted action (spell-agents.md section 10)."""
    return f"(quine completion (eval (do '{src})))"


def host(value) -> HostFuture:
    fut = waitable(value)
    assert isinstance(fut, HostFuture), value
    return fut


def settled(value):
    fut = host(value)
    assert fut.done()
    return fut.outcome()


# --- conformance ------------------------------------------------------------------------------

def test_32_future_awaits_a_future_and_blocking_is_gated_elsewhere():
    result, r, _ = run(action("(future (blocking/await (future 7)))"))
    assert result.error is None, result.error
    assert settled(result.value) == 7
    assert result.value_text == "{:spell/future true :ref #<future root.f0>}"

    result, _, _ = run(action("(blocking/await (future 1))"))
    assert "blocking/ is only available inside (future ...) blocks" in result.error


def test_33_plet_runs_leaf_calls_concurrently():
    model = LeafModel(["'(future (blocking/plet [a (leaf-llm \"p1\") b (leaf-llm \"p2\")] (cat a b)))"],
                      leaf={"p1": "hello", "p2": "world"}, delay={"p1": 0.4, "p2": 0.4})
    result, _, _ = run("(eval (do '(!llm-self \"(eval (do \" {:receive? true})))", model=model)
    assert result.error is None, result.error
    assert settled(result.value) == "helloworld"
    assert sorted(model.leaf_calls) == ["p1", "p2"]
    (s1, e1), (s2, e2) = sorted(model.spans)
    assert s2 < e1, "the two leaf calls ran at the same time"


def test_36_pmap_and_await_all_inside_a_future():
    result, _, _ = run(action("(future [(blocking/pmap (fn [x] (* x x)) [1 2 3]) "
                              "(blocking/await-all [(future 1) (future 2)])])"))
    assert result.error is None, result.error
    assert settled(result.value) == Vector((Vector((1, 4, 9)), Vector((1, 2))))


def test_plet_bindings_destructure_and_do_not_see_each_other():
    result, _, _ = run(action("(future (blocking/plet [[a b] [1 2] c (+ 10 20)] [a b c]))"))
    assert settled(result.value) == Vector((1, 2, 30))
    result, _, _ = run(action("(future (try (blocking/plet [a 1 b (+ a 1)] b) "
                              "(catch e (:message e))))"))
    assert "Unbound symbol: a" in settled(result.value)


# --- errors -----------------------------------------------------------------------------------

@pytest.mark.parametrize("body, message", [
    ("(blocking/await 3)", "blocking/await requires a future"),
    ("(blocking/await {:spell/future true :ref 1})", "blocking/await requires a future"),
    ("(blocking/await-all 3)", "blocking/await-all: argument must be a collection"),
    ("(blocking/await-all {:a (future 1)})", "blocking/await-all: argument must be a collection"),
    ("(blocking/await-all [(future 1) 2])", "blocking/await-all: all elements must be futures"),
    ("(blocking/plet [a] a)", "blocking/plet expects a binding vector"),
    ("(future* 3)", "future* expects a function of no arguments"),
    ("(eval '(!llm-self \"x\"))", "Self-calls cannot run inside computation futures"),
    ("(eval '(!ask-await (future 1)))", "!ask-await: requires an active agent context"),
    ("(receive completion)", "receive cannot run inside computation futures"),
    ("(agents/ask :x 1)", "agents/ask: requires an active agent context"),
])
def test_errors_inside_a_future_are_catchable_messages(body, message):
    result, _, _ = run(action(f"(future (try {body} (catch e (:message e))))"))
    assert result.error is None, result.error
    caught = settled(result.value)
    assert isinstance(caught, str) and message in caught, caught


def test_blocking_outside_futures_is_unbound_with_the_hint():
    for src in ("(blocking/pmap inc [1])", "(blocking/plet [a 1] a)", "blocking/await"):
        result, _, _ = run(action(src))
        assert "blocking/ is only available inside (future ...) blocks" in result.error, src
    # pure code too: the gate is the namespace's absence, not eval
    result, _, _ = run("(blocking/await-all [])")
    assert "blocking/ is only available inside (future ...) blocks" in result.error


def test_a_blocking_function_that_escaped_its_future_refuses_the_agent_thread():
    result, _, _ = run(action("(future blocking/await)"))
    escaped = settled(result.value)
    assert isinstance(escaped, Builtin)
    ctx = make_context()
    with pytest.raises(TypedError, match="cannot block an agent runner; use !ask-await") as err:
        escaped.fn(ctx, immutables.Map(), result.value)
    assert err.value.kind == "agent-blocking-call"


def test_requests_and_ask_await_outside_a_run_say_what_they_need():
    ctx = make_context()
    for src in ("(blocking/request :w 1)", "(blocking/send-await :w 1)"):
        fut = host(evaluate(read_one(f"(future (try {src} (catch e :caught)))"), immutables.Map(), ctx)[0])
        with pytest.raises(TypedError, match="blocking/request is not available here: it needs "
                                             "the run's agent coordinator"):
            fut.wait(ctx)
    from spellide.spell.agents.future_waits import ASK_AWAIT
    one = evaluate(read_one("(future 1)"), immutables.Map(), ctx)[0]
    with pytest.raises(TypedError, match="!ask-await is not available here"):
        ASK_AWAIT.fn(ctx, immutables.Map(), one)


def test_ask_await_needs_a_future_and_a_canonical_program():
    result, _, _ = run(action("(!ask-await 1)"))
    assert "!ask-await requires a future" in result.error
    result, _, _ = run("(eval '(!ask-await (future 1)))")
    assert "Inbox macro materialization failed" in result.error   # the wake rewrites the program


def test_a_future_that_fails_fails_its_awaiter_with_the_reason():
    result, _, _ = run(action("[(future (/ 1 0)) (future (try (blocking/await (future (throw \"no\"))) "
                              "(catch e (:message e))))]"))
    assert result.error is None, result.error
    failed, caught = result.value
    with pytest.raises(SpellError, match="Future root.f0 failed: .*Divide by zero"):
        host(failed).outcome()
    assert settled(caught) == "Future root.f1.f0 failed: no"


def test_typed_errors_of_a_future_stay_uncatchable_in_its_awaiter():
    result, _, _ = run(action("(future (try (blocking/await (future (apply str (repeat 2000000 "
                              "\"abcdefghabcdefgh\")))) (catch e :caught)))"), memory_mb=64)
    assert result.error is None, result.error
    with pytest.raises(TypedError, match="Future root.f0.f0 failed: Memory limit exceeded") as err:
        host(result.value).outcome()
    assert err.value.kind == "memory-limit"


def test_the_printed_future_cannot_be_read_back():
    result, _, _ = run(action("(future 1)"))
    with pytest.raises(SpellError, match="Unreadable"):
        read_one(result.value_text)


def test_futures_outside_a_run():
    ctx = make_context()
    env = immutables.Map({read_one("x"): 5})
    # dynamic scope: the body sees the env of the future* call
    assert host(evaluate(read_one("(future x)"), env, ctx)[0]).wait(ctx) == 5
    nested = read_one("(future (blocking/await-all [(future (blocking/await (future (+ 1 2)))) "
                      "(future :b)]))")
    assert host(evaluate(nested, env, ctx)[0]).wait(ctx) == Vector((3, kw("b")))
    unbound = host(evaluate(read_one("(future y)"), env, ctx)[0])
    with pytest.raises(SpellError, match="failed: Unbound symbol: y"):
        unbound.wait(ctx)


# --- effects: keys per future, strict replay --------------------------------------------------

PROGRAM = action("(do (t/tick :main-1) "
                 "(def a (future (t/slow 0.3 :a))) "
                 "(def b (future (do (t/tick :b) (blocking/await (future (t/slow 0 :b-inner)))))) "
                 "(t/tick :main-2) "
                 "[(future [(blocking/await a) (blocking/await b) (leaf-llm \"q\")]) (t/tick :main-3)])")


def _keys(result):
    return sorted((e.get("ctx", ""), e["ordinal"], e["name"], e["args"]) for e in result.effects)


def test_each_future_keys_its_effects_by_its_own_context():
    model = LeafModel(leaf={"q": "answer"})
    result, _, t = run(PROGRAM, model=model)
    assert result.error is None, result.error
    assert t.count == 6
    assert settled(result.value[0]) == Vector((kw("a"), kw("b-inner"), "answer"))
    assert _keys(result) == [
        ("", 0, "t/tick", "[:main-1]"), ("", 1, "t/tick", "[:main-2]"),
        ("", 2, "t/tick", "[:main-3]"),
        ("f0", 0, "t/slow", "[0.3 :a]"),
        ("f1", 0, "t/tick", "[:b]"), ("f1.f0", 0, "t/slow", "[0 :b-inner]"),
        ("f2", 0, "model/text", '["q" {:model "leaf-test"}]'),
    ]


def test_strict_replay_of_futures_executes_nothing_whatever_the_timing(tmp_path):
    model = LeafModel(leaf={"q": "answer"})
    original, r, _ = run(PROGRAM, model=model)
    assert original.error is None, original.error
    path = tmp_path / "run.json"
    r.record().save(path)

    from spellide.spell.record import Record
    config = RunConfig(init=PROGRAM, model=f"replay:{path}", cache_mode="strict", recover=False)
    t2 = Ticker()
    replay = Run(config, effect_namespaces={"t": t2.ns()})
    result = execute_with_deep_stack(replay.execute)
    assert result.error is None, result.error
    assert result.effects_executed == 0 and t2.count == 0
    assert result.effects_reused == original.effects_executed == 7
    assert {e["status"] for e in result.effects} == {"hit"}
    assert _keys(result) == _keys(original)
    assert settled(result.value[0]) == settled(original.value[0])
    assert Record.load(path).effects[0].key().get("ctx") is None   # the step's own: no ctx key


def test_a_changed_future_effect_is_a_divergence_that_ends_the_run(tmp_path):
    original, r, _ = run(action("(future (t/tick :x))"))
    path = tmp_path / "run.json"
    r.record().save(path)
    changed = action("(future (t/tick :y))")
    config = RunConfig(init=changed, model=f"replay:{path}", cache_mode="strict", recover=False)
    result = execute_with_deep_stack(Run(config, effect_namespaces={"t": Ticker().ns()}).execute)
    assert result.status == "diverged"
    assert "future f0 effect #0 t/tick" in result.error


# --- Stop, limits, the run's end ---------------------------------------------------------------

class StopAtEffect(Controller):
    def __init__(self) -> None:
        self.points: list[PausePoint] = []

    def checkpoint(self, point: PausePoint) -> Decision:
        self.points.append(point)
        return Decision(STOP)


def test_stop_at_a_pause_point_inside_a_future_ends_the_run_and_its_long_future():
    controller = StopAtEffect()
    started = time.monotonic()
    result, r, t = run(action("[(future (loop [] (recur))) (future (t/tick :stop-here))]"),
                       controller=controller, breakpoints=Breakpoints(effect_kinds=["t"]))
    assert result.status == "stopped", (result.status, result.error)
    assert result.error == "Run stopped by the user"
    assert [p.effect["name"] for p in controller.points] == ["t/tick"]
    assert t.count == 0
    assert time.monotonic() - started < 10
    assert r.futures.live() == 0


def test_the_run_time_limit_ends_a_long_future():
    started = time.monotonic()
    result, r, _ = run(action("(future (loop [i 0] (recur (inc i))))"), run_time_limit=1.0)
    assert time.monotonic() - started < 8
    assert (result.error, result.error_kind) == ("Run time limit exceeded (1 s)", "timeout")
    assert r.futures.live() == 0


def test_a_future_awaiting_a_runaway_future_ends_at_the_run_time_limit():
    result, r, _ = run(action("[(future (blocking/await (future (loop [] (recur))))) (t/slow 1.5 :x)]"),
                       run_time_limit=1.0)
    assert result.error_kind == "timeout"
    assert r.futures.live() == 0


def test_the_run_end_cancels_futures_it_does_not_return():
    result, r, _ = run(action("(do (def f (future (loop [] (recur)))) :done)"))
    assert result.value == kw("done")
    assert r.futures.live() == 0
    # and nothing can start a future once the run is over
    with pytest.raises(TypedError, match="the run ended"):
        r.futures.start(make_context(), lambda ctx: 1)


def test_many_futures_on_few_workers_do_not_starve():
    # more futures than worker threads, each waiting for later ones: awaiters run queued
    # futures themselves
    result, r, _ = run(action("(future (blocking/pmap (fn [x] (blocking/await (future (* x 2)))) "
                              "(range 200)))"))
    assert result.error is None, result.error
    assert settled(result.value) == Vector(range(0, 400, 2))
    assert r.futures.started == 401


def test_a_future_kept_by_call_now_is_the_same_object_next_turn():
    # a future prints unreadably, so !call-now stores it: the next turn rejoins the object
    model = ScriptedModel(["'(!call-now f (future (* 6 7)))", "f"])
    result, _, _ = run(None, model=model, prompt="P")
    assert result.error is None, result.error
    assert result.steps[1]["prefix"].endswith('(def f (stored "ref-1")) ')
    assert settled(result.value) == 42


def test_describe_shows_blocking_everywhere_with_where_it_exists():
    result, _, _ = run(action("(!describe blocking)"), model=ScriptedModel(["1"]))
    text = "".join(s["prefix"] for s in result.steps) + (result.value_text or "") + (result.error or "")
    assert "blocking/pmap" in text and "blocking/plet" in text
    assert "only available inside (future ...) blocks" in text


def test_pause_points_of_futures_reach_the_controller_of_a_run_in_a_child_process(tmp_path):
    from spellide.spell.process import ProcessRun

    class Continue(Controller):
        def __init__(self) -> None:
            self.points: list[PausePoint] = []

        def checkpoint(self, point: PausePoint) -> Decision:
            self.points.append(point)
            return Decision()

    controller = Continue()
    config = RunConfig(init=action('[(future (io/spit "a.txt" "x")) (future (io/spit "b.txt" "y"))]'),
                       workspace=str(tmp_path), recover=False,
                       breakpoints=Breakpoints(effect_kinds=["io"]))
    ProcessRun(config, controller=controller).execute()
    # two futures reached a pause point at about the same time: one at a time, each answered
    assert sorted(p.effect["args"] for p in controller.points) == ['["a.txt" "x"]', '["b.txt" "y"]']
    assert (tmp_path / "a.txt").read_text() == "x" and (tmp_path / "b.txt").read_text() == "y"


def test_a_step_evaluated_again_names_its_futures_again():
    # the namespace fix-up evaluates the program again (gate.restart_step): its future is f0
    # again, so a replay of either evaluation finds the same keys
    model = ScriptedModel(["'[(future (t/tick :a)) (upper-case \"x\")]"])
    result, _, t = run(None, prompt="P", model=model, recover=True)
    assert result.error is None, result.error
    assert result.value[1] == "X"
    settled(result.value[0])   # the second evaluation's future, settled with the run
    ticks = {(e["step"], e.get("ctx"), e["ordinal"]) for e in result.effects if e["name"] == "t/tick"}
    assert ticks == {(0, "f0", 0)}   # the first evaluation's future may have ticked too: same key
