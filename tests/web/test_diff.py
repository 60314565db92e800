"""The structure-aware diff of successive programs: each kind of change is named."""

from __future__ import annotations

from spellide.web import diff as D


def prefix_model(text: str, cut: str) -> list[dict]:
    """Provenance: everything before ``cut`` is prefix, the rest the model's completion."""
    i = text.index(cut)
    return [{"start": 0, "end": i, "source": "prefix"}, {"start": i, "end": len(text), "source": "model"}]


def kinds(result: D.ProgramDiff) -> list[tuple[str, str | None, str | None]]:
    return [(r.kind, r.old.text if r.old else None, r.new.text if r.new else None) for r in result.rows]


def test_model_appends_forms_at_the_end():
    old = '(quine completion (eval (do (def a 1) (quote (!extend)))))'
    new = '(quine completion (eval (do (def a 1) (quote (!extend)) (def b 2) (quote (!extend)))))'
    r = D.diff_programs(old, new, prefix_model(new, "(def b 2)"))
    assert kinds(r) == [
        ("kept", "(def a 1)", "(def a 1)"),
        ("kept", "(quote (!extend))", "(quote (!extend))"),
        ("appended", None, "(def b 2)"),
        ("appended", None, "(quote (!extend))"),
    ]
    assert r.summary == {"kept": 2, "appended": 2}
    assert r.changed


def test_prune_removes_the_forms_before_it_and_itself():
    old = '(quine completion (eval (do (def a 1) (+ 1 2) (+ 3 4) (prune 2) (def b 2))))'
    new = '(quine completion (eval (do (def a 1) (def b 2) (def c 3))))'
    r = D.diff_programs(old, new, prefix_model(new, "(def c 3)"))
    rows = kinds(r)
    assert ("pruned", "(+ 1 2)", None) in rows and ("pruned", "(+ 3 4)", None) in rows
    assert ("marker", "(prune 2)", None) in rows
    pruned = [x for x in r.rows if x.kind == "pruned"]
    assert all(x.by == "(prune 2)" for x in pruned)
    # removed forms are listed where they were, before the form that followed them
    assert [k for k, _, _ in rows] == ["kept", "pruned", "pruned", "marker", "kept", "appended"]


def test_rethink_replaces_forms_with_think():
    old = '(quine completion (eval (do (def a 1) (def b 2) (rethink 2 "shorter" (def c 3)) (quote (!extend)))))'
    new = '(quine completion (eval (do (think "shorter" (def c 3)) (quote (!extend)) (def d 4))))'
    r = D.diff_programs(old, new, prefix_model(new, "(def d 4)"))
    rows = kinds(r)
    assert ("rethought", "(def a 1)", None) in rows and ("rethought", "(def b 2)", None) in rows
    think = [x for x in r.rows if x.kind == "think"]
    assert len(think) == 1
    assert think[0].old.text == '(rethink 2 "shorter" (def c 3))'
    assert think[0].new.text == '(think "shorter" (def c 3))'
    assert r.rows[-1].kind == "appended"


def test_a_later_rethink_replaces_an_earlier_think():
    old = '(quine completion (eval (do (think "A" 1) (rethink "B" 2))))'
    new = '(quine completion (eval (do (think "B" 2))))'
    r = D.diff_programs(old, new, [{"start": 0, "end": len(new), "source": "prefix"}])
    assert ("rethought", '(think "A" 1)', None) in kinds(r)
    assert [x.kind for x in r.rows if x.new] == ["think"]


def test_persist_rewrite_is_recognised():
    old = '(quine completion (eval (do (def rows [1 2 3]) (persist kept (subvec rows 1)))))'
    new = '(quine completion (eval (do (def rows [1 2 3]) (persist kept (quote [2 3])))))'
    r = D.diff_programs(old, new, [{"start": 0, "end": len(new), "source": "prefix"}])
    assert kinds(r)[1] == ("persisted", "(persist kept (subvec rows 1))", "(persist kept (quote [2 3]))")


def test_runtime_injected_defs_are_told_apart_from_model_text():
    old = '(quine completion (eval (do (quote (!call-now r (io/slurp "f"))))))'
    new = '(quine completion (eval (do (quote (!call-now r (io/slurp "f"))) (def r "text") (def x 1))))'
    r = D.diff_programs(old, new, prefix_model(new, "(def x 1)"))
    assert [k for k, _, _ in kinds(r)] == ["kept", "injected", "appended"]


def test_markers_nested_inside_a_form_are_applied():
    old = '(quine completion (eval (do (do (def a 1) (prune) (def b 2)))))'
    new = '(quine completion (eval (do (do (def b 2)))))'
    r = D.diff_programs(old, new, [{"start": 0, "end": len(new), "source": "prefix"}])
    assert kinds(r) == [("edited-inside", "(do (def a 1) (prune) (def b 2))", "(do (def b 2))")]


def test_human_edit_is_attributed_with_author_and_time():
    old = '(quine completion (eval (do (def a 1) (def b 2) (quote (!extend)))))'
    new = '(quine completion (eval (do (def a 1) (def b 20) (quote (!extend)) (def c 3))))'
    start = new.index("(def b 20)")
    prov = [{"start": 0, "end": start, "source": "prefix"},
            {"start": start, "end": start + len("(def b 20)"), "source": "human", "author": "alice", "at": 1700000000.0},
            {"start": start + len("(def b 20)"), "end": new.index("(def c 3)"), "source": "prefix"},
            {"start": new.index("(def c 3)"), "end": len(new), "source": "model"}]
    edits = [{"author": "alice", "at": 1700000000.0, "point": "before_model"}]
    r = D.diff_programs(old, new, prov, edits)
    human = [x for x in r.rows if x.kind == "human"]
    assert len(human) == 1
    assert human[0].new.text == "(def b 20)" and human[0].author == "alice" and human[0].at == 1700000000.0
    removed = [x for x in r.rows if x.kind == "human-removed"]
    assert [x.old.text for x in removed] == ["(def b 2)"] and removed[0].author == "alice"
    assert r.rows[-1].kind == "appended"
    assert r.human_edits == edits


def test_deletion_without_markers_or_edits_is_plain_removed():
    old = '(quine completion (eval (do (def a 1) (def b 2))))'
    new = '(quine completion (eval (do (def z 9))))'
    r = D.diff_programs(old, new, [{"start": 0, "end": len(new), "source": "model"}])
    assert {x.kind for x in r.rows if x.old and not x.new} == {"removed"}


def test_recovery_program_is_labelled():
    old = '(quine completion (eval (do (def a (/ 1 0)))))'
    new = '(quine completion (eval (do (def _error {:error "Divide by zero"}) (quote (!extend)))))'
    r = D.diff_programs(old, new, [{"start": 0, "end": len(new), "source": "recovery"}])
    assert {x.kind for x in r.rows if x.new} == {"recovery"}


def test_quine_arguments_are_diffed_separately():
    old = '(quine completion (eval (do (def a 1))))'
    new = '(quine completion (rethink "recover") (eval (do (def a 1))))'
    r = D.diff_programs(old, new, [{"start": 0, "end": len(new), "source": "recovery"}])
    assert any(x.section == "quine" for x in r.rows)


def test_unreadable_program_falls_back_to_line_diff():
    old = '(do (def a 1))'
    new = '(do (def a 1)\n (def b \\invalidchar))'
    r = D.diff_programs(old, new)
    assert r.error and "structural diff unavailable" in r.error
    assert any(l.tag == "+" for l in r.lines)


def test_line_diff_has_one_printed_form_per_line():
    old = '(quine completion (eval (do (def a 1)\n\n   (def b\n 2))))'
    new = '(quine completion (eval (do (def a 1) (def b 2) (def c 3))))'
    r = D.diff_programs(old, new)
    added = [l.text for l in r.lines if l.tag == "+"]
    removed = [l.text for l in r.lines if l.tag == "-"]
    assert added == ["(def c 3)"] and removed == []  # formatting differences are not changes
    assert r.lines[0].tag == "@"


def test_identical_programs_have_no_changes():
    text = '(quine completion (eval (do (def a 1) (quote (!extend)))))'
    r = D.diff_programs(text, text)
    assert not r.changed and r.lines == []


def test_long_forms_are_cut_for_display():
    big = "x" * 5000
    old = '(quine completion (eval (do (def a 1))))'
    new = f'(quine completion (eval (do (def a 1) (def s "{big}"))))'
    r = D.diff_programs(old, new)
    added = [x for x in r.rows if x.kind == "appended"][0]
    assert len(added.new.text) < 600 and "chars)" in added.new.text
    assert all(len(l.text) < 600 for l in r.lines)


def test_many_forms_diff_quickly():
    import time
    body = " ".join(f"(def v{i} {i})" for i in range(3000))
    old = f"(quine completion (eval (do {body} (quote (!extend)))))"
    new = f"(quine completion (eval (do {body} (quote (!extend)) (def z 1) (quote (!extend)))))"
    t = time.perf_counter()
    r = D.diff_programs(old, new, prefix_model(new, "(def z 1)"))
    assert time.perf_counter() - t < 5
    assert r.summary["appended"] == 2


def test_line_diff_lays_long_forms_out_so_a_change_inside_one_is_one_line():
    items = " ".join(f':k{i} "value number {i}"' for i in range(12))
    old = f'(quine completion (eval (do (def a 1) (def config {{{items} :mode "fast"}}))))'
    new = old.replace(':mode "fast"', ':mode "slow"')
    r = D.diff_programs(old, new)
    added = [l.text for l in r.lines if l.tag == "+"]
    removed = [l.text for l in r.lines if l.tag == "-"]
    assert [l.strip() for l in added] == [':mode "slow"})'] and [l.strip() for l in removed] == [':mode "fast"})']
    context = [l.text for l in r.lines if l.tag == " "]
    assert any(l.strip().startswith(":k11") for l in context)
    # the structural row of the changed form offers the whole form, laid out
    (row,) = [x for x in r.rows if x.new is not None and x.kind != "kept"]
    assert row.new.cut and row.new.pretty.startswith("(def config\n") and ':mode "slow"' in row.new.pretty


# --- the diff renders the core's edit trace ------------------------------------------------

def _run_programs(init: str, script: list[str]) -> list[tuple[str, list, dict]]:
    """(program, provenance, trace) of each ``program`` event of a real run."""
    from spellide.spell import api

    events: list = []
    run = api.Run(api.RunConfig(init=init, budget=None), model=api.ScriptedModel(script), listeners=[events.append])
    assert api.execute_with_deep_stack(run.execute).error is None
    return [(e.data["program"], e.data["provenance"], e.data.get("trace")) for e in events if e.type == "program"]


def test_the_diff_shows_what_the_run_reported():
    init = ('(quine completion (eval (do (def rows [1 2 3]) (persist kept (count rows)) '
            '(quote (!call-now x (+ 1 1))))))')
    [(program, prov, trace)] = _run_programs(init, ["9"])
    assert trace is not None
    r = D.diff_programs(init, program, prov, trace=trace)
    assert ("persisted", "(persist kept (count rows))", "(persist kept 3)") in kinds(r)
    injected = [x for x in r.rows if x.kind == "injected"]
    assert [x.new.text for x in injected] == ["(def x 2)"] and injected[0].by == "!call-now"
    assert r.rows[-1].kind == "appended" and r.rows[-1].new.text == "9"
    # without the run's trace the value of persist is unknown, but the rewrite is still named
    assert ("persisted", "(persist kept (count rows))", "(persist kept 3)") in kinds(D.diff_programs(init, program, prov))


def test_a_trace_made_against_another_program_is_not_used():
    init = '(quine completion (eval (do (def a 1) (prune) (quote (!extend)))))'
    [(program, prov, trace)] = _run_programs(init, ["2"])
    other = '(quine completion (eval (do (def z 0) (quote (!extend)))))'
    r = D.diff_programs(other, program, prov, trace=trace)
    assert "pruned" not in r.summary and r.summary.get("removed") == 1


def test_a_markers_meaning_is_the_cores(monkeypatch):
    """Change what prune does in the core and the diff says the new thing: the diff has no
    rule of its own."""
    from spellide.spell import edits

    old = '(quine completion (eval (do (def a 1) (def b 2) (def c 3) (prune 1) (quote (!extend)))))'
    new = '(quine completion (eval (do (def a 1) (quote (!extend)) (def d 4))))'
    prov = prefix_model(new, "(def d 4)")
    assert [x.old.text for x in D.diff_programs(old, new, prov).rows if x.kind == "pruned"] == ["(def c 3)"]
    original = edits._prune_count
    monkeypatch.setattr(edits, "_prune_count", lambda form: 2 * (original(form) or 0))
    assert [x.old.text for x in D.diff_programs(old, new, prov).rows if x.kind == "pruned"] == ["(def b 2)", "(def c 3)"]
    [(program, prov2, trace)] = _run_programs(old, ["(def d 4)"])
    assert [x.old.text for x in D.diff_programs(old, program, prov2, trace=trace).rows
            if x.kind == "pruned"] == ["(def b 2)", "(def c 3)"]
