"""Futures with agents: spell-agents.md section 10, cases 34-36 (``!ask-await``,
``blocking/request``), and how they refuse and fail, on real runs with the coordinator."""

from __future__ import annotations

from spellide.spell.data import Vector, kw

from agents_harness import LW, PREFIX, RCPT, Harness, init, registers


def test_34_ask_await_delivers_the_futures_value_as_a_message():
    h = Harness({"main": ["(:body msg-1)"]}, init=init("(!ask-await (future (+ 40 2)))"))
    assert h.execute().value == 42
    assert h.prefixes("main")[0] == PREFIX("(quote (!ask-await (future (+ 40 2))))",
                                           RCPT(LW, 1, "{:from :future :body 42}"))


def test_34_a_failed_future_arrives_as_an_error_body():
    h = Harness({"main": ["[(string? (:future-await/error (:body msg-1))) (:class (:body msg-1))]"]},
                init=init("(!ask-await (future (/ 1 0)))"))
    assert h.execute().value == Vector((True, "eval"))
    assert ":future-await/error" in h.prefixes("main")[0]


def test_35_a_request_from_a_future_is_answered_without_a_report():
    h = Harness({"worker": ["(* 23 41)"], "main": ["(:body msg-1)"]},
                init=registers(["worker"], "(!ask-await (future (blocking/await (blocking/request "
                                           ":worker \"Multiply 23 by 41.\"))))"))
    assert h.execute().value == 943
    [w1] = h.steps("worker")
    assert "(def msg-1 {:from :main :expects-response true :edge-id 1 :body \"Multiply 23 by 41.\"})" \
        in w1["prefix"]
    [m1] = h.prefixes("main")
    assert m1.endswith(RCPT(LW, 1, "{:from :future :body 943}") + " ")
    assert "msg-2" not in m1   # no report message for the request's edge


def test_35_send_await_is_request_then_await():
    h = Harness({"worker": ["(inc (:body msg-1))"], "main": ["(:body msg-1)"]},
                init=registers(["worker"], "(!ask-await (future (blocking/send-await :worker 9)))"))
    assert h.execute().value == 10


def test_36_pmap_and_await_all_joined_from_the_turn():
    h = Harness({"main": ["(:body msg-1)"]},
                init=init("(!ask-await (future [(blocking/pmap (fn [x] (* x x)) [1 2 3]) "
                          "(blocking/await-all [(future 1) (future 2)])]))"))
    assert h.execute().value == Vector((Vector((1, 4, 9)), Vector((1, 2))))


def test_agent_context_ops_refuse_a_future():
    h = Harness({}, init=init("(future (try (agents/current-handle) (catch e (:message e))))"))
    r = h.execute()
    assert r.error is None, r.error
    from spellide.spell.futures import waitable
    fut = waitable(r.value)
    assert fut.done() and "requires an active agent context" in fut.outcome()


def test_a_request_to_an_unknown_handle_fails_in_the_future():
    h = Harness({"main": ["(:body msg-1)"]},
                init=init("(!ask-await (future (blocking/request :nobody 1)))"))
    r = h.execute()
    assert r.error is None, r.error
    assert "Handle not registered" in h.prefixes("main")[0]


def test_strict_replay_of_requests_and_effects_in_futures_executes_nothing(tmp_path):
    from spellide.spell.api import RunConfig
    from spellide.spell.machine import Run, execute_with_deep_stack

    program = registers(["worker"], "(!ask-await (future [(t/mark 1) (blocking/await (future (t/mark 2))) "
                                    "(blocking/send-await :worker 6)]))")
    h = Harness({"worker": ["(* 7 (:body msg-1))"], "main": ["(:body msg-1)"]}, init=program)
    original = h.execute()
    assert original.value == Vector((None, None, 42))
    assert h.marks == [1, 2] or h.marks == [2, 1]
    path = tmp_path / "run.json"
    h.run.record().save(path)

    marks = []
    config = RunConfig(init=program, model=f"replay:{path}", cache_mode="strict", recover=False)
    replay = Run(config, effect_namespaces={"t": {"mark": marks.append}})
    result = execute_with_deep_stack(replay.execute)
    assert result.error is None, result.error
    assert result.value == original.value
    assert result.effects_executed == 0 and marks == []
    hits = sorted((e.get("ctx", ""), e["name"]) for e in result.effects if e["status"] == "hit")
    assert ("f0", "t/mark") in hits and ("f0.f0", "t/mark") in hits
    internal = {(e.get("ctx", ""), e["name"]) for e in result.effects if e["status"] == "live"}
    assert ("f0", "blocking/request") in internal and ("", "!ask-await") in internal


def test_ask_await_wakes_for_other_mail_and_rejoins_the_same_future_once():
    h = Harness({"main": ["'(!ask-await (globals/get :f))", "[(:body msg-1) (:body msg-2)]"]},
                init=init("(!ask-await (globals/set :f (future (do (t/mark :ran) "
                          "(globals/wait-until (fn [s] (:go s))) :done))))"))
    waits = []

    def on_event(event):
        if event.type == "agent" and event.data["status"] == "waiting" and event.data["agent"] == ":main":
            waits.append(event)
            if len(waits) == 1:     # the first join: other mail wakes the agent before the future ends
                h.send("main", "{:from :o :body :hi}")
            else:                   # the second join of the same future: now let it end
                h.run.globals.set(kw("go"), True)
    h.run.bus.subscribe(on_event)
    assert h.execute().value == Vector((kw("hi"), kw("done")))
    assert h.marks == [kw("ran")]   # one future, computed once, watched once
    assert len(waits) == 2


def test_ask_await_of_a_done_future_delivers_its_result_again():
    h = Harness({"main": ["'(!ask-await (globals/get :f))", "[(:body msg-1) (:body msg-2)]"]},
                init=init("(!ask-await (globals/set :f (future (do (t/mark :ran) 5))))"))
    assert h.execute().value == Vector((5, 5))
    assert h.marks == [kw("ran")]


def test_ask_await_is_refused_while_a_newer_request_waits_for_an_answer():
    h = Harness({"main": ["(quote (!extend))", "'(try (!ask-await (future 1)) (catch f (:message f)))"]},
                init="(eval (do '(!llm-self \"(quine completion (eval (do \" {:receive? true})))")
    h.bare("peer")
    h.at("main", 1, lambda: h.request("peer", ["main"], kw("answer-me")))
    value = h.execute().value
    assert "Cannot await computation while newer incoming obligations require attention" in value
