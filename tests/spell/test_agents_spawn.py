"""spell-agents.md section 10, cases 1-15: identity, spawn, collection, asking and replying,
each on a real run (threads, coordinator, receipt) with per-handle scripts."""

from __future__ import annotations

from spellide.spell.data import kw

from agents_harness import LD, LW, PREFIX, RCPT, Harness, init, registers, m


def test_01_current_and_parent_handle():
    h = Harness({"main": ["'(agents/current-handle)"]}, prompt="P")
    assert h.execute().value == kw("main")
    h = Harness({"main": ["'(agents/parent-handle)"]}, prompt="P")
    r = h.execute()
    assert r.error is None and r.value is None


def test_02_spawn_ask_collects_the_childs_value():
    h = Harness({"main": ["'(agents/!spawn-ask \"Return 42.\" :w)", "(:body msg-1)"], "w": ["42"]},
                prompt="P")
    ends = {}
    h.at_end(lambda run: ends.update(edges=dict(h.coord.edges), w=(h.agent("w").status, h.agent("w").generation)))
    assert h.execute().value == 42
    assert h.prefixes("w") == [PREFIX('(quine prompt "Return 42.")', "(quote (!extend))")]
    assert h.prefixes("main")[1] == PREFIX('(quine prompt "P")', "(quote (!extend))",
                                          '(quote (agents/!spawn-ask "Return 42." :w))',
                                          RCPT(LW, 1, "{:from :w :edge-id 1 :body 42}"))
    assert ends == {"edges": {}, "w": ("finished", 1)}
    steps = h.result.steps
    assert [s["id"] for s in steps] == sorted(s["id"] for s in steps)
    assert {(s["agent"], s["generation"]) for s in steps} == {(":main", 1), (":w", 1)}


def test_03_child_reports_its_parent():
    h = Harness({"kid": ["'(agents/parent-handle)"], "main": ["(:body msg-1)"]},
                init=init('(agents/!spawn-ask "Report parent." :kid)'))
    assert h.execute().value == kw("main")
    assert h.prefixes("main") == [PREFIX("(quote (agents/!spawn-ask \"Report parent.\" :kid))",
                                         RCPT(LW, 1, "{:from :kid :edge-id 1 :body :main}"))]


def test_04_multi_target_collection_wakes_once_in_target_order():
    h = Harness({"a": [":ra"], "b": [":rb"], "main": ["(mapv :body (:body msg-1))"]},
                init=init('(agents/!spawn-ask [["A" :a] ["B" :b]])'))
    # :a answers only after :b has finished: completion order differs from target order
    h.at("a", 1, lambda: _until(lambda: h.agent("b").status == "finished"))
    assert h.execute().value == m("[:ra :rb]")
    assert len(h.prefixes("main")) == 1
    assert h.prefixes("main")[0].endswith(
        RCPT(LW, 1, "{:from [:a :b] :edge-id 1 :body [{:from :a :body :ra} {:from :b :body :rb}]}") + " ")


def _until(cond, seconds: float = 10.0) -> None:
    import time
    end = time.monotonic() + seconds
    while not cond():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.005)


def test_05_spawn_without_collection():
    h = Harness({"main": ["'(!call-now h (agents/spawn \"Background.\"))", "h"], "spawn-1": ["nil"]},
                prompt="P")
    edges = {}
    h.at_end(lambda run: edges.update(h.coord.edges))
    assert h.execute().value == kw("spawn-1")
    assert h.prefixes("main")[1].endswith("(def h :spawn-1) ")
    assert edges == {}
    assert len(h.steps("spawn-1")) <= 1


def test_06_ask_a_registered_agent_dormant_resume():
    h = Harness({"w": ["(* 2 (:body msg-1))"], "main": ["(:body msg-1)"]},
                init=registers(["w"], "(agents/!ask :w 21)"))
    assert h.execute().value == 42
    [w1] = h.steps("w")
    assert w1["generation"] == 2
    assert w1["prefix"] == PREFIX('(quine prompt "Worker.")', "(quote nil)",
                                  RCPT(LD, 1, "{:from :main :expects-response true :edge-id 1 :body 21}"))
    assert h.prefixes("main")[0].endswith(RCPT(LW, 1, "{:from :w :edge-id 1 :body 42}") + " ")


def test_07_ask_keeps_the_caller_awake_rtb():
    action = "(do (agents/register :w saved) (!call-now e (agents/ask :w 21)))"
    statuses = []
    h = Harness({"w": ["(* 2 (:body msg-1))"], "main": ["'(agents/!wait)", "(:body msg-1)"]},
                init=init(action, f'(def saved "{__import__("agents_harness").SAVED}")'), scheduler="rtb")
    h.at("main", 1, lambda: statuses.append(h.agent("main").status))
    assert h.execute().value == 42
    assert h.prefixes("main")[0].endswith("(def e 1) ")
    assert statuses == ["awake"]


def test_08_reply_answers_the_request_not_the_return_value():
    h = Harness({"w": ["'(do (agents/reply msg-1 :answer) :done)"], "main": ["(:body msg-1)"]},
                init=registers(["w"], "(agents/!ask :w 21)"))
    assert h.execute().value == kw("answer")


def test_09_a_slot_fills_exactly_once():
    h = Harness({"w": ["'(!call-now r1 (agents/reply msg-1 1) r2 (agents/reply msg-1 2))", "[r1 r2]"],
                 "main": ["(:body msg-1)"]},
                init=registers(["w"], "(agents/!ask :w 21)"))
    assert h.execute().value == 1
    assert "(def r1 nil) (def r2 nil)" in h.prefixes("w")[1]


def test_10_send_then_ask_rtb():
    h = Harness({"w": ["'(do (agents/reply msg-1 \"pong\") :ok)"],
                 "main": ["[(:body msg-1) (contains? msg-1 :edge-id) (:body msg-2)]"]},
                init=registers(["w"], '(agents/send :w "ping") (agents/!ask :w :q)'), scheduler="rtb")
    assert h.execute().value == m('["pong" false :ok]')
    [w1] = h.prefixes("w")
    assert RCPT(LD, 1, '{:from :main :body "ping"}') + " " + \
        RCPT(LD, 2, "{:from :main :expects-response true :edge-id 1 :body :q}") in w1


def test_11_reply_needs_a_singleton_sender():
    h = Harness({"a": [":ra"], "b": [":rb"], "main": ["'(agents/reply msg-1 :thanks)"]},
                init=init('(agents/!spawn-ask [["A" :a] ["B" :b]])'))
    r = h.execute()
    assert r.error is not None and "requires a singleton sender" in r.error
    h = Harness({}, init=init("(agents/reply {:body 1} 2)"))
    r = h.execute()
    assert r.error is not None and "requires a singleton sender" in r.error


def test_12_bodyless_and_nil_body_requests():
    h = Harness({}, init=init("[(agents/ask :t) (agents/ask :t nil)]"))
    h.bare("t")
    seen = {}
    h.at_end(lambda run: seen.update(mail=h.mailbox("t"), warnings=list(h.coord.warnings)))
    assert h.execute().value == m("[1 2]")
    assert seen["mail"] == ["{:from :main :expects-response true :edge-id 1}",
                            "{:from :main :expects-response true :edge-id 2 :body nil}"]
    [w] = seen["warnings"]
    assert w["data"] == "{:handle :main :detached-edges [{:id 1 :targets [:t]} {:id 2 :targets [:t]}]}"


def test_13_bad_targets():
    h = Harness({}, init=init("[(try (agents/ask :nobody 1) (catch e (:message e))) "
                              "(try (agents/ask :main 1) (catch e (:message e))) "
                              "(try (agents/ask [:x :x] 1) (catch e (:message e)))]"))
    h.bare("x")
    v = h.execute().value
    assert "Handle not registered" in v[0]
    assert all("Wait targets must be nonempty, distinct, and exclude their source" in x for x in v[1:])
    assert h.coord.next_edge_id == 1


def test_14_ask_two_registered_agents():
    h = Harness({"a": ["10"], "b": ["20"], "main": ["(reduce + (map :body (:body msg-1)))"]},
                init=registers(["a", "b"], "(agents/!ask [:a :b] :q)"))
    assert h.execute().value == 30
    for x in ("a", "b"):
        assert RCPT(LD, 1, "{:from :main :expects-response true :edge-id 1 :body :q}") in h.prefixes(x)[0]


def test_15_durable_wait_survives_an_unrelated_message():
    h = Harness({"main": ["'(agents/!sleep)", "(:body msg-2)"]}, init=init("(agents/!ask :w :work)"))
    h.bare("w", "c")
    h.when_asleep("main", 1, lambda: h.send("main", "{:from :c :body :interrupt}"))
    h.when_asleep("main", 2, lambda: h.fill(1, "w", kw("result")))
    assert h.execute().value == kw("result")
    p1, p2 = h.prefixes("main")
    assert p1.endswith(RCPT(LW, 1, "{:from :c :body :interrupt}") + " ")
    assert p2 == PREFIX("(quote (agents/!ask :w :work))", RCPT(LW, 1, "{:from :c :body :interrupt}"),
                        "(quote (agents/!sleep))", RCPT(LW, 2, "{:from :w :edge-id 1 :body :result}"))
