"""A multi-agent run as the core reports it (``spellide.spell.api.events``), for the IDE's tests
that need one without executing it: :main spawns :a and :b with one ``spawn-ask`` edge, each
worker answers, the report wakes :main, which finishes. Timestamps are given (not the clock),
so the expected lanes can be computed."""

from __future__ import annotations

from typing import Any, Iterator, Optional

from spellide.spell.api import events as ev

T0 = 1_800_000_000.0   # the run's start (seconds)


def fan_out_events(t0: float = T0, *, finish: bool = True) -> list[tuple[str, dict[str, Any], float]]:
    """``[(type, data, ts), ...]`` of a fan-out run: steps 1 (:main), 2 (:a), 3 (:b), 4 (:main
    woken by the report of edge 1, sent "from" both targets as the core prints a multi-target
    edge's report sender)."""
    P = "(quine completion (eval (do (quine prompt \"P\") (quote (!extend)) "
    out: list[tuple[str, dict[str, Any], Optional[float]]] = [
        (ev.RUN_STARTED, {"config": {}}, 0.0),
        (ev.AGENT, {"agent": ":main", "parent": None, "status": "running", "generation": 1}, 0.0),
        (ev.STEP_STARTED, {"step": 1, "parent": None, "depth": 1, "prefix": P, "model": "scripted",
                           "agent": ":main", "generation": 1}, 0.1),
        (ev.COMPLETION, {"step": 1, "completion": "'(agents/!spawn-ask [[\"A\" :a] [\"B\" :b]])))",
                         "usage": {}, "model": "scripted", "transport": "prefill"}, 0.5),
        (ev.AGENT, {"agent": ":a", "parent": ":main", "status": "running", "generation": 1, "step": 1}, 0.6),
        (ev.AGENT, {"agent": ":b", "parent": ":main", "status": "running", "generation": 1, "step": 1}, 0.6),
        (ev.MESSAGE, {"id": 1, "kind": "request", "sender": ":main", "targets": [":a", ":b"], "edge": 1,
                      "body": None, "step": 1}, 0.6),
        (ev.AGENT, {"agent": ":main", "parent": None, "status": "sleeping", "generation": 1, "step": 1}, 0.7),
        (ev.STEP_STARTED, {"step": 2, "parent": 1, "depth": 2, "prefix": "(quine prompt \"A\")",
                           "model": "scripted", "agent": ":a", "generation": 1}, 0.8),
        (ev.RECEIPT, {"agent": ":a", "step": 2, "site": "startup", "messages": [{"id": 1, "name": "msg-1"}]}, 0.8),
        (ev.STEP_STARTED, {"step": 3, "parent": 1, "depth": 2, "prefix": "(quine prompt \"B\")",
                           "model": "scripted", "agent": ":b", "generation": 1}, 0.9),
        (ev.RECEIPT, {"agent": ":b", "step": 3, "site": "startup", "messages": [{"id": 1, "name": "msg-1"}]}, 0.9),
        (ev.COMPLETION, {"step": 2, "completion": ":ra", "usage": {}, "model": "scripted"}, 1.4),
        (ev.STEP_FINISHED, {"step": 2, "value": ":ra", "error": None, "continued_by": None}, 1.5),
        (ev.AGENT, {"agent": ":a", "parent": ":main", "status": "finished", "generation": 1, "step": 2}, 1.5),
        (ev.COMPLETION, {"step": 3, "completion": ":rb", "usage": {}, "model": "scripted"}, 1.9),
        (ev.STEP_FINISHED, {"step": 3, "value": ":rb", "error": None, "continued_by": None}, 2.0),
        (ev.AGENT, {"agent": ":b", "parent": ":main", "status": "finished", "generation": 1, "step": 3}, 2.0),
        (ev.MESSAGE, {"id": 2, "kind": "report", "sender": "[:a :b]", "targets": [":main"], "edge": 1,
                      "body": "[{:from :a :body :ra} {:from :b :body :rb}]", "step": 3}, 2.0),
        (ev.AGENT, {"agent": ":main", "parent": None, "status": "running", "generation": 1, "step": 1}, 2.1),
        (ev.STEP_STARTED, {"step": 4, "parent": 1, "depth": 2, "prefix": P + "(def msg-1 {})",
                           "model": "scripted", "agent": ":main", "generation": 1}, 2.2),
        (ev.RECEIPT, {"agent": ":main", "step": 4, "site": "wait-resume",
                      "messages": [{"id": 2, "name": "msg-1"}]}, 2.2),
    ]
    if finish:
        out += [
            (ev.COMPLETION, {"step": 4, "completion": "(mapv :body (:body msg-1))", "usage": {}}, 2.6),
            (ev.STEP_FINISHED, {"step": 4, "value": "[:ra :rb]", "error": None, "continued_by": None}, 2.7),
            (ev.STEP_FINISHED, {"step": 1, "value": "[:ra :rb]", "error": None, "continued_by": None}, 2.7),
            (ev.AGENT, {"agent": ":main", "parent": None, "status": "finished", "generation": 1}, 2.8),
            (ev.RUN_FINISHED, {"value": "[:ra :rb]"}, 2.9),
        ]
    return [(t, d, t0 + dt) for t, d, dt in out]


def as_events(items: list[tuple[str, dict[str, Any], float]], start_seq: int = 0) -> Iterator[ev.Event]:
    """The items as numbered core events."""
    for i, (t, d, ts) in enumerate(items, start=start_seq + 1):
        yield ev.Event(i, t, d, ts)
