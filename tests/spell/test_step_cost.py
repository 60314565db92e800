"""A step costs what is new in it: the forms carried from the step before are not walked,
copied form by form or traced one by one again (bench/runtime_bench.py measures the time;
these tests pin the mechanisms, and that each gives what the long way gives)."""

from __future__ import annotations

import immutables

from spellide.spell import edits, program_trace
from spellide.spell.assembly import assemble
from spellide.spell.data import List, Symbol
from spellide.spell.edits import EditTrace, apply_edits, carry_quine_prefix, edit_reopen
from spellide.spell.printer import pr_str
from spellide.spell.reader import read_all_spans, read_continuation, read_one


def step(prefix: str, completion: str, carry, env=None):
    """One turn as the machine takes it: assemble with the carry, apply the edits, carry on."""
    _, form = assemble(prefix + completion, "", carry=carry)
    edited = edit_reopen(form, env)
    text, carry = carry_quine_prefix(edited, carry)
    return form, edited, text, carry


def chain(n: int, env=None, first: str = "(def a 1)"):
    prefix = "(quine completion (eval (do " + first + " "
    carry = None
    for i in range(n):
        form, edited, prefix, carry = step(prefix, f"(def v{i} {i}) '(!extend)", carry, env)
    return form, edited, prefix, carry


def test_carried_forms_are_not_walked_again():
    _, _, prefix, carry = chain(5)
    carried = carry.open_lists[2][0][1:]
    assert carry.free == len(carried)
    for f in carried:   # forget what edit time knew about them: a walk would find out again
        f.__dict__.pop("_edits", None)
    form, edited, _, _ = step(prefix, "(def w [1 (x)]) '(!extend)", carry)
    body = form[-1][1]
    assert body._free_prefix == len(carried)
    assert all("_edits" not in f.__dict__ for f in carried)
    assert body[-2].__dict__.get("_edits") == edits._FREE   # the new form was looked at
    trace = edited.edit_trace
    assert list(trace.origins[(2, 1)]) == list(range(1, len(body)))
    assert not trace.removed and not trace.touched


def test_the_known_edit_free_run_stops_at_a_form_edit_time_changes():
    env = immutables.Map({Symbol("a"): 5})
    _, edited, prefix, carry = chain(4, env, first="(def a 1) (persist a)")
    assert carry.free == 1   # (def a 1) only: (persist a) is rewritten at every step
    body = edited[-1][1]
    assert pr_str(body[2]) == "(persist a 5)"
    # the same program read whole, without a carry, edits to the same text
    _, whole = assemble(prefix + "1)))", "")
    _, carried = assemble(prefix + "1)))", "", carry=carry)
    assert pr_str(edit_reopen(whole, env)) == pr_str(edit_reopen(carried, env))


def test_a_marker_in_a_carried_body_still_takes_the_walk():
    _, _, prefix, carry = chain(3)
    form, edited, _, _ = step(prefix, "(def x 1) (def y 2) (prune 2) '(!extend)", carry)
    body = [pr_str(f) for f in edited[-1][1][1:]]
    assert "(def x 1)" not in body and "(def y 2)" not in body and "(prune 2)" not in body
    _, whole = assemble(prefix + "(def x 1) (def y 2) (prune 2) '(!extend)", "")
    reread = edit_reopen(whole, None)
    assert pr_str(edited) == pr_str(reread)
    assert edited.edit_trace.removed == reread.edit_trace.removed != {}
    assert edited.edit_trace.origins == reread.edit_trace.origins


def test_an_edit_free_body_is_traced_as_the_walk_traces_it():
    """Tracing a marker-free body in one step gives what visiting each form gives."""
    quine = read_one("(quine completion (eval (do (def a 1) (def b [2]) (f {:c 3}))))")
    fast = EditTrace(quine)
    assert apply_edits(quine, None, fast) is quine
    slow = EditTrace(quine)
    # the walk, as apply_edits runs it below the body level for a list it has not seen
    items = [apply_edits(x, None, slow, (2, 1, i)) for i, x in enumerate(quine[2][1][1:], 1)]
    edits._process_siblings(items, slow, (2, 1))
    assert list(fast.origins[(2, 1)]) == slow.origins[(2, 1)]
    assert fast.removed == slow.removed and fast.touched == slow.touched


def test_the_trace_of_a_kept_body_is_one_kept_row_and_what_was_added():
    form, edited, prefix, carry = chain(30)
    new_form, _, _, _ = step(prefix, "(def x 1) '(!extend)", carry)
    n = len(edited[-1][1]) - 1
    report = program_trace.trace_program(edited.edit_trace.base, new_form, [
        {"start": 0, "end": len(prefix), "source": "prefix"},
        {"start": len(prefix), "end": len(prefix) + 20, "source": "model"}], edited.edit_trace)
    rows = report["sections"][-1]["rows"]
    assert rows[0] == {"op": "kept", "old": 0, "new": 0, "n": n}
    assert [r["op"] for r in rows[1:]] == ["added", "added"]


def test_expected_forms_read_as_the_list_they_stand_for():
    exp = program_trace._Expected(3, 4)
    exp.append(("!peek", None, None, "f"))
    as_list = [("kept", 3 + k, None, None) for k in range(4)] + [("!peek", None, None, "f")]
    assert list(exp) == as_list and len(exp) == 5
    assert [exp[k] for k in range(-5, 5)] == as_list + as_list


def test_a_continued_list_gets_the_attributes_the_caller_knows():
    text = "(do (a) (b) (c))"
    whole, _ = read_all_spans(text)
    forms, _ = read_all_spans("(do (a) (b))")   # forms read at the step before
    body = list(forms[0])
    got, _ = read_continuation(text, 11, [(body, list(forms[0].spans), 0, {"known": 2})])
    assert got[0] == whole[0] and got[0].spans == whole[0].spans
    assert got[0][1] is body[1] and got[0].known == 2
    assert isinstance(got[0], List)


def _traces(script: list[str]) -> list:
    from spellide.spell import api
    from spellide.spell.models.local import ScriptedModel
    events: list = []
    run = api.Run(api.RunConfig(prompt="p", recover=False, budget=None),
                  model=ScriptedModel(script), listeners=[events.append])
    result = api.execute_with_deep_stack(run.execute)
    assert result.error is None, result.error
    return [(e.data["program"], e.data.get("trace")) for e in events if e.type == api.events.PROGRAM]


def test_a_run_traces_alike_with_and_without_the_carry(monkeypatch):
    """The shortcuts (a known edit-free run, a body traced without a walk) report what the
    long way reports, markers and all."""
    script = []
    for i in range(12):
        script.append(["(def v{0} {0}) '(!extend)", "(def w{0} [1]) (prune 1) '(!extend)",
                       "(rethink \"again {0}\") '(!extend)", "(persist p{0} (+ 1 {0})) '(!extend)",
                       "'(!peek q{0} (+ {0} 2))", "(def z{0} 'sym) '(!print (str \"x\" {0}))"][i % 6]
                      .format(i))
    script.append("(count [1 2])")
    carried = _traces(script)
    monkeypatch.setattr(edits, "carry_quine_prefix",
                        lambda quine, previous=None: (edits._plain_prefix(quine), None))
    assert carried == _traces(script)
    assert any(r["op"] == "removed" for _, t in carried if t
               for s in t["sections"] for r in s["rows"])


def test_a_program_is_split_once_for_its_two_traces():
    """Split as the new version at one step, the same parts serve as the old one at the next."""
    _, edited, prefix, carry = chain(3)
    new_form, _, _, _ = step(prefix, "(def x 1) '(!extend)", carry)
    first = program_trace.trace_program(edited.edit_trace.base, new_form)
    parts = new_form._split_parts
    assert program_trace._split(new_form) is parts
    assert program_trace.trace_program(edited.edit_trace.base, new_form) == first
    assert parts[2] == list(new_form[-1][1][1:])
