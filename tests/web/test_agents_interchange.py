"""A multi-agent run leaves this server and comes back whole: a bundle carries its agents,
messages, receipts and each step's agent; the OpenTelemetry export names each step's agent
and hangs a spawned agent's steps under the step that spawned it."""

from __future__ import annotations

import pytest

from spellide.spell import api
from spellide.web import lanes
from spellide.web.bundles import export_bundle, import_bundle
from spellide.web.interchange.otel import attributes, export_run, spans
from spellide.web.models import Agent, Message, Receipt, Run, Step

from .agent_events import fan_out_events
from .test_agents_persist import persist

pytestmark = pytest.mark.django_db


def _rows(run: Run) -> dict:
    return {
        "agents": list(Agent.objects.filter(run=run).order_by("order").values_list(
            "handle", "parent", "order", "status", "generation", "spawn_step", "intervals")),
        "messages": list(Message.objects.filter(run=run).order_by("seq").values_list(
            "msg_id", "kind", "sender", "targets", "edge", "body", "step_id", "sent_at")),
        "receipts": sorted(Receipt.objects.filter(run=run).values_list("msg_id", "agent", "step_id", "site", "name")),
        "steps": list(Step.objects.filter(run=run).order_by("step_id").values_list("step_id", "agent", "generation")),
    }


def test_a_bundle_carries_agents_messages_and_receipts(user, other_user):
    src = Run.objects.create(owner=user, title="fan-out", status=Run.Status.FINISHED)
    persist(src, fan_out_events())
    data = api.load_bundle_bytes(api.dump_bundle(export_bundle(src, user)))   # through the file format
    assert [a["handle"] for a in data["agents"]] == [":main", ":a", ":b"]
    got = import_bundle(data, other_user)
    assert _rows(got) == _rows(src)
    # and its page draws the same lanes
    assert str(lanes.timeline(got, "/b").svg) == str(lanes.timeline(src, "/b").svg)


def test_a_bundle_without_agent_rows_imports_as_before(user):
    src = Run.objects.create(owner=user, title="solo", status=Run.Status.FINISHED)
    data = export_bundle(src, user)
    for key in ("agents", "messages", "receipts"):
        assert data[key] == []
        del data[key]
    got = import_bundle(data, user)
    assert not Agent.objects.filter(run=got).exists()


def test_otel_names_each_steps_agent_and_nests_spawned_agents_under_the_spawner(user):
    run = Run.objects.create(owner=user, title="fan-out", status=Run.Status.FINISHED)
    items = fan_out_events()
    for t, d, _ in items:            # the workers' first steps name no parent step
        if t == "step_started" and d["agent"] in (":a", ":b"):
            d["parent"] = None
    persist(run, items)
    doc = export_run(run)
    by_step = {attributes(s).get("spellide.step.id"): s for s in spans(doc) if s["name"].startswith("step ")}
    assert {k: attributes(v)["spellide.agent.handle"] for k, v in by_step.items()} == {
        1: ":main", 2: ":a", 3: ":b", 4: ":main"}
    assert attributes(by_step[4])["spellide.agent.generation"] == 1
    assert by_step[2]["parentSpanId"] == by_step[1]["spanId"]
    assert by_step[3]["parentSpanId"] == by_step[1]["spanId"]
    root = next(s for s in spans(doc) if "parentSpanId" not in s)
    assert by_step[1]["parentSpanId"] == root["spanId"]


def test_otel_carries_messages_on_the_senders_step_and_receipts_on_the_receivers(user):
    run = Run.objects.create(owner=user, title="fan-out", status=Run.Status.FINISHED)
    persist(run, fan_out_events())
    doc = export_run(run)
    by_step = {attributes(s).get("spellide.step.id"): s for s in spans(doc) if s["name"].startswith("step ")}

    def events(sid, name):
        return [attributes(e) for e in by_step[sid].get("events", []) if e["name"] == name]
    sent = events(1, "spellide.message")
    assert [(m["spellide.message.kind"], m["spellide.message.edge"]) for m in sent] == [("request", 1)]
    assert sent[0]["spellide.message.targets"] == {"values": [{"stringValue": ":a"}, {"stringValue": ":b"}]}
    assert [(r["spellide.receipt.name"], r["spellide.receipt.site"]) for r in events(4, "spellide.receipt")] == [
        ("msg-1", "wait-resume")]
    assert events(3, "spellide.message")[0]["spellide.message.kind"] == "report"
