"""Trace directories: writing the reference's layout from a run result, importing reference
(and our own) trace directories, tree.txt rendering, and clear errors for bad input."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from spellide.spell.data import Keyword, Map, Vector, kw
from spellide.spell.reader import read_one
from spellide.spell.trace import import_trace_dir, render_tree, write_trace_dir

FIXTURE = Path(__file__).parent / "fixtures" / "reference_trace"

P0 = '(quine completion (eval (do (quine prompt "Return 42") (quote (!extend)) '


def sample_result() -> dict:
    """A run result in the CLI --json shape, as the machine produces it."""
    t = 1_740_000_000.0
    eff = {"key": {"step": 1, "ordinal": 0, "name": "io/slurp", "args_digest": "ab12"}, "step": 1,
           "ordinal": 0, "name": "io/slurp", "args": '["notes.txt"]', "args_digest": "ab12",
           "result": '{:ok "hi"}', "status": "live", "reason": "", "error": None, "error_kind": None,
           "started": t + 1.5, "duration_ms": 0.25}
    root_eff = dict(eff, step=-1, name="globals/set", key=dict(eff["key"], step=-1))
    return {
        "value": "42", "error": None, "error_kind": None, "status": "finished", "cost": 0.0012,
        "effects_executed": 2, "effects_reused": 0,
        "effects": [root_eff, eff],
        "steps": [
            {"id": 0, "parent": None, "depth": 1, "prefix": P0, "completion": "'(!call-now x (io/slurp \"notes.txt\"))",
             "program": P0 + "'(!call-now x (io/slurp \"notes.txt\"))))))", "value": "42", "error": None,
             "effects": [], "usage": {"input_tokens": 120, "cached_input_tokens": 0, "output_tokens": 9, "cost": 0.0006},
             "model": "scripted", "transport": "local", "started": t, "finished": t + 3.25,
             "continued_by": None, "error_span": None},
            {"id": 1, "parent": 0, "depth": 2, "prefix": "(do \"tab\there\" \\u00e9 ",
             "completion": "42)", "program": "(do \"tab\there\" \\u00e9 42)", "value": "42", "error": None,
             "effects": [eff], "usage": {"input_tokens": 7, "cached_input_tokens": 2, "output_tokens": 1, "cost": 0.0006},
             "model": "scripted", "transport": "local", "started": t + 1, "finished": t + 3},
            {"id": 2, "parent": 1, "depth": 3, "prefix": "line one\nline \"two\" ends \\ here", "completion": "(oops",
             "program": None, "value": None, "error": "EOF while reading at 1:6", "effects": [],
             "usage": None, "model": "scripted", "transport": "local", "started": t + 1.2, "finished": t + 1.3,
             "error_span": {"line": 1, "col": 6}},
            {"id": 3, "parent": 1, "depth": 3, "prefix": "(do ", "completion": None, "program": None,
             "value": None, "error": None, "effects": [], "usage": None, "started": t + 2},
        ],
    }


# --- writing -------------------------------------------------------------------------------

def test_write_layout(tmp_path):
    res = sample_result()
    write_trace_dir(res, tmp_path / "t")
    d = tmp_path / "t"
    assert sorted(p.name for p in d.iterdir()) == ["0000.spl", "0001.spl", "0002.spl", "trace.edn", "tree.txt"]
    assert (d / "0000.spl").read_text() == res["steps"][0]["program"]
    assert (d / "0001.spl").read_text() == res["steps"][1]["program"]
    # a step without an assembled program keeps prefix + completion (what the model produced)
    assert (d / "0002.spl").read_text() == res["steps"][2]["prefix"] + "(oops"


def test_trace_edn_reads_back_with_reference_keys(tmp_path):
    write_trace_dir(sample_result(), tmp_path)
    data = read_one((tmp_path / "trace.edn").read_text())
    assert isinstance(data, Map)
    assert data[kw("next-id")] == 4 and data[kw("root")] == 0
    nodes = data[kw("nodes")]
    assert [n[kw("id")] for n in nodes] == [0, 1, 2, 3]
    n0 = nodes[0]
    assert list(n0)[:7] == [kw(k) for k in ("id", "parent", "depth", "variant", "prompt", "start-ms", "children")]
    assert n0[kw("parent")] is None and n0[kw("depth")] == 1
    assert n0[kw("variant")] is Keyword("default")
    assert n0[kw("prompt")] == P0
    assert n0[kw("start-ms")] == 1_740_000_000_000 and n0[kw("end-ms")] == 1_740_000_003_250
    assert n0[kw("children")] == Vector([Map({kw("child-id"): 1, kw("call-prompt"): "(do \"tab\there\" \\u00e9 "})])
    assert n0[kw("value")] == 42  # data, as in the reference, not the string "42"
    assert n0[kw("spellide/value-text")] == "42"
    assert n0[kw("file")] == "0000.spl"
    assert n0[kw("spellide/usage")][kw("input_tokens")] == 120
    assert n0[kw("spellide/model")] == "scripted"
    n2 = nodes[2]
    assert n2[kw("error")] == "EOF while reading at 1:6" and kw("value") not in n2
    assert n2[kw("prompt")] == "line one\nline \"two\" ends \\ here"
    n3 = nodes[3]
    assert kw("value") not in n3 and kw("error") not in n3 and kw("end-ms") not in n3
    assert kw("file") not in n3  # no program text, so no file and no :file
    assert nodes[1][kw("spellide/effects")][0][kw("name")] == "io/slurp"
    run = data[kw("spellide/run")]
    assert run[kw("value")] == "42" and run[kw("status")] == "finished"
    assert run[kw("root_effects")][0][kw("name")] == "globals/set"


def test_tree_txt(tmp_path):
    write_trace_dir(sample_result(), tmp_path)
    assert (tmp_path / "tree.txt").read_text() == (
        "0 (quine completion (eval (do (quine promp... \u2192 42\n"
        "\u2514\u2500 1 (do \"tab\there\" \\u00e9  \u2192 42\n"
        "   \u251c\u2500 2 line one\\nline \"two\" ends \\ here \u2717 EOF while reading at 1:6\n"
        "   \u2514\u2500 3 (do\n")


def test_value_that_does_not_read_back_is_kept_as_text(tmp_path):
    res = {"value": None, "error": None, "steps": [
        {"id": 0, "parent": None, "depth": 1, "prefix": "p", "completion": "c", "value": "1 2"},
        {"id": 1, "parent": None, "depth": 1, "prefix": "p", "completion": "c", "value": "1 ;x :file \"y\""},
        {"id": 2, "parent": None, "depth": 1, "prefix": "p", "completion": "c", "value": "{:a \"\\n\"}"},
    ]}
    write_trace_dir(res, tmp_path)
    nodes = read_one((tmp_path / "trace.edn").read_text())[kw("nodes")]
    assert nodes[0][kw("value")] == "1 2"  # two forms: written as a string
    assert nodes[1][kw("value")] == 1      # canonical re-print: the comment cannot eat the line
    assert nodes[1][kw("file")] == "0001.spl"
    assert nodes[2][kw("value")] == Map({kw("a"): "\n"})
    back = import_trace_dir(tmp_path)
    assert [s["value"] for s in back["steps"]] == ["1 2", "1 ;x :file \"y\"", "{:a \"\\n\"}"]


def test_write_then_import_round_trip(tmp_path):
    res = sample_result()
    write_trace_dir(res, tmp_path)
    back = import_trace_dir(tmp_path)
    assert back["source"] == "spellide-trace"
    for key in ("value", "error", "error_kind", "status", "cost", "effects_executed", "effects_reused"):
        assert back[key] == res[key]
    assert back["effects"] == res["effects"]
    assert len(back["steps"]) == len(res["steps"])
    for orig, got in zip(res["steps"], back["steps"]):
        for key, value in orig.items():
            if key == "program" and value is None and orig.get("completion") is not None:
                assert got["program"] == orig["prefix"] + orig["completion"]  # from the .spl file
                continue
            if key in ("started", "finished"):
                assert got[key] == pytest.approx(value, abs=1e-3)
                continue
            assert got[key] == value, key
    # it is JSON
    json.dumps(back)


def test_round_trip_is_stable(tmp_path):
    write_trace_dir(sample_result(), tmp_path / "a")
    first = import_trace_dir(tmp_path / "a")
    write_trace_dir(first, tmp_path / "b")
    second = import_trace_dir(tmp_path / "b")
    for s in first["steps"] + second["steps"]:
        s.pop("file")
    first.pop("trace_dir"), second.pop("trace_dir")
    assert first == second
    # after one import (which fills in a missing program from its file) exports are identical
    write_trace_dir(second, tmp_path / "c")
    assert (tmp_path / "b/trace.edn").read_text() == (tmp_path / "c/trace.edn").read_text()
    assert (tmp_path / "a/tree.txt").read_text() == (tmp_path / "c/tree.txt").read_text()


def test_all_roots_are_rendered():
    """Spell case 47: an init program making two top-level model calls gives two roots; the
    reference renders only :root (node 0). We render both, deliberately."""
    steps = [{"id": 0, "parent": None, "prefix": "(do ", "value": "1"},
             {"id": 1, "parent": None, "prefix": "(do ", "value": "2"}]
    assert render_tree(steps) == "0 (do  \u2192 1\n1 (do  \u2192 2"


def test_tree_from_the_three_deep_chain():
    steps = [{"id": i, "parent": i - 1 if i else None, "prefix": "(eval (do ", "value": "99"} for i in range(3)]
    assert render_tree(steps) == ("0 (eval (do  \u2192 99\n"
                                  "\u2514\u2500 1 (eval (do  \u2192 99\n"
                                  "   \u2514\u2500 2 (eval (do  \u2192 99")


def test_tree_of_a_long_chain_stays_linear(tmp_path):
    n = 10_000
    steps = [{"id": i, "parent": i - 1 if i else None, "depth": i + 1, "prefix": "(do ",
              "completion": "1)", "value": "1"} for i in range(n)]
    t0 = time.monotonic()
    text = render_tree(steps)
    lines = text.split("\n")
    assert len(lines) == n
    assert max(len(line) for line in lines) < 250
    assert lines[-1].startswith("… ")
    write_trace_dir({"value": "1", "steps": steps}, tmp_path)
    assert len(read_one((tmp_path / "trace.edn").read_text())[kw("nodes")]) == n
    assert time.monotonic() - t0 < 30


def test_tree_with_a_parent_cycle_shows_every_node():
    steps = [{"id": 0, "parent": 1, "prefix": "a"}, {"id": 1, "parent": 0, "prefix": "b"},
             {"id": 2, "parent": None, "prefix": "c"}]
    text = render_tree(steps)
    assert sorted(line.lstrip("\u2514\u2500 ")[0] for line in text.split("\n")) == ["0", "1", "2"]


def test_empty_trace(tmp_path):
    write_trace_dir({"value": None, "error": "no model call", "steps": []}, tmp_path)
    data = read_one((tmp_path / "trace.edn").read_text())
    assert data[kw("nodes")] == Vector() and data[kw("root")] is None and data[kw("next-id")] == 0
    assert (tmp_path / "tree.txt").read_text() == "\n"
    assert import_trace_dir(tmp_path)["error"] == "no model call"


# --- importing the reference fixture ----------------------------------------------------------

def test_import_reference_fixture():
    res = import_trace_dir(FIXTURE)
    assert res["source"] == "reference-trace"
    assert res["status"] == "finished" and res["error"] is None
    assert res["value"] == '{:summary "Three words." :words 3 :source {:file "notes.txt" :lines [1 2]}}'
    steps = res["steps"]
    assert [s["id"] for s in steps] == [0, 1, 2, 3, 4]
    assert [s["parent"] for s in steps] == [None, 0, 1, 1, 1]
    assert [s["depth"] for s in steps] == [1, 2, 3, 3, 3]
    assert [s["variant"] for s in steps] == ["default", "default", "leaf", "default", "default"]
    s0, s1, s2, s3, s4 = steps
    assert s0["prefix"].startswith('(quine completion (eval (do (quine prompt "Summarize notes.txt')
    assert s0["completion"] == "(think \"Read the file first.\") '(!call-now notes (io/slurp \"notes.txt\"))"
    assert s0["program"] == (FIXTURE / "0000.spl").read_text()
    assert s0["program"] == s0["prefix"] + s0["completion"] + ")))"
    assert s0["file"] == "0000.spl"
    assert s0["started"] == 1740830400.0 and s0["finished"] == pytest.approx(1740830403.512)
    assert s0["effects"] == [] and s0["usage"] is None
    assert s1["prefix"] == s0["prefix"] + ("(think \"Read the file first.\") (quote (!call-now notes "
                                           "(io/slurp \"notes.txt\"))) (def notes {:ok \"alpha beta\\ngamma\"}) ")
    assert s1["program"] == s1["prefix"] + s1["completion"] + ")))"
    assert s1["reference"] == {"hooked": None}
    assert s2["prefix"] == "Summarize: alpha beta\ngamma"
    assert s2["program"] == "Three words." and s2["file"] == "0002.txt"
    assert s2["value"] == '"Three words."'
    assert s3["value"] == "nil" and s3["error"] is None  # a nil value is a value
    assert s4["error"] == "Unbound symbol: summarize" and s4["value"] is None
    assert s4["file"] is None  # 0004.spl is missing: the program is rebuilt from the node
    assert s4["program"] == s4["prefix"] + "))"
    assert res["warnings"][0]["message"].startswith("Returned with 1 outstanding edge")
    assert res["warnings"][0]["data"] == '{:edges [7] :handle :main :at "2025-03-01T12:00:03.500-00:00"}'
    assert res["warnings"][0]["timestamp_ms"] == 1740830403505   # the JSON shape's name
    json.dumps(res)


def test_reexport_of_the_fixture_keeps_the_reference_view(tmp_path):
    res = import_trace_dir(FIXTURE)
    write_trace_dir(res, tmp_path)
    data = read_one((tmp_path / "trace.edn").read_text())
    ref = read_one((FIXTURE / "trace.edn").read_text())
    for mine, theirs in zip(data[kw("nodes")], ref[kw("nodes")]):
        for key in ("id", "parent", "depth", "variant", "prompt", "start-ms", "end-ms", "response", "children"):
            assert mine.get(kw(key)) == theirs.get(kw(key)), key
        assert mine.get(kw("value"), "absent") == theirs.get(kw("value"), "absent")
        assert mine.get(kw("error")) == theirs.get(kw("error"))
    assert data[kw("warnings")] == ref[kw("warnings")]
    assert (tmp_path / "tree.txt").read_text() == (
        "0 (quine completion (eval (do (quine promp... \u2192 {:summary \"Three words.\" :word...\n"
        "\u2514\u2500 1 (quine completion (eval (do (quine promp... \u2192 {:summary \"Three words.\" :word...\n"
        "   \u251c\u2500 2 [leaf] Summarize: alpha beta\\ngamma \u2192 \"Three words.\"\n"
        "   \u251c\u2500 3 (do (think \"checkpoint\")  \u2192 nil\n"
        "   \u2514\u2500 4 (eval (do (def s \"Three words.\") (summar... \u2717 Unbound symbol: summarize\n")


# --- import errors ------------------------------------------------------------------------------

def test_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="trace directory not found: .*nope"):
        import_trace_dir(tmp_path / "nope")


def test_not_a_directory(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError, match="not a directory"):
        import_trace_dir(tmp_path / "f")


def test_missing_trace_edn(tmp_path):
    (tmp_path / "0000.spl").write_text("(do 1)")
    with pytest.raises(FileNotFoundError, match="no trace.edn in"):
        import_trace_dir(tmp_path)


def test_unreadable_edn_reports_line_and_column(tmp_path):
    (tmp_path / "trace.edn").write_text('{:nodes [{:id 0\n :prompt "x")]}')
    with pytest.raises(ValueError) as info:
        import_trace_dir(tmp_path)
    msg = str(info.value)
    assert "trace.edn" in msg and "line 2, column" in msg


def test_truncated_edn(tmp_path):
    (tmp_path / "trace.edn").write_text('{:nodes [{:id 0 :prompt "abc')
    with pytest.raises(ValueError, match=r"trace\.edn: cannot read EDN at line 1"):
        import_trace_dir(tmp_path)


@pytest.mark.parametrize("text, match", [
    ("[1 2]", "expected a map"),
    ("{:nodes {:a 1}}", ":nodes must be a vector"),
    ("{:nodes [{:id 0} 5]}", "node 1: a node must be a map"),
    ("{:nodes [{:prompt \"x\"}]}", "node 0: :id must be an integer"),
    ("{:nodes [{:id 0 :parent :x}]}", r"node 0 \(id 0\): :parent must be an integer"),
    ("{:nodes [{:id 0} {:id 0}]}", "duplicate :id 0"),
    ("{:nodes [{:id 0 :file \"../../etc/passwd\"}]}", "plain file name"),
    ("{:nodes [{:id 0 :file \"/etc/passwd\"}]}", "plain file name"),
])
def test_malformed_content(tmp_path, text, match):
    (tmp_path / "trace.edn").write_text(text)
    with pytest.raises(ValueError, match=match):
        import_trace_dir(tmp_path)


def test_symlinked_program_file_is_refused(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("private")
    d = tmp_path / "t"
    d.mkdir()
    (d / "trace.edn").write_text('{:nodes [{:id 0 :prompt "p" :file "0000.spl"}]}')
    os.symlink(secret, d / "0000.spl")
    with pytest.raises(ValueError, match="symbolic link"):
        import_trace_dir(d)


def test_non_utf8_files(tmp_path):
    (tmp_path / "trace.edn").write_bytes(b'{:nodes [{:id 0 :prompt "\xff"}]}')
    with pytest.raises(ValueError, match="not UTF-8"):
        import_trace_dir(tmp_path)
    (tmp_path / "trace.edn").write_text('{:nodes [{:id 0 :prompt "p" :file "0000.spl"}]}')
    (tmp_path / "0000.spl").write_bytes(b"(do \xfe)")
    with pytest.raises(ValueError, match="0000.spl: not UTF-8"):
        import_trace_dir(tmp_path)


def test_minimal_reference_trace(tmp_path):
    """Case 36: the dummy provider's one-node trace, with the :program as a form and the
    .spl file missing."""
    (tmp_path / "trace.edn").write_text(
        '{:nodes [{:id 0, :parent nil, :depth 1, :variant :default, :prompt "(do ", '
        ':start-ms 1, :children [], :end-ms 2, :response "\\"hello world\\")", '
        ':program (do "hello world"), :value "hello world", :file "0000.spl"}], :next-id 1, :root 0}')
    res = import_trace_dir(tmp_path)
    assert res["value"] == '"hello world"' and res["status"] == "finished"
    assert res["steps"][0]["program"] == '(do "hello world")'


def test_cli_trace_import(capsys):
    from spellide.spell.cli import main
    assert main(["trace", "import", str(FIXTURE)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [s["id"] for s in out["steps"]] == [0, 1, 2, 3, 4]
