"""Turn-machine conformance: spell-language.md section 13, cases 36-57, plus the effect
cache (record, strict replay, divergence, fork) and long chains."""

from __future__ import annotations

import json

import pytest

from spellide.spell.api import RunConfig
from spellide.spell.machine import Run, execute_with_deep_stack
from spellide.spell.models.base import Completion, ModelRequest, Usage
from spellide.spell.models.local import ScriptedModel
from spellide.spell.record import Record


def PREFIX(*forms: str) -> str:
    return "(quine completion (eval (do " + "".join(f + " " for f in forms)


class Ticker:
    """The ``t/`` test effect namespace of section 13."""

    def __init__(self) -> None:
        self.count = 0

    def tick(self) -> int:
        self.count += 1
        return self.count

    def ns(self) -> dict:
        return {"tick": self.tick, "add": lambda a, b: a + b}


def run(script=None, *, prompt=None, init=None, ticker=None, model=None, **cfg):
    config = RunConfig(prompt=prompt, init=init, recover=cfg.pop("recover", False), **cfg)
    model = model or ScriptedModel(list(script or []))
    t = ticker or Ticker()
    r = Run(config, model=model, effect_namespaces={"t": t.ns()})
    result = execute_with_deep_stack(r.execute)
    return result, t, r


def prefixes(result):
    return [s["prefix"] for s in result.steps]


def test_36_hello_model_root_prompt():
    config = RunConfig(prompt="Return a greeting")
    r = Run(config)
    result = r.execute()
    assert result.error is None
    assert result.value == "hello world"
    assert len(result.steps) == 1
    assert result.steps[0]["id"] == 0 and result.steps[0]["parent"] is None
    assert result.steps[0]["prefix"] == PREFIX('(quine prompt "Return a greeting")', "(quote (!extend))")


def test_37_script_42():
    result, _, _ = run(["42"], prompt="Return 42")
    assert result.value == 42
    step = result.steps[0]
    assert step["completion"] == "42"
    assert step["program"].startswith(step["prefix"] + "42")


def test_38_extension():
    result, _, _ = run(['(think "plan") \'(!extend)', '"done"'], prompt="P")
    assert result.value == "done"
    assert len(result.steps) == 2
    assert prefixes(result)[1] == PREFIX('(quine prompt "P")', "(quote (!extend))", '(think "plan")',
                                         "(quote (!extend))")


def test_39_call_now_effect_runs_once():
    result, t, _ = run(["'(!call-now n (t/tick))", "(+ n 10)"], prompt="P")
    assert result.error is None, result.error
    assert result.value == 11
    assert t.count == 1
    assert prefixes(result)[1].endswith("(quote (!call-now n (t/tick))) (def n 1) ")


def test_40_multi_binding():
    result, t, _ = run(["'(!call-now a (t/tick) b (t/tick))", "[a b]"], prompt="P")
    assert list(result.value) == [1, 2]
    assert t.count == 2
    assert "(def a 1) (def b 2) " in prefixes(result)[1]


def test_41_peek_and_persist():
    result, _, _ = run(["(def k 5) '(!peek x (* k 2))", "(persist y (+ x 1)) '(!extend)", "y"], prompt="P")
    assert result.error is None, result.error
    assert result.value == 11
    assert prefixes(result)[1].endswith("(def k 5) (quote (!peek x (* k 2))) (def x 10) (prune 2) ")
    assert prefixes(result)[2] == PREFIX('(quine prompt "P")', "(quote (!extend))", "(def k 5)",
                                         "(persist y 11)", "(quote (!extend))")


def test_42_rethink_across_turns():
    result, _, _ = run(['(think "long detour") (rethink "short") \'(!extend)', "1"], prompt="P")
    assert prefixes(result)[1] == PREFIX('(quine prompt "P")', "(quote (!extend))", '(think "short")',
                                         "(quote (!extend))")


def test_43_print():
    result, _, _ = run(["'(!print (+ 1 2))", '"ok"'], prompt="P")
    assert result.value == "ok"
    assert prefixes(result)[1].endswith("(quote (!print (+ 1 2))) 3 ")


def test_44_nested_value_composition():
    result, _, _ = run(['"world")'], init="""(eval '(cat "hello " (!llm-self "(do ")))""")
    assert result.error is None, result.error
    assert result.value == "hello world"
    assert result.steps[0]["program"] == '(do "world")'


def test_45_fresh_context():
    init = """(quine completion (eval (do (quine msg "Hi") '(!llm-self (wrap-cat msg "x")))))"""
    result, _, _ = run(['(str "got" "it")'], init=init)
    assert result.value == "gotit"
    assert prefixes(result)[0] == PREFIX('(quine msg "Hi")', '"x"')


def test_46_plain_string_prompt():
    result, _, _ = run(['"hi"'], init="""(eval '(!llm-self "Say hi"))""")
    assert result.value == "hi"
    assert prefixes(result)[0] == PREFIX('(quine prompt "Say hi")')


def test_47_synchronous_fork():
    result, _, _ = run(["1)", "2)"], init="""(eval '[(!llm-self "(do ") (!llm-self "(do ")])""")
    assert list(result.value) == [1, 2]
    assert [s["parent"] for s in result.steps] == [None, None]


def test_48_three_deep_chain():
    step = "'(!llm-self \"(eval (do \")"
    result, _, _ = run([step, step, "99"], init="""(eval '(!llm-self "(eval (do "))""")
    assert result.error is None, result.error
    assert result.value == 99
    assert [s["id"] for s in result.steps] == [0, 1, 2]
    assert [s["parent"] for s in result.steps] == [None, 0, 1]
    assert [s["depth"] for s in result.steps] == [1, 2, 3]
    assert [s["value"] for s in result.steps] == ["99", "99", "99"]


def test_49_early_close_is_an_eval_arity_error():
    result, _, _ = run([") '(!extend)"], prompt="P")
    assert result.error is not None
    assert "eval" in result.error


def test_50_reader_recovery():
    result, _, _ = run(["\\invalidchar)", "42)"], init="""(eval '(!llm-self "(quine completion (eval (do "))""",
                       recover=True)
    assert result.error is None, result.error
    assert result.value == 42
    assert len(result.steps) == 2
    assert "Reader error" in result.steps[1]["prefix"]
    assert "invalidchar" in result.steps[1]["prefix"]


def test_50_reader_recovery_limit():
    result, _, _ = run(["\\invalidchar)"] * 5, init="""(eval '(!llm-self "(quine completion (eval (do "))""",
                       recover=True)
    assert result.error is not None and "Recovery limit exceeded" in result.error
    assert len(result.steps) == 3


def test_51_namespace_fixup():
    result, _, _ = run(["(map (fn [x] (sqrt x)) [4.0 9.0]))"], init="""(eval '(!llm-self "(do "))""",
                       recover=True)
    assert result.error is None, result.error
    assert list(result.value) == [2.0, 3.0]
    assert len(result.steps) == 1


def test_52_no_replay_on_recovery():
    # v0.1.0 had floor only in math/; newer references bind it in core too, so cbrt stands in
    result, t, _ = run(["(def x (cbrt 27)) '(t/tick)))"], init="""(eval '(!llm-self "(eval (do "))""",
                       recover=True)
    assert result.error is None, result.error
    assert result.value == 1
    assert t.count == 1


def test_53_quine_extension_recovery():
    result, _, _ = run(["undefined-symbol) '(!extend completion))", "(def fix 42))"],
                       init="""(eval '(!llm-self "(quine completion (eval (do "))""", recover=True)
    assert result.error is None, result.error
    assert result.value == 42
    assert len(result.steps) == 2


def test_54_nondeterminism_is_seeded_per_step():
    script = ["(def r (rand-int 1000000)) '(!extend)", "r"]
    a, _, _ = run(script, prompt="P", seed=7)
    b, _, _ = run(script, prompt="P", seed=7)
    assert isinstance(a.value, int)
    assert a.value == b.value  # same seed, same draws: a replay reproduces the run


def test_55_stored_references():
    result, _, _ = run([], init="(serialize (vec (range 5000)))")
    assert result.value == '(stored "ref-1")'
    result, _, _ = run([], init="(serialize (apply str (repeat 20000 \"x\")))")
    assert "[truncated, 20000 chars total]" in result.value
    result, _, _ = run([], init='(stored "missing")')
    assert result.error == "No stored value: missing"


def test_55_stored_reference_round_trip_through_a_turn():
    result, _, _ = run(["'(!call-now v (vec (range 5000)))", "(count v)"], prompt="P")
    assert result.error is None, result.error
    assert '(def v (stored "ref-1"))' in result.steps[1]["prefix"]
    assert result.value == 5000


def test_56_depth_cap():
    result, _, _ = run(["'(!extend)"] * 20, prompt="P", depth=5)
    assert result.error is not None and "LLM recursion limit exceeded" in result.error
    assert len(result.steps) == 5


def test_57_budget():
    script = [{"text": "'(!extend)", "usage": {"cost": 0.4}}] * 10
    result, _, _ = run(script, prompt="P", budget=1.0)
    assert result.error_kind == "budget-exceeded"
    assert "Budget exceeded" in result.error
    assert len(result.steps) == 3
    assert result.status == "stopped"            # stopped by its budget, not failed


def test_effect_guard_at_top_level():
    result, t, _ = run([], init="(t/tick)")
    assert "t/ is an effect namespace" in result.error
    assert t.count == 0


def test_llm_self_outside_eval_is_unbound():
    result, _, _ = run(["1"], init='(quine completion (eval (do (!llm-self "x"))))')
    assert "Unbound symbol: !llm-self" in result.error
    assert result.steps == []


# --- the effect cache -------------------------------------------------------------------

SCRIPT = ["(def base 10) '(!call-now n (t/tick))", "'(!call-now m (t/add n base))", "(+ n m)"]


def _record(tmp_path, script=SCRIPT):
    result, t, r = run(script, prompt="Count once.")
    path = tmp_path / "run.json"
    r.record().save(path)
    return result, t, path


def test_strict_replay_reproduces_with_zero_effects(tmp_path):
    original, t, path = _record(tmp_path)
    assert original.value == 12 and t.count == 1
    config = RunConfig(prompt="Count once.", model=f"replay:{path}", cache_mode="strict", recover=False)
    t2 = Ticker()
    r = Run(config, effect_namespaces={"t": t2.ns()})
    replayed = r.execute()
    assert replayed.error is None, replayed.error
    assert replayed.value == original.value
    assert replayed.effects_executed == 0
    assert replayed.effects_reused == original.effects_executed
    assert t2.count == 0
    assert [s["program"] for s in replayed.steps] == [s["program"] for s in original.steps]
    assert {e["status"] for e in replayed.effects} == {"hit"}


def test_changed_completion_is_the_first_divergence(tmp_path):
    _, _, path = _record(tmp_path)
    data = json.loads(path.read_text())
    target = next(e for e in data["effects"] if e["step"] == 1 and e["name"] == "model/spell")
    target["result"] = "'(!call-now m (t/add n 99))"
    path.write_text(json.dumps(data))
    config = RunConfig(prompt="Count once.", model=f"replay:{path}", cache_mode="strict", recover=False)
    r = Run(config, effect_namespaces={"t": Ticker().ns()})
    result = r.execute()
    assert result.error_kind == "divergence"
    assert "step 1" in result.error
    assert result.status == "diverged"


def test_fork_replays_then_goes_live(tmp_path):
    original, _, path = _record(tmp_path)
    rec = Record.load(path)
    t = Ticker()
    config = RunConfig(prompt="Count once.", cache_mode="replay", recover=False)
    r = Run(config, model=ScriptedModel(list(SCRIPT)), record=rec, fork_at=0,
            effect_namespaces={"t": t.ns()})
    result = r.execute()
    assert result.value == original.value
    statuses = [(e["step"], e["name"], e["status"]) for e in result.effects]
    assert (0, "model/spell", "hit") in statuses
    assert (0, "t/tick", "hit") in statuses
    assert (1, "model/spell", "miss") in statuses
    assert t.count == 0  # the tick of step 0 was served from the cache
    reasons = [e["reason"] for e in result.effects if e["status"] == "miss"]
    assert all("after the fork point" in why for why in reasons)


def test_replay_miss_says_why(tmp_path):
    _, _, path = _record(tmp_path)
    data = json.loads(path.read_text())
    target = next(e for e in data["effects"] if e["step"] == 1 and e["name"] == "model/spell")
    target["result"] = "'(!call-now m (t/add n 5))"
    path.write_text(json.dumps(data))
    config = RunConfig(prompt="Count once.", model=f"replay:{path}", cache_mode="replay", recover=False)
    t = Ticker()
    r = Run(config, effect_namespaces={"t": t.ns()})
    result = r.execute()
    # Step 2's prefix now holds (def m 15): the replay-only model has no completion for it.
    assert "no recorded completion" in result.error
    add = next(e for e in result.effects if e["name"] == "t/add")
    assert add["status"] == "miss" and add["reason"].startswith("arguments changed")
    assert "(t/add" not in add["reason"] and "5" in add["reason"]
    tick = next(e for e in result.effects if e["name"] == "t/tick")
    assert tick["status"] == "hit" and t.count == 0


class ChainModel:
    """Keeps the program small (each turn prunes the previous trailing expression)."""

    name = "chain"
    transport = "prefill"

    def __init__(self, n: int):
        self.n = n

    def complete(self, request: ModelRequest) -> Completion:
        i = request.extra["call_index"]
        text = "(prune) '(!extend)" if i < self.n - 1 else f"{i + 1}"
        return Completion(text, Usage(), self.name, self.transport)

    def cache_settings(self):
        return {"model": "chain"}


def test_ten_thousand_step_chain_has_no_recursion_error():
    n = 10_000
    config = RunConfig(prompt="Count.", recover=False, budget=None)
    r = Run(config, model=ChainModel(n), keep_history=False)
    result = execute_with_deep_stack(r.execute, stack_mb=16, recursion=3000)
    assert result.error is None, result.error
    assert result.value == n
    assert r.next_step == n
