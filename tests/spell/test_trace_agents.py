"""Trace directories of multi-agent runs (spell-agents.md section 9): real runs on the harness of
section 10, written in the reference's layout and read back. Node ids in start order across
agents, a spawned agent's calls under the step that spawned it, the handle and lifecycle under
``:spellide/`` keys, the coordinator warnings as the reference writes them, and the messages the
prompts received read back out of them."""

from __future__ import annotations

from pathlib import Path

from spellide.spell.data import Map, Vector, kw
from spellide.spell.reader import read_one
from spellide.spell.trace import import_trace_dir, message_receipts, write_trace_dir

from agents_harness import Harness, init, registers

FIXTURE = Path(__file__).parent / "fixtures" / "reference_trace"
DETACHED = "Agent :main finished with unfinished outgoing edges; result collection abandoned."


def two_workers() -> Harness:
    """:main spawn-asks :a and :b; :a makes a nested self-call before answering. Run to block
    (one agent at a time), so :a's two calls come before :b's."""
    h = Harness({"main": ["'(agents/!spawn-ask [[\"A\" :a] [\"B\" :b]])", "(mapv :body (:body msg-1))"],
                 "a": ["'(!llm-self \"(quine completion (eval (do \")", ":ra"], "b": [":rb"]}, prompt="P",
                scheduler="rtb")
    r = h.execute()
    assert r.error is None and r.value == Vector([kw("ra"), kw("rb")])
    return h


def nodes_of(directory: Path) -> dict[int, Map]:
    data = read_one((directory / "trace.edn").read_text(encoding="utf-8"))
    return {n[kw("id")]: n for n in data[kw("nodes")]}


def test_spawned_calls_hang_under_the_spawning_node(tmp_path):
    h = two_workers()
    write_trace_dir(h.result.to_json(), tmp_path)
    nodes = nodes_of(tmp_path)
    assert sorted(nodes) == list(range(len(h.result.steps))) == [0, 1, 2, 3, 4]   # contiguous
    starts = [nodes[i][kw("start-ms")] for i in sorted(nodes)]
    assert starts == sorted(starts)                                             # in start order
    agent = {i: n[kw("spellide/agent")] for i, n in nodes.items()}
    assert agent == {0: kw("main"), 1: kw("a"), 2: kw("a"), 3: kw("b"), 4: kw("main")}
    assert {n[kw("spellide/generation")] for n in nodes.values()} == {1}
    parents = {i: n[kw("parent")] for i, n in nodes.items()}
    # :a's and :b's first calls under :main's node 0 (which spawned them), :a's self-call under
    # :a's own node, the wait-resumed :main call under the node that waited
    assert parents == {0: None, 1: 0, 2: 1, 3: 0, 4: 0}
    assert [c[kw("child-id")] for c in nodes[0][kw("children")]] == [1, 3, 4]
    assert read_one((tmp_path / "trace.edn").read_text())[kw("root")] == 0
    tree = (tmp_path / "tree.txt").read_text(encoding="utf-8").splitlines()
    assert [line.split(" (quine")[0] for line in tree] == [
        "0", "\u251c\u2500 1 [:a]", "\u2502  \u2514\u2500 2 [:a]", "\u251c\u2500 3 [:b]", "\u2514\u2500 4"]


def test_import_gives_back_the_agents_and_parents(tmp_path):
    h = two_workers()
    out = h.result.to_json()
    write_trace_dir(out, tmp_path)
    back = import_trace_dir(tmp_path)
    assert back["source"] == "spellide-trace"
    fields = ("id", "parent", "depth", "agent", "generation", "prefix", "value")
    assert [{k: s[k] for k in fields} for s in back["steps"]] == [{k: s[k] for k in fields} for s in out["steps"]]
    assert back["agents"] == out["agents"]
    assert [a["handle"] for a in back["agents"]] == [":main", ":a", ":b"]
    # written again, the directory is the same
    write_trace_dir(back, tmp_path / "again")
    assert (tmp_path / "again" / "trace.edn").read_text() == (tmp_path / "trace.edn").read_text()


def test_warnings_are_written_as_the_reference_writes_them(tmp_path):
    h = Harness({}, init=init("(do (agents/ask :w :work) :done)"))
    h.bare("w")
    assert h.execute().value == kw("done")
    out = h.result.to_json()
    assert [w["message"] for w in out["warnings"]] == [DETACHED]
    write_trace_dir(out, tmp_path)
    data = read_one((tmp_path / "trace.edn").read_text())
    (w,) = data[kw("warnings")]
    assert set(w) == {kw("message"), kw("data"), kw("timestamp-ms")}
    assert w[kw("message")] == DETACHED
    assert w[kw("data")] == read_one("{:handle :main :detached-edges [{:id 1 :targets [:w]}]}")   # data, not text
    assert w[kw("timestamp-ms")] == out["warnings"][0]["timestamp_ms"]
    assert import_trace_dir(tmp_path)["warnings"] == out["warnings"]


def test_a_later_lifecycle_is_named_in_the_tree(tmp_path):
    h = Harness({"w": ["(* 2 (:body msg-1))"], "main": ["(:body msg-1)"]}, init=registers(["w"], "(agents/!ask :w 21)"))
    assert h.execute().value == 42
    write_trace_dir(h.result.to_json(), tmp_path)
    nodes = nodes_of(tmp_path)
    (w,) = [n for n in nodes.values() if n[kw("spellide/agent")] == kw("w")]
    assert w[kw("spellide/generation")] == 2
    tree = (tmp_path / "tree.txt").read_text(encoding="utf-8")
    assert f"{w[kw('id')]} [:w gen 2] (quine" in tree


def test_messages_received_are_read_back_from_the_prompts():
    h = Harness({"main": ["'(agents/!spawn-ask \"Return 42.\" :w)", "(:body msg-1)"], "w": ["42"]}, prompt="P")
    assert h.execute().value == 42
    (w_step,) = h.steps("w")
    main_steps = h.steps("main")
    assert message_receipts(h.result.steps) == [{
        "step": main_steps[1]["id"], "agent": ":main", "site": "wait-resume", "name": "msg-1",
        "message": "{:from :w :edge-id 1 :body 42}", "sender": ":w", "kind": "report", "edge": 1,
        "body": "42", "sender_step": w_step["id"]}]


def test_requests_sends_and_a_body_holding_receipt_text():
    # :w is asked at a dormant resume after a plain send whose body holds a receipt's tail text
    tricky = '"x) (quote (!extend completion))"'
    # (spell-agents.md case 10: :w replies to the plain send, then its return answers the ask)
    h = Harness({"w": ["'(do (agents/reply msg-1 \"pong\") :ok)"], "main": ["[(:body msg-1) (:body msg-2)]"]},
                init=registers(["w"], f"(agents/send :w {tricky}) (agents/!ask :w :q)"), scheduler="rtb")
    assert h.execute().value == Vector(["pong", kw("ok")])
    got = [(r["agent"], r["site"], r["name"], r["kind"], r["sender"], r["edge"], r["body"])
           for r in message_receipts(h.result.steps)]
    assert got == [(":w", "dormant-resume", "msg-1", "send", ":main", None, tricky),
                   (":w", "dormant-resume", "msg-2", "request", ":main", 1, ":q"),
                   (":main", "wait-resume", "msg-1", "send", ":w", None, '"pong"'),
                   (":main", "wait-resume", "msg-2", "report", ":w", 1, ":ok")]


def test_a_reference_trace_names_no_agents(tmp_path):
    res = import_trace_dir(FIXTURE)
    assert {(s["agent"], s["generation"]) for s in res["steps"]} == {(":main", 1)}
    assert res["agents"] == []
    assert "spellide/agent" not in (FIXTURE / "trace.edn").read_text()
    write_trace_dir(res, tmp_path)   # the guessed :main is written back as spellide's own key
    assert {n[kw("spellide/agent")] for n in nodes_of(tmp_path).values()} == {kw("main")}
    assert "[:main" not in (tmp_path / "tree.txt").read_text()


def test_unknown_top_level_keys_are_kept(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "trace.edn").write_text(
        '{:nodes [{:id 0 :parent nil :depth 1 :variant :default :prompt "(do " :response "1)" :value 1}]\n'
        ' :next-id 1 :root 0 :run/config {:model "m" :tags #{:a} :n [1 2.5 nil]} :meta "x" "odd key" sym}')
    res = import_trace_dir(src)
    assert res["extra"] == {":run/config": '{:model "m" :tags #{:a} :n [1 2.5 nil]}', ":meta": '"x"',
                            '"odd key"': "sym"}
    write_trace_dir(res, tmp_path / "out")
    data = read_one((tmp_path / "out" / "trace.edn").read_text())
    ref = read_one((src / "trace.edn").read_text())
    for key in (kw("run/config"), kw("meta"), "odd key"):
        assert data[key] == ref[key], key
    assert "extra" not in str(data[kw("spellide/run")])     # written once, at the top level
    assert import_trace_dir(tmp_path / "out")["extra"] == res["extra"]
    # a hand-made extra that would smuggle text into trace.edn is re-printed or left out
    res["extra"] = {":x": "1 :nodes []", ":nodes": "[]", ":y": "{:a 1} ; comment"}
    write_trace_dir(res, tmp_path / "out2")
    data = read_one((tmp_path / "out2" / "trace.edn").read_text())
    assert kw("x") not in data and data[kw("y")] == read_one("{:a 1}") and len(data[kw("nodes")]) == 1


def test_cli_writes_and_imports_a_multi_agent_trace(tmp_path, capsys):
    import json
    from spellide.spell.cli import main
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"main": ["'(agents/!spawn-ask \"Return 42.\" :w)", "(:body msg-1)"],
                                  "w": ["42"]}), encoding="utf-8")
    trace = tmp_path / "trace"
    assert main(["run", "--prompt", "P", "--model", f"scripted:{script}", "--trace-dir", str(trace), "--json"]) == 0
    ran = json.loads(capsys.readouterr().out)
    assert ran["value"] == "42" and [s["agent"] for s in ran["steps"]] == [":main", ":w", ":main"]
    assert [line.split(" (quine")[0] for line in (trace / "tree.txt").read_text(encoding="utf-8").splitlines()] == \
        ["0", "\u251c\u2500 1 [:w]", "\u2514\u2500 2"]
    assert main(["trace", "import", str(trace)]) == 0
    back = json.loads(capsys.readouterr().out)
    fields = ("id", "parent", "agent", "generation")
    assert [[s[k] for k in fields] for s in back["steps"]] == [[s[k] for k in fields] for s in ran["steps"]] == \
        [[0, None, ":main", 1], [1, 0, ":w", 1], [2, 0, ":main", 1]]
    assert back["agents"] == ran["agents"] and back["warnings"] == ran["warnings"] == []
