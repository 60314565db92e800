"""Edit time (spell-language.md sections 5.4-5.6 and 5.9): conformance cases 27-35 and 58, the
worked examples of section 5.4, prefix serialization and value rendering."""

from __future__ import annotations

import pytest

from spellide.spell.data import Symbol, Vector, kw, smap, vec
from spellide.spell.edits import (ValueStore, apply_edits, build_init, edit_reopen,
                                  receive_message, render_value, serialize_quine_prefix)
from spellide.spell.errors import SpellError
from spellide.spell.evaluator import make_context, run
from spellide.spell.printer import pr_str
from spellide.spell.reader import read_one


def edited(src: str, env: dict | None = None) -> str:
    return pr_str(apply_edits(read_one(src), env or {}))


def prefix(*forms: str) -> str:
    """PREFIX[f1 f2 ...] of section 13."""
    return "(quine completion (eval (do " + "".join(f + " " for f in forms)


# --- conformance cases 27-35 ----------------------------------------------------------------------
@pytest.mark.parametrize("src, out", [
    ("(do (+ 1 2) (prune) (+ 2 2))", "(do (+ 2 2))"),                                   # 27
    ("(do a b c (prune 2) d)", "(do a d)"),                                              # 28
    ('(do a (think "long" 1) (rethink "short" 2))', '(do a (think "short" 2))'),         # 29
    ('(do a b c (prune 2) (rethink 2 "retry" d) e)', '(do (think "retry" d) e)'),        # 30
    ('(do (def a 1) (rethink 5 "Z" 9))', '(do (think "Z" 9))'),                          # 31
    ("(do (quote (do x (prune))) y)", "(do (quote (do x (prune))) y)"),                  # 32 quote is opaque
    ("(do (fn [] a (prune)) y)", "(do (fn [] a (prune)) y)"),                            # 32 fn is opaque
    ("(do [p (prune)])", "(do [p (prune)])"),                                            # 33 no siblings in vectors
    ("(do [(do p (prune))])", "(do [(do)])"),                                            # 33 ...but lists inside them
    ("(quine completion (eval (do 1)) (do (def _e 1)) (prune 2) (eval (do 2)))",
     "(quine completion (eval (do 2)))"),                                                # 35 quine-level prune
])
def test_cases_27_to_35(src, out):
    assert edited(src) == out


def test_case_34_persist_rewrites_bound_names_only():
    env = {Symbol("rows"): vec(1, 2, 3), Symbol("kept"): vec(2, 3)}
    assert (edited("(do (def rows [1 2 3]) (prune) (persist kept (subvec rows 1)))", env)
            == "(do (persist kept (quote [2 3])))")
    assert edited("(do (persist nope (+ 1 2)))", env) == "(do (persist nope (+ 1 2)))"
    assert edited("(do (persist kept))", env) == "(do (persist kept (quote [2 3])))"


# --- the worked examples of section 5.4 -------------------------------------------------------
@pytest.mark.parametrize("src, out", [
    ("(do [a b (prune)])", "(do [a b (prune)])"),
    ('(do x [a b (rethink "retry" (def c 3))])', '(do x [a b (rethink "retry" (def c 3))])'),
    ('(do a b (rethink "retry" (def c 3)))', '(do a (think "retry" (def c 3)))'),
    ('(do (think "A" 1) (rethink "B" 2) (rethink "C" 3))', '(do (think "C" 3))'),
    ('(do (do (think "A" 1) (rethink "B" 2)) (def y 3))', '(do (do (think "B" 2)) (def y 3))'),
    ('(do [(do (think "A" 1) (rethink "B" 2))])', '(do [(do (think "B" 2))])'),
    ("(do (prune 9) a)", "(do a)"),                       # more than there is: everything before
    ('(do a (prune "x") b)', '(do a (prune "x") b)'),     # not a marker shape: kept as written
    ("(do {:k (do a (prune))})", "(do {:k (do)})"),        # maps: keys and values are walked
])
def test_section_5_4_examples(src, out):
    assert edited(src) == out


def test_operator_position_is_never_pruned():
    assert edited("((prune) a b)") == "((prune) a b)"


# --- prefix serialization (5.5) -----------------------------------------------------------------
def test_serialize_quine_prefix_is_open_with_a_trailing_space():
    q = read_one('(quine completion "inert" (eval (do (quine prompt "P") \'(!extend) (def x "a\\nb"))))')
    assert serialize_quine_prefix(q) == (
        '(quine completion "inert" (eval (do (quine prompt "P") (quote (!extend)) (def x "a\\nb") ')


def test_serialize_requires_an_eval_do_tail():
    with pytest.raises(SpellError, match=r"reopen expects quine tail of the form \(eval \(do \.\.\.\)\)"):
        serialize_quine_prefix(read_one("(quine completion (+ 1 2))"))


def test_edit_reopen_applies_edits_then_reopens():
    q = read_one(build_init("P")[:-3] + ' (think "long") (rethink "short") (quote (!extend)))))')
    assert serialize_quine_prefix(edit_reopen(q, {})) == prefix(
        '(quine prompt "P")', "(quote (!extend))", '(think "short")', "(quote (!extend))")


# --- value rendering (5.6) ---------------------------------------------------------------------
def test_small_values_inline_and_quote_when_not_self_evaluating():
    store = ValueStore()
    assert pr_str(render_value(42, store)) == "42"
    assert pr_str(render_value("hi", store)) == '"hi"'
    assert pr_str(render_value(kw("k"), store)) == ":k"
    assert pr_str(render_value(vec(1, 2), store)) == "(quote [1 2])"
    assert pr_str(render_value(smap(kw("a"), Symbol("b")), store)) == "(quote {:a b})"


def test_long_string_becomes_a_truncated_literal_and_big_values_a_stored_reference():
    store = ValueStore()
    s = render_value("x" * 20_000, store)
    assert isinstance(s, str) and s.endswith("... [truncated, 20000 chars total]") and len(s) < 10_100
    big = Vector(range(5000))
    ref = render_value(big, store)
    assert pr_str(ref) == '(stored "ref-1")' and store.get("ref-1") is big
    with pytest.raises(SpellError, match="No stored value: missing"):
        store.get("missing")


def test_negative_limit_always_inlines():
    assert pr_str(render_value(Vector(range(50)), ValueStore(), limit=-1)).startswith("(quote [0 1 2")


def test_stored_references_are_per_run():
    a, b = ValueStore(), ValueStore()
    a.put(vec(1))
    with pytest.raises(SpellError):
        b.get("ref-1")


# --- message receipt (5.9): conformance case 58 ------------------------------------------------
def test_case_58_message_receipt_is_a_text_transform():
    text = prefix("X", "'(agents/!ask :b 1)") + ")))"
    out = receive_message(text, "msg-0", smap(kw("from"), kw("a"), kw("body"), 7))
    expected = (prefix("X", "(quote (agents/!ask :b 1))")
                + '(think "[preempted or awakened by msg-0]") (def msg-0 {:from :a :body 7}) '
                  "(quote (!llm-self (prune-and-reopen completion))) ")
    assert out == expected
    # after auto-closing, the old ask is inert and the trailing self-call is the live action
    program = read_one(out + ")))")
    body = program[-1][1]
    assert pr_str(body[-1]) == "(quote (!llm-self (prune-and-reopen completion)))"
    assert pr_str(body[2]) == "(quote (agents/!ask :b 1))"


def test_receipt_quotes_a_message_that_is_not_plain_data():
    out = receive_message(prefix("X") + ")))", "msg-1", smap(kw("body"), vec(Symbol("sym"))))
    assert "(def msg-1 (quote {:body [sym]}))" in out


def test_receipt_binds_the_message_when_evaluated():
    """Evaluating the body up to the new self-call binds msg-0 (without making the call)."""
    out = receive_message(prefix("(def x 1)", "'(agents/!ask :b 1)") + ")))", "msg-0",
                          smap(kw("from"), kw("a"), kw("body"), 7))
    body_forms = read_one(out + ")))")[-1][1][1:-1]
    r = run(read_one("(do " + " ".join(pr_str(f) for f in body_forms) + " (:body msg-0))"),
            ctx=make_context())
    assert r.error is None and r.value == 7


def test_quote_value_builds_names_that_do_not_print_readably():
    from spellide.spell.data import Keyword, Symbol, Vector
    from spellide.spell.edits import quote_value
    from spellide.spell.evaluator import run_source
    for v in [Symbol("a b"), Symbol("nil"), Keyword.of("a b"), Vector([Symbol("x y"), 1]),
              Symbol("plain")]:
        text = pr_str(quote_value(v))
        assert run_source(text).value == v, text
    assert pr_str(quote_value(Symbol("a b"))) == '(symbol "a b")'
    assert pr_str(quote_value(Vector([Symbol("ok")]))) == "(quote [ok])"


def test_render_value_stores_a_value_too_deep_to_walk():
    from spellide.spell.data import StoredRef
    from spellide.spell.edits import render_value
    v = "leaf"
    for _ in range(10000):
        v = Vector([v])
    store = ValueStore()
    form = render_value(v, store, 128)
    assert pr_str(form) == '(stored "ref-1")'
    assert store.get("ref-1") is v
