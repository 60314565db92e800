"""A multi-agent run's trace imported as a run: the steps keep their agents, lifecycles and
parents, and the run gets the multi-agent events a live run emits (agents, messages, receipts,
warnings), so the run page can show its agents. A reference trace stays a single-agent run."""

from __future__ import annotations

from pathlib import Path

import pytest

from spellide.spell import api
from spellide.web.models import RunEvent, Step
from spellide.web.trace_import import import_trace

pytestmark = pytest.mark.django_db(transaction=True)

FIXTURE = Path(__file__).resolve().parents[1] / "spell" / "fixtures" / "reference_trace"
DETACHED = "Agent :main finished with unfinished outgoing edges; result collection abandoned."


def run_to_trace(scripts: dict, directory: Path, bare: tuple[str, ...] = (), **config) -> dict:
    """Run a real multi-agent program with per-agent scripts (``bare``: handles registered with
    nothing to run them, as spell-agents.md's harness does); write its trace to ``directory``.
    Run-to-block scheduling (one agent at a time) makes the order of the agents' calls fixed."""
    run = api.Run(api.RunConfig(**config), model=api.ScriptedModel(scripts, name="scripted"), scheduler="rtb")
    for handle in bare:
        run.coordinator.register_bare(("harness", 0, "test"), api.read_one(handle))
    result = api.execute_with_deep_stack(run.execute)
    assert result.error is None, result.error
    out = result.to_json()
    api.write_trace_dir(out, directory)
    return out


def events(run, type_: str) -> list[dict]:
    return [e.data for e in RunEvent.objects.filter(run=run, type=type_).order_by("seq")]


def test_spawned_workers_import_with_their_agents(client, user, tmp_path):
    out = run_to_trace({"main": ["'(agents/!spawn-ask [[\"A\" :a] [\"B\" :b]])", "(mapv :body (:body msg-1))"],
                        "a": ["'(!llm-self \"(quine completion (eval (do \")", ":ra"], "b": [":rb"]},
                       tmp_path, prompt="P")
    run = import_trace(tmp_path, user)
    assert run.value == "[:ra :rb]"
    started = events(run, api.STEP_STARTED)
    assert [(e["step"], e["parent"], e["agent"], e["generation"]) for e in started] == \
        [(s["id"], s["parent"], s["agent"], s["generation"]) for s in out["steps"]] == \
        [(0, None, ":main", 1), (1, 0, ":a", 1), (2, 1, ":a", 1), (3, 0, ":b", 1), (4, 0, ":main", 1)]
    assert [s.parent for s in Step.objects.filter(run=run).order_by("step_id")] == [None, 0, 1, 0, 0]
    agents = events(run, api.events.AGENT)
    # each agent when it makes its first call (under the step that spawned it), and as it ended:
    # a worker with its last call, the root with the run
    assert [(a["agent"], a["parent"], a["status"], a["step"]) for a in agents] == [
        (":main", None, "running", None), (":a", ":main", "running", 0), (":a", ":main", "finished", None),
        (":b", ":main", "running", 0), (":b", ":main", "finished", None), (":main", None, "finished", None)]
    ended = {e.data["agent"]: e.ts for e in RunEvent.objects.filter(run=run, type=api.events.AGENT)
             if e.data["status"] == "finished"}
    assert ended[":a"] == pytest.approx(out["steps"][2]["finished"])
    assert ended[":main"] == pytest.approx(out["steps"][4]["finished"])
    (message,) = events(run, api.events.MESSAGE)
    # a collection's report comes from both targets: no one sender's step (as a live run says)
    assert message == {"id": 1, "kind": "report", "sender": "[:a :b]", "targets": [":main"], "edge": 1,
                       "step": None, "body": "[{:from :a :body :ra} {:from :b :body :rb}]"}
    assert events(run, api.events.RECEIPT) == [{"agent": ":main", "step": 4, "site": "wait-resume",
                                                "messages": [{"id": 1, "name": "msg-1"}]}]
    # the receipt comes before the call whose prompt holds it
    seqs = {(e.type, e.data.get("step")): e.seq for e in RunEvent.objects.filter(run=run)}
    assert seqs[(api.events.RECEIPT, 4)] < seqs[(api.STEP_STARTED, 4)]
    client.force_login(user)
    for url in ("", "steps/1/", "steps/4/", "steps/3/tab/tree/"):
        assert client.get(f"/runs/{run.public_id}/{url}").status_code == 200, url


def test_warnings_become_warning_events(user, tmp_path):
    # spell-agents.md case 22: :main asks :w (which nothing runs) and returns without waiting
    out = run_to_trace({"main": ["'(do (agents/ask :w :work) :done)"]}, tmp_path, bare=(":w",), prompt="P")
    assert [w["message"] for w in out["warnings"]] == [DETACHED]
    run = import_trace(tmp_path, user)
    (warning,) = events(run, api.events.WARNING)
    assert warning == {"message": DETACHED, "data": out["warnings"][0]["data"]}
    assert ":detached-edges [{:id 1 :targets [:w]}]" in warning["data"]
    assert run.origin["warnings"] == out["warnings"]
    warned = RunEvent.objects.get(run=run, type=api.events.WARNING)
    assert warned.ts == pytest.approx(out["warnings"][0]["timestamp_ms"] / 1000)


def test_a_reference_trace_imports_as_one_agent(user):
    run = import_trace(FIXTURE, user)
    assert {(e["agent"], e["generation"]) for e in events(run, api.STEP_STARTED)} == {(":main", 1)}
    for type_ in (api.events.AGENT, api.events.MESSAGE, api.events.RECEIPT):
        assert events(run, type_) == [], type_
    (warning,) = events(run, api.events.WARNING)
    assert warning["message"].startswith("Returned with 1 outstanding edge")
    assert warning["data"] == '{:edges [7] :handle :main :at "2025-03-01T12:00:03.500-00:00"}'


def test_a_failed_worker_and_a_later_lifecycle(user, tmp_path):
    # spell-agents.md case 25: :w fails; its child-failure report reaches :main's prompt
    out = run_to_trace({"main": ["(let [b (:body msg-1)] [(:spell/child-failure b) (:phase b) (:handle b)])"],
                        "w": ["'(/ 1 0)"]}, tmp_path / "failed",
                       init="(quine completion (eval (do '(agents/!spawn-ask \"Fail.\" :w))))", recover=False)
    run = import_trace(tmp_path / "failed", user)
    assert run.value == "[true :lifecycle :w]"
    assert [(a["agent"], a["status"]) for a in events(run, api.events.AGENT)] == [
        (":main", "running"), (":w", "running"), (":w", "failed"), (":main", "finished")]   # :main from the start
    (message,) = events(run, api.events.MESSAGE)
    assert message["kind"] == "report" and message["sender"] == ":w"
    assert ":spell/child-failure true" in message["body"] and ":phase :lifecycle" in message["body"]
    # spell-agents.md case 6: a registered agent's first call is its second lifecycle
    saved = '(quine completion (eval (do (quine prompt \\"Worker.\\") \'nil)))'
    init = (f"(quine completion (eval (do (def saved \"{saved}\") "
            "'(do (agents/register :w saved) (agents/!ask :w 21)))))")
    out = run_to_trace({"w": ["(* 2 (:body msg-1))"], "main": ["(:body msg-1)"]}, tmp_path / "dormant", init=init)
    run = import_trace(tmp_path / "dormant", user)
    assert run.value == "42"
    assert [(e["agent"], e["generation"]) for e in events(run, api.STEP_STARTED)] == \
        [(s["agent"], s["generation"]) for s in out["steps"]] == [(":w", 2), (":main", 1)]
    assert [(a["agent"], a["status"], a["generation"]) for a in events(run, api.events.AGENT)] == [
        (":main", "running", 1), (":w", "running", 2), (":w", "finished", 2), (":main", "finished", 1)]
    receipts = events(run, api.events.RECEIPT)
    assert [(r["agent"], r["site"], [m["name"] for m in r["messages"]]) for r in receipts] == [
        (":w", "dormant-resume", ["msg-1"]), (":main", "wait-resume", ["msg-1"])]
    assert [(m["kind"], m["sender"], m["body"]) for m in events(run, api.events.MESSAGE)] == [
        ("request", ":main", "21"), ("report", ":w", "42")]
