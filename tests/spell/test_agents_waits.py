"""spell-agents.md section 10, cases 16-28: waits, the sleep refusal, capacity, cancellation,
failures and reverse requests, on real runs; case 24 on the coordinator alone."""

from __future__ import annotations

import pytest

from spellide.spell.agents.coordinator import Coordinator
from spellide.spell.data import Keyword, kw
from spellide.spell.machine import Run
from spellide.spell.api import RunConfig

from agents_harness import LP, PREFIX, RCPT, Harness, init, registers, m

HARNESS = ("harness", 0, "test")


def test_16_wait_without_edges_is_a_no_op():
    h = Harness({}, init=init("(do (def w (agents/!wait)) [w :after])"))
    assert h.execute().value == m("[nil :after]")
    assert h.result.steps == []


def test_17_nested_receiving_self_call_receives_the_report():
    action = ('(do (def edge (agents/ask :worker :question)) (def nested (!llm-self "(quine completion '
              '(eval (do " {:receive? true})) (agents/!wait) :continued)')
    h = Harness({"main": ["'41)))", "'42)))"]}, init=init(action))
    h.bare("worker")
    held = []

    def during_call_1():
        held.extend(h.mailbox("worker"))
        h.fill(1, "worker", kw("fast-result"))
    h.at("main", 1, during_call_1)
    edges = {}
    h.at_end(lambda run: edges.update(h.coord.edges))
    assert h.execute().value == kw("continued")
    assert held == ["{:from :main :expects-response true :edge-id 1 :body :question}"]
    assert h.prefixes("main")[1] == PREFIX("(quote 41)", RCPT(LP, 1, "{:from :worker :edge-id 1 :body :fast-result}"))
    assert len(h.steps("main")) == 2 and edges == {}


SELF_CALL = init('(!llm-self "(quine completion (eval (do " {:receive? true})')


def _peer_asks(h: Harness) -> None:
    h.bare("peer")
    h.at("main", 1, lambda: h.request("peer", ["main"], kw("answer-me")))


def test_18_sleep_refusal_is_catchable():
    h = Harness({"main": ["(quote (!extend))",
                          "'(try (agents/!wait) (catch f (do (t/mark (:message f)) (t/mark (agents/status)) "
                          "(agents/reply msg-1 17) :caught)))"]}, init=SELF_CALL)
    _peer_asks(h)
    peer = []
    h.at_end(lambda run: peer.extend(h.mailbox("peer")))
    assert h.execute().value == kw("caught")
    assert len(h.steps("main")) == 2
    message, status = h.marks
    assert ":sleep-refused" in message and ":in-edges" in message and "Cannot sleep" in message
    assert status[kw("status")] == kw("awake")
    [edge] = status[kw("in-edges")]
    assert edge[kw("slots")][kw("main")][kw("status")] == kw("pending")
    assert edge[kw("slots")][kw("main")][kw("generation")] == 1
    assert peer == ["{:from :main :edge-id 1 :body 17}"]


def test_19_sleep_refusal_is_recovered():
    """[design] spellide's recovery continuation evaluates a fresh ``(eval (do _error ...))``
    after the failed program, whose defs (``msg-1``) are shown but not in scope: the spec's
    ``(agents/reply msg-1 17)`` is written here with the request rebuilt from ``in-edges``."""
    answer = ("'(do (agents/reply {:expects-response true :edge-id (:id (first (agents/in-edges)))} 17) "
              ":recovered)")
    h = Harness({"main": ["(quote (!extend))", "'(agents/!wait)", answer]}, init=SELF_CALL, recover=True)
    _peer_asks(h)
    assert h.execute().value == kw("recovered")
    steps = h.steps("main")
    assert len(steps) == 3
    assert "_error" in steps[2]["prefix"] and "Cannot sleep" in steps[2]["prefix"]
    assert {s["generation"] for s in steps} == {1}
    assert h.mailbox("peer") == ["{:from :main :edge-id 1 :body 17}"]


def test_19b_repeating_the_refused_wait_exhausts_recovery():
    h = Harness({"main": ["(quote (!extend))"] + ["'(agents/!wait)"] * 4}, init=SELF_CALL, recover=True)
    _peer_asks(h)
    r = h.execute()
    assert r.error is not None and "Recovery limit exceeded" in r.error and "Cannot sleep" in r.error


def test_20_unrecovered_refusal_fails_the_lifecycle():
    h = Harness({"main": ["(quote (!extend))", "'(agents/!wait)"]}, init=SELF_CALL)
    _peer_asks(h)
    peer = []
    h.at_end(lambda run: peer.extend(h.coord.mailbox(kw("peer"))))
    r = h.execute()
    assert r.error is not None and "Cannot sleep" in r.error
    assert len(h.steps("main")) == 2
    [report] = peer
    body = report[kw("body")]
    assert body[Keyword("child-failure", "spell")] is True
    assert body[kw("phase")] == kw("lifecycle")


def test_21_capacity_is_not_catchable():
    h = Harness({}, init=init("(try (do (agents/ask :a 1) (agents/ask :b 2)) (catch e :caught))"), max_edges=1)
    h.bare("a", "b")
    b_mail = []
    h.at_end(lambda run: b_mail.extend(h.mailbox("b")))
    r = h.execute()
    assert r.error_kind == "coordinator-capacity" and "capacity exceeded" in r.error
    assert b_mail == []
    with pytest.raises(ValueError, match="positive integer :max-edges"):
        Run(RunConfig(init="1"), max_edges=0)


def test_22_returning_with_open_edges_warns_and_detaches():
    h = Harness({}, init=init("(do (agents/ask :w :work) :done)"))
    h.bare("w")
    late = []
    h.at_end(lambda run: late.append(h.fill(1, "w", 1)))
    assert h.execute().value == kw("done")
    [w] = h.result.warnings
    assert w["message"] == "Agent :main finished with unfinished outgoing edges; result collection abandoned."
    assert w["data"] == "{:handle :main :detached-edges [{:id 1 :targets [:w]}]}"
    assert late == [False]
    assert [e.data["message"] for e in h.events if e.type == "warning"] == [w["message"]]


def test_23_cancel():
    h = Harness({"main": ["'(!call-now c (agents/cancel (agents/ask :w :q)))", "[(:status c) (:id c)]"]},
                prompt="P")
    h.bare("w")
    assert h.execute().value == m("[:cancelled 1]")
    assert h.result.warnings == []
    h = Harness({"main": ["'(agents/cancel 99)"]}, prompt="P")
    r = h.execute()
    assert r.error is not None and "No outgoing edge owned by caller" in r.error


def test_24_an_undrained_request_belongs_to_the_next_lifecycle():
    c = Coordinator()
    for x in ("a", "b", "c"):
        c.register_bare(HARNESS, kw(x))
    e1 = c.request(HARNESS, kw("a"), [kw("b")], kw("first"))
    c.drain(HARNESS, kw("b"), "harness")
    e2 = c.request(HARNESS, kw("c"), [kw("b")], kw("second"))
    c.finish(HARNESS, kw("b"), 1, kw("first-result"))
    assert e1 not in c.edges
    assert [msg[kw("body")] for msg in c.mailbox(kw("a"))] == [kw("first-result")]
    assert c.edges[e2].slots[kw("b")].generation is None and c.edges[e2].status == "pending"
    assert (c.agents[kw("b")].status, c.agents[kw("b")].generation) == ("awake", 2)
    c.drain(HARNESS, kw("b"), "harness")
    c.finish(HARNESS, kw("b"), 2, kw("second-result"))
    assert [msg[kw("body")] for msg in c.mailbox(kw("c"))] == [kw("second-result")]
    kinds = [e["kind"] for e in c.journal]
    assert [e["seq"] for e in c.journal] == list(range(1, len(kinds) + 1))
    assert kinds.count("finish") == 2 and kinds.count("dormant-wake") == 1   # nothing runs a bare :b


def test_25_child_failure_is_reported_as_data():
    h = Harness({"w": ["'(/ 1 0)"], "main": ["(let [b (:body msg-1)] [(:spell/child-failure b) (:phase b) (:handle b)])"]},
                init=init('(agents/!spawn-ask "Fail." :w)'))
    assert h.execute().value == m("[true :lifecycle :w]")
    assert [a["status"] for a in h.result.agents if a["handle"] == ":w"] == ["failed"]


def test_26_nil_is_a_result():
    h = Harness({"w": ["nil"], "main": ["[(contains? msg-1 :body) (:body msg-1)]"]},
                init=init('(agents/!spawn-ask "Fail." :w)'))
    assert h.execute().value == m("[true nil]")


def test_27_reply_ask_negotiates():
    h = Harness({"seller": ["'(agents/!reply-ask msg-1 150)"], "main": ["'(do (agents/reply msg-1 :accept) :deal)"]},
                init=registers(["seller"], "(agents/!ask :seller 100)"))
    assert h.execute().value == kw("deal")
    assert RCPT("wait resumed", 1, "{:from :seller :expects-response true :edge-id 2 :body 150}") in h.prefixes("main")[0]
    to_seller = [e.data for e in h.events if e.type == "message" and e.data["targets"] == [":seller"]]
    assert [(d["kind"], d["edge"]) for d in to_seller] == [("request", 1), ("report", 2)]
    assert to_seller[1]["body"] == ":accept" and to_seller[1]["sender"] == ":main"
    reports_to_main = [e for e in h.events if e.type == "message" and e.data["kind"] == "report"
                       and e.data["targets"] == [":main"]]
    assert reports_to_main == []   # completing the singleton edge 1 sent no report


def test_28_reply_ask_on_an_answered_request_fails():
    h = Harness({"seller": ["'(do (agents/reply msg-1 1) (agents/!reply-ask msg-1 2))"], "main": ["(:body msg-1)"]},
                init=registers(["seller"], "(agents/!ask :seller 100)"))
    assert h.execute().value == 1
    assert "Incoming request slot is no longer pending" in h.run.agents.failures[kw("seller")]
    assert not any(e["kind"] == "reply-ask" for e in h.coord.journal)
