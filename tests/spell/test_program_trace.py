"""The edit trace the core reports with each program version: who removed, replaced or added
which forms, with spans, as the run made it (and rebuilt from two texts the same way)."""

from __future__ import annotations

from typing import Any

from spellide.spell import api, edits
from spellide.spell.models.local import ScriptedModel


class EditOnce(api.Controller):
    """Edits the whole program after the first completion, as a person would."""

    interactive = True

    def __init__(self, old: str, new: str) -> None:
        self.old, self.new, self.done = old, new, False

    def wants_pause(self, kind: str) -> bool:
        return kind == api.AFTER_COMPLETION and not self.done

    def checkpoint(self, point: api.PausePoint) -> api.Decision:
        self.done = True
        return api.Decision(api.CONTINUE, text=point.text.replace(self.old, self.new), author="alice")


def run(init: str, script: list[str], controller: Any = None) -> tuple[list[dict], list[str]]:
    """The traces and programs of a run's ``program`` events."""
    events: list[api.Event] = []
    r = api.Run(api.RunConfig(init=init, budget=None), model=ScriptedModel(script),
                listeners=[events.append], controller=controller)
    result = api.execute_with_deep_stack(r.execute)
    assert result.error is None, result.error
    programs = [e for e in events if e.type == api.events.PROGRAM]
    return [e.data.get("trace") for e in programs], [e.data["program"] for e in programs]


def body(trace: dict) -> list[dict]:
    return next(s for s in trace["sections"] if s["name"] == "body")["rows"]


def changes(trace: dict) -> list[tuple[str, str]]:
    return [(r["op"], r["by"]) for r in body(trace) if r["op"] != "kept"]


def text_of(text: str, place: list) -> str:
    return text[place[1]:place[2]]


INIT = ('(quine completion (eval (do (def a 1) (+ 1 2) (+ 3 4) (prune 2) (rethink "short" 9) '
        '(def rows [1 2 3]) (persist kept (count rows)) (quote (!call-now x (+ 1 1))))))')


def test_a_run_reports_what_each_marker_and_helper_did_with_spans():
    traces, programs = run(INIT, ["(def y 2) (quote (!extend))", "42"])
    t = traces[0]
    rows = body(t)
    assert t["base"] == [0, len(INIT)]
    assert changes(t) == [   # in reading order: where each removed form was
        ("removed", "rethink"),                                              # (def a 1)
        ("removed", "prune"), ("removed", "prune"), ("removed", "prune"),    # (+ 1 2) (+ 3 4), the marker
        ("replaced", "rethink"),                                             # -> (think "short" 9)
        ("replaced", "persist"), ("added", "!call-now"), ("added", "model"), ("added", "model"),
    ]
    pruned = [r for r in rows if r["op"] == "removed" and r.get("by") == "prune"]
    assert [text_of(INIT, r["old"]) for r in pruned] == ["(+ 1 2)", "(+ 3 4)", "(prune 2)"]
    assert pruned[-1].get("role") == "marker"
    assert all(text_of(INIT, r["marker"]) == "(prune 2)" for r in pruned)
    think = next(r for r in rows if r["op"] == "replaced" and r.get("by") == "rethink")
    assert text_of(programs[0], think["new"]) == '(think "short" 9)'
    assert text_of(INIT, think["old"]) == '(rethink "short" 9)'
    rethought = next(r for r in rows if r["op"] == "removed" and r.get("by") == "rethink")
    assert text_of(INIT, rethought["old"]) == "(def a 1)"
    persisted = next(r for r in rows if r.get("by") == "persist")
    assert text_of(INIT, persisted["old"]) == "(persist kept (count rows))"
    assert text_of(programs[0], persisted["new"]) == "(persist kept 3)"
    injected = next(r for r in rows if r.get("by") == "!call-now")
    assert text_of(programs[0], injected["new"]) == "(def x 2)"
    model = [text_of(programs[0], r["new"]) for r in rows if r.get("by") == "model"]
    assert model == ["(def y 2)", "(quote (!extend))"]
    kept = [r for r in rows if r["op"] == "kept"]
    assert sum(r["n"] for r in kept) == 2        # (def rows ...) and the inert (quote (!call-now ...))


def test_peek_and_print_are_named_and_a_later_step_prunes_what_peek_added():
    init = '(quine completion (eval (do (quote (!peek v (+ 1 2))))))'
    traces, programs = run(init, ["(quote (!print (* v 2)))", "(def z 1) 7"])
    assert [b for op, b in changes(traces[0]) if op == "added"][:2] == ["!peek", "!peek"]
    # the (prune 2) that !peek appended runs at the next edit time: it takes out the peek, the
    # def and itself
    second = body(traces[1])
    pruned = [text_of(programs[0], r["old"]) for r in second if r["op"] == "removed"]
    assert pruned == ["(quote (!peek v (+ 1 2)))", "(def v 3)", "(prune 2)"]
    assert ("added", "!print") in changes(traces[1])


def test_a_human_edit_is_reported_with_author():
    init = '(quine completion (eval (do (def a 1) (quote (!extend)))))'
    traces, programs = run(init, ["(def b 2) (quote (!extend))", "5"], controller=EditOnce("(def b 2)", "(def b 20)"))
    rows = body(traces[0])
    human = [r for r in rows if r.get("by") == "human"]
    assert [text_of(programs[0], r["new"]) for r in human] == ["(def b 20)"]
    assert human[0]["author"] == "alice" and human[0]["at"]


def test_changing_a_markers_meaning_in_the_core_changes_the_trace(monkeypatch):
    """The trace is what the markers did, not a second opinion: if (prune k) took 2k forms,
    the report says so (both as the run made it and when rebuilt from texts)."""
    init = '(quine completion (eval (do (def a 1) (def b 2) (def c 3) (prune 1) (quote (!extend)))))'
    traces, _ = run(init, ["1"])
    assert [r for r in body(traces[0]) if r["op"] == "removed" and r.get("role") != "marker"].__len__() == 1
    original = edits._prune_count
    monkeypatch.setattr(edits, "_prune_count", lambda form: 2 * (original(form) or 0))
    traces, programs = run(init, ["1"])
    gone = [text_of(init, r["old"]) for r in body(traces[0]) if r["op"] == "removed" and r.get("role") != "marker"]
    assert gone == ["(def b 2)", "(def c 3)"]
    rebuilt = api.trace_program(api.read_all_spans(init)[0][0], api.read_all_spans(programs[0])[0][0])
    assert [text_of(init, r["old"]) for r in body(rebuilt) if r["op"] == "removed" and r.get("role") != "marker"] \
        == ["(def b 2)", "(def c 3)"]


def test_a_fresh_context_has_no_edit_trace_and_a_chain_step_costs_no_full_listing():
    traces, _ = run('(quine completion (eval (do (quote (!llm-self (wrap-cat (quote (def a 1))))))))', ["2"])
    assert traces == [None]
    many = " ".join(f"(def v{i} {i})" for i in range(500))
    traces, _ = run(f"(quine completion (eval (do {many} (quote (!extend)))))", ["9"])
    rows = body(traces[0])
    assert rows[0] == {"op": "kept", "old": 0, "new": 0, "n": 501} and len(rows) == 2
