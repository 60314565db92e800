"""spell-agents.md section 10, cases 29-31 (receipt) and 37-38 (globals shared by agents),
plus what the IDE is told about receipts: RECEIPT events and the edit trace of the rewrite."""

from __future__ import annotations

from spellide.spell.data import kw
from spellide.spell.printer import pr_str

from agents_harness import LP, LR, LS, PREFIX, RCPT, Harness, init, m

INIT_29 = init('(let [v (!llm-self "(quine completion (eval (do (def g :p) ")] {:v v :r (receive completion)})')
INIT_30 = init('(let [v (!llm-self "(quine completion (eval (do (def g :p) " {:receive? true})] '
               '{:v v :r (receive completion)})')


def test_29_a_raw_self_call_does_not_receive_and_receive_does():
    h = Harness({"main": ["'(do (t/mark :chosen) :chosen-result)"]}, init=INIT_29)
    h.at("main", 1, lambda: h.send("main", "{:from :o :body :m}"))
    left = []
    h.at_end(lambda run: left.extend(h.mailbox("main")))
    v = h.execute().value
    assert v[kw("v")] == kw("chosen-result")
    assert h.marks == [kw("chosen")] and len(h.result.steps) == 1
    assert pr_str(v[kw("r")]) == pr_str(m(INIT_29[:-3] + " " + RCPT(LR, 1, "{:from :o :body :m}") + ")))"))
    assert left == []


def test_30_a_receiving_self_call_preempts_the_action():
    h = Harness({"main": ["'(do (t/mark :chosen) :chosen-result)", "'(do (t/mark :received) :received-result)"]},
                init=INIT_30)
    h.at("main", 1, lambda: h.send("main", "{:from :o :body :m}"))
    v = h.execute().value
    assert v[kw("v")] == kw("received-result")
    assert h.marks == [kw("received")] and len(h.result.steps) == 2
    assert h.prefixes("main")[1] == PREFIX("(def g :p)", "(quote (do (t/mark :chosen) :chosen-result))",
                                          RCPT(LP, 1, "{:from :o :body :m}"))
    assert pr_str(v[kw("r")]) == pr_str(m(INIT_30))


def test_31_startup_receipt_batches_every_waiting_message():
    h = Harness({"main": [":continued"]}, init=init("(do (t/mark :tail) :not-run)"))
    h.bare("main")
    h.send("main", "{:from :o :body :one}")
    h.send("main", "{:from :o :body :two}")
    assert h.execute().value == kw("continued")
    assert h.marks == []
    assert h.prefixes("main") == [PREFIX("(quote (do (t/mark :tail) :not-run))", RCPT(LS, 1, "{:from :o :body :one}"),
                                         RCPT(LS, 2, "{:from :o :body :two}"))]
    [receipt] = [e.data for e in h.events if e.type == "receipt"]
    assert receipt["agent"] == ":main" and receipt["site"] == "startup"
    assert [x["name"] for x in receipt["messages"]] == ["msg-1", "msg-2"]


def test_receive_refuses_a_non_canonical_program_and_keeps_the_mail():
    h = Harness({"main": ["'(try (receive '(do 1)) (catch e (:message e))))))"]},
                init=init('(!llm-self "(quine completion (eval (do ")'))
    h.at("main", 1, lambda: h.send("main", "{:from :o :body :one}"))
    left = []
    h.at_end(lambda run: left.extend(h.mailbox("main")))
    r = h.execute()
    assert "receive expects a canonical completed quine" in r.value
    assert left == ["{:from :o :body :one}"]
    assert [a["generation"] for a in r.agents if a["handle"] == ":main"] == [1]   # the root is not woken again


def test_the_receipt_rewrite_is_in_the_edit_trace():
    h = Harness({"main": ["'(agents/!spawn-ask \"Return 42.\" :w)", "(:body msg-1)"], "w": ["42"]}, prompt="P",
                scheduler="rtb")   # :main sleeps before :w runs
    assert h.execute().value == 42
    receipts = [e for e in h.events if e.type == "program" and e.data.get("receipt")]
    [p] = receipts
    rows = [r for sec in p.data["trace"]["sections"] for r in sec["rows"] if r.get("by") == "receipt"]
    assert [r["op"] for r in rows] == ["added", "added", "added"]
    [r] = [e.data for e in h.events if e.type == "receipt"]
    assert (r["agent"], r["site"], [x["name"] for x in r["messages"]]) == (":main", "wait-resume", ["msg-1"])
    msg = [e.data for e in h.events if e.type == "message"]
    assert [(d["kind"], d["sender"], d["targets"], d["edge"], d.get("body")) for d in msg] == \
        [("report", ":w", [":main"], 1, "42")]
    statuses = [(e.data["agent"], e.data["status"]) for e in h.events if e.type == "agent"]
    assert statuses[0] == (":main", "running") and (":w", "finished") in statuses
    assert (":main", "sleeping") in statuses
    started = [e.data for e in h.events if e.type == "step_started"]
    assert [(d["agent"], d["generation"]) for d in started] == [(":main", 1), (":w", 1), (":main", 1)]


def test_msg_names_count_per_handle_across_lifecycles():
    from agents_harness import registers
    h = Harness({"w": ["(:body msg-1)", "(:body msg-2)"], "main": ["'(agents/!ask :w 2)", "(:body msg-2)"]},
                init=registers(["w"], "(agents/!ask :w 1)"))
    assert h.execute().value == 2
    gens = [s["generation"] for s in h.steps("w")]
    assert gens == [2, 3]
    assert "(def msg-2 {:from :main :expects-response true :edge-id 2 :body 2})" in h.prefixes("w")[1]


def test_37_globals_are_shared_with_spawned_agents():
    """spellide's ``!call-now`` writes a map value quoted (``(def r (quote {:main {}}))``),
    where the spec's case shows it bare; the value is the same."""
    h = Harness({"main": ["'(!call-now r (globals/get :roles))", "'(agents/!spawn-ask \"Register.\" :kid)", "(:body msg-1)"],
                 "kid": ["'(globals/update :roles (fn [m] (assoc m (agents/current-handle) \"worker\")))"]},
                prompt="P")
    assert h.execute().value == m('{:main {} :kid "worker"}')
    assert h.prefixes("main")[1].endswith("(def r (quote {:main {}})) ")


def test_38_wait_until_with_a_worker():
    action = ("(do (globals/set :results []) (globals/set :tasks [{:id 1} {:id 2}]) (agents/spawn \"Work.\" :w1) "
              "(globals/wait-until (fn [s] (= 2 (count (:results s))))) (globals/get :results))")
    h = Harness({"w1": ["'(!call-now t1 (globals/pop :tasks) t2 (globals/pop :tasks))",
                        "'(globals/update :results (fn [r] (conj r (:id t1) (:id t2))))"]},
                init=init(action))
    assert h.execute().value == m("[1 2]")
    assert h.steps("main") == []
