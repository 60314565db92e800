"""Carried prefixes: a program that is a printed quine prefix plus a completion is read by
scanning only the completion (edits.carry_quine_prefix + assemble(carry=)), and that must
give exactly what re-reading the whole text gives: the same text, forms, top-level spans
and errors. Also: edit-free forms come back from apply_edits as themselves, and an error in
a carried form is reported where it is in the current program."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spellide.spell import edits
from spellide.spell.api import RunConfig
from spellide.spell.assembly import assemble
from spellide.spell.data import List, Symbol
from spellide.spell.edits import apply_edits, carry_quine_prefix, serialize_quine_prefix
from spellide.spell.errors import ReadError, SpellError
from spellide.spell.machine import Run
from spellide.spell.models.local import ScriptedModel
from spellide.spell.printer import pr_str
from spellide.spell.reader import read_one

from test_reader_properties import SETTINGS, _lispy_text, same, values

_COMPLETIONS = [
    "(def a 1) '(!extend)", ")))", "x))))", "(foo", '"unterminated', "]", "(a b) (c",
    "// comment\n(x)", "#(+ % 1)", "))) (extra)", "; only a comment", "", "(prune) 1",
    '(rethink "again" (def b 2))', "\\", "#{1 1}", "{:a}", "(def c [1 2",
    "(persist a) (f (g [h {:k #\"re\"}]))", "(do (prune 2) x)", "))", "y)))\n)",
]
completions = st.sampled_from(_COMPLETIONS) | _lispy_text


def outcome(text: str, carry=None, allow_multiple: bool = False):
    """What assembling ``text`` gives, as something comparable: the text, the form and the
    spans of the top levels, or the error's kind and position."""
    try:
        got, form = assemble(text, "", carry=carry, allow_multiple=allow_multiple)
    except ReadError as e:
        return ("read", e.reason, e.line, e.col, e.incomplete)
    except SpellError as e:
        span = (e.span.line, e.span.col, e.span.start) if e.span is not None else None
        return ("error", e.kind, e.message, span)
    return ("ok", got, form, _top_spans(form))


def _top_spans(form) -> list:
    """Spans of the form's own lists down to the quine body; those below belong to carried
    forms read at other steps, which keep theirs (see span_in_text)."""
    out = [getattr(form, "span", None), getattr(form, "spans", None)]
    if edits.is_quine(form) and isinstance(form[-1], List) and len(form[-1]) == 2:
        out += [form[-1].spans, getattr(form[-1][1], "spans", None)]
    return out


def assert_same_outcome(a, b):
    assert a[0] == b[0], (a, b)
    if a[0] != "ok":
        assert a == b
        return
    assert a[1] == b[1]
    assert same(a[2], b[2])
    assert a[3] == b[3]


def quine_of(body: list[str]) -> List:
    """The quine whose body forms are read from these source texts."""
    return read_one("(quine completion (eval (do " + " ".join(body) + ")))")


@SETTINGS
@given(st.lists(values, max_size=6), completions)
def test_carried_program_is_the_reread_program(body, completion):
    quine = List((Symbol("quine"), Symbol("completion"),
                  List((Symbol("eval"), List((Symbol("do"), *body))))))
    text, carry = carry_quine_prefix(quine)
    assert text == serialize_quine_prefix(quine)
    if carry is None:  # something in the body does not read back as printed
        return
    assert carry.text == text
    whole = text + completion
    assert_same_outcome(outcome(whole, carry), outcome(whole))
    assert_same_outcome(outcome(whole, carry, True), outcome(whole, allow_multiple=True))


@SETTINGS
@given(st.lists(st.sampled_from([c for c in _COMPLETIONS if c != ")))"]) | _lispy_text,
                min_size=1, max_size=8))
def test_a_chain_of_carried_steps_is_the_chain_of_rereads(steps):
    """Step after step as the turn machine goes: assemble, apply the edits, print the next
    prefix (carrying it), and compare with re-reading everything at every step."""
    prefix_c = prefix_r = serialize_quine_prefix(quine_of(["(quine prompt \"x\")"]))
    carry = None
    for completion in steps:
        carried = outcome(prefix_c + completion, carry)
        reread = outcome(prefix_r + completion)
        assert_same_outcome(carried, reread)
        if carried[0] != "ok" or not edits.is_quine(carried[2]):
            return
        try:
            q_c = edits.edit_reopen(carried[2], None)
            q_r = edits.edit_reopen(reread[2], None)
        except SpellError:
            return
        prefix_c, carry = carry_quine_prefix(q_c, carry)
        prefix_r = serialize_quine_prefix(q_r)
        assert prefix_c == prefix_r


def test_a_carried_step_reads_only_the_completion(monkeypatch):
    from spellide.spell import assembly
    seen = []
    real = assembly.read_continuation

    def spy(text, start, open_lists, **kw):
        seen.append(start)
        return real(text, start, open_lists, **kw)

    monkeypatch.setattr(assembly, "read_continuation", spy)
    q = quine_of(["(def a 1)", "(def b [1 2 {:c 3}])"])
    text, carry = carry_quine_prefix(q)
    _, form = assemble(text + "(def d 4) '(!extend)", "", carry=carry)
    assert seen == [len(text)]
    body = form[-1][1]
    carried = carry.open_lists[2][0]
    assert body[1] is carried[1] and body[2] is carried[2]   # not read again
    assert pr_str(body[3]) == "(def d 4)"


def test_carried_forms_are_printed_once():
    q = quine_of(["(def a 1)", "(def b [1 2 3])"])
    text, carry = carry_quine_prefix(q)
    kept = carry.open_lists[2][0][1:]
    assert [getattr(f, "_printed", None) for f in kept] == ["(def a 1)", "(def b [1 2 3])"]
    _, form = assemble(text + "(def c 3)", "", carry=carry)
    text2, carry2 = carry_quine_prefix(edits.edit_reopen(form, None), carry)
    assert carry2.open_lists[2][0][1] is kept[0] and carry2.open_lists[2][0][2] is kept[1]
    # the spans of the forms that did not move are the previous step's objects
    assert carry2.open_lists[2][1][1] is carry.open_lists[2][1][1]
    assert text2 == text + "(def c 3) "


def _quine_with(form) -> List:
    return List((Symbol("quine"), Symbol("completion"),
                 List((Symbol("eval"), List((Symbol("do"), form))))))


def test_what_is_carried_is_what_reading_the_text_gives():
    # a symbol with a space prints as two: the next program has two, carried or re-read
    odd = List((Symbol("def"), Symbol("x"), List((Symbol("quote"), Symbol("a b")))))
    text, carry = carry_quine_prefix(_quine_with(odd))
    assert text == "(quine completion (eval (do (def x (quote a b)) "
    assert same(carry.open_lists[2][0][1], read_one("(def x (quote a b))"))


def test_a_form_that_does_not_print_back_the_same_is_not_carried():
    # #object["..."] reads as (object ["..."]), which prints differently
    text, carry = carry_quine_prefix(_quine_with(List((Symbol("def"), Symbol("x"), object()))))
    assert carry is None
    assert text.startswith('(quine completion (eval (do (def x #object["<object object')


def test_edit_free_forms_come_back_as_themselves():
    form = read_one("(do (def a [1 {:b (f x)}]) (quote (prune)) (fn [] (prune)))")
    assert apply_edits(form, None) is form
    marked = read_one("(do (def a 1) (prune) (def b 2))")
    out = apply_edits(marked, None)
    assert pr_str(out) == "(do (def b 2))" and out[1] is marked[3]
    # the answer is kept on the form, and a marker anywhere below is still seen
    nested = read_one("(do (def a 1) [(do x (prune))])")
    assert pr_str(apply_edits(nested, None)) == "(do (def a 1) [(do)])"
    assert pr_str(apply_edits(nested, None)) == "(do (def a 1) [(do)])"
    persist = read_one("(do (persist a))")
    assert pr_str(apply_edits(persist, {Symbol("a"): 5})) == "(do (persist a 5))"
    assert pr_str(apply_edits(persist, {Symbol("a"): 6})) == "(do (persist a 6))"


def _run(script: list[str], **cfg) -> tuple[Run, object]:
    run = Run(RunConfig(prompt="p", recover=False, budget=None, **cfg), model=ScriptedModel(script))
    return run, run.execute()


def test_an_error_in_a_carried_form_points_into_the_current_program():
    run, res = _run(["(def f (fn [] (+ 1 missing-name))) '(!extend)",
                     "(def g 2) '(!extend)",
                     "(f)"])
    assert res.error is not None and "missing-name" in res.error
    program = res.steps[-1]["program"]
    line, col = res.error_span["line"], res.error_span["col"]
    assert line == 1 and program[col - 1:].startswith("missing-name")
    assert "(def f" in res.steps[-1]["prefix"]  # the form came with the carried prefix


def test_machine_runs_agree_with_and_without_carrying(monkeypatch):
    script = ["(def a [1 2]) '(!extend)", "(def b {:x a}) (prune) '(!extend)",
              "(rethink \"again\" (def c 3)) '(!extend)", "(persist a) '(!extend)",
              "(def d #\"x+\") '(!extend)", "(count [a c])"]
    _, carried = _run(script)
    monkeypatch.setattr(edits, "carry_quine_prefix",
                        lambda quine, previous=None: (edits._plain_prefix(quine), None))
    _, plain = _run(script)
    assert carried.value_text == plain.value_text == "2"
    assert [s["program"] for s in carried.steps] == [s["program"] for s in plain.steps]
    assert [s["prefix"] for s in carried.steps] == [s["prefix"] for s in plain.steps]


@pytest.mark.parametrize("form", ["(def v [1 2 3])", "{:a #{1 2}}", "(first-line 3 [a])",
                                  "(quote (a (b [c])))", "#\"a\\\"b\""])
def test_carried_forms_read_back_alike(form):
    q = quine_of([form])
    text, carry = carry_quine_prefix(q)
    assert carry is not None
    item = carry.open_lists[2][0][1]
    printed = text[len("(quine completion (eval (do "):-1]
    assert printed == pr_str(read_one(form)) == pr_str(item)
    assert same(item, read_one(printed))
