"""patterns/: the Spell-written idioms (the reference's patterns library) called like any
namespace function; their effects (leaf-llm, !llm-self) resolve where they are called."""

from __future__ import annotations

from spellide.spell.data import Builtin, SpellFn, Symbol, Vector, kw
from spellide.spell.evaluator import make_context, run_source


def _ctx(reply: str):
    asked = []
    leaf = Builtin("leaf-llm", lambda prompt: (asked.append(prompt), reply)[1])
    return make_context({Symbol("leaf-llm"): leaf}), asked


def test_check_result_ok_keeps_the_answer():
    ctx, asked = _ctx("  OK  ")
    r = run_source('(patterns/check-result "What is 2+2?" 4)', ctx=ctx)
    assert r.error is None, r.error
    assert r.value == {kw("ok"): 4}
    assert "What is 2+2?" in asked[0] and "Answer: 4" in asked[0]


def test_check_result_wrong_gives_the_reason():
    ctx, _ = _ctx("WRONG: London is not the capital of France")
    r = run_source('(patterns/check-result "Capital of France?" "London")', ctx=ctx)
    assert r.value == {kw("wrong"): "London is not the capital of France"}
    ctx, _ = _ctx("no idea")
    assert run_source('(patterns/check-result "q" 1)', ctx=ctx).value == {kw("wrong"): "no idea"}


def test_patterns_are_documented_spell_functions():
    r = run_source("[patterns/check-result (:docs patterns)]")
    fn, docs = r.value
    assert isinstance(fn, SpellFn) and fn.params == Vector((Symbol("prompt"), Symbol("answer")))
    assert kw("check-result") in docs and kw("clean-prompt") in docs


def test_without_leaf_llm_the_error_names_it():
    r = run_source('(patterns/check-result "q" 1)')
    assert "leaf-llm" in r.error.message
