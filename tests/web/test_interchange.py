"""Interchange exports of a real run: OTLP/JSON checked against the OpenTelemetry protobuf
schema (the ``opentelemetry-proto`` messages, parsed by protobuf's own JSON parser) and an ATIF
trajectory, each carrying what spellide adds (program versions, effect-cache keys)."""

from __future__ import annotations

import base64
import copy
import json

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from spellide.spell.api import RunConfig
from spellide.web import runner
from spellide.web.interchange import otel
from spellide.web.models import Effect, Run, Step

from .conftest import finish
from .test_runner import io_config

pytestmark = pytest.mark.django_db(transaction=True)


def _otlp_to_protobuf_json(doc: dict) -> dict:
    """OTLP/JSON writes trace and span ids as hex; protobuf's generic JSON mapping reads bytes
    as base64. A receiver converts them before parsing, as this does."""
    doc = copy.deepcopy(doc)
    for span in otel.spans(doc):
        for key in ("traceId", "spanId", "parentSpanId"):
            if key in span:
                span[key] = base64.b64encode(bytes.fromhex(span[key])).decode()
    return doc


def _rebuild(versions: dict[str, dict], sha: str) -> str:
    v = versions[sha]
    base = _rebuild(versions, v["spellide.version.base_sha256"]) if "spellide.version.base_sha256" in v else ""
    return base[: v["spellide.version.keep_chars"]] + v["spellide.version.tail"]


@pytest.fixture
def io_run(user, scripted, tmp_path):
    run = finish(runner.start_run(user, io_config(scripted, tmp_path), "io <notes>"))
    assert run.status == Run.Status.FINISHED, run.error
    return run


def test_otel_export_is_valid_otlp_with_a_span_per_step_and_effect(client, user, io_run):
    client.force_login(user)
    r = client.get(f"/runs/{io_run.public_id}/export/otel.json")
    assert r.status_code == 200 and r["Content-Type"].startswith("application/json")
    assert "attachment" in r["Content-Disposition"]
    doc = json.loads(r.content)

    msg = json_format.Parse(json.dumps(_otlp_to_protobuf_json(doc)), ExportTraceServiceRequest())
    pb_spans = [s for rs in msg.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert all(len(s.trace_id) == 16 and len(s.span_id) == 8 for s in pb_spans)
    assert len({s.trace_id for s in pb_spans}) == 1

    spans = list(otel.spans(doc))
    steps = list(Step.objects.filter(run=io_run).order_by("step_id"))
    effects = list(Effect.objects.filter(run=io_run))
    assert len(spans) == 1 + len(steps) + len(effects)
    by_id = {s["spanId"]: s for s in spans}
    root = spans[0]
    assert "parentSpanId" not in root and otel.attributes(root)["gen_ai.operation.name"] == "invoke_agent"
    step_spans = {otel.attributes(s)["spellide.step.id"]: s for s in spans if s["name"].startswith("step ")}
    assert sorted(step_spans) == [s.step_id for s in steps]
    for s in steps:   # a step nests under its parent step (the root program under the run)
        parent = by_id[step_spans[s.step_id]["parentSpanId"]]
        want = step_spans[s.parent] if s.parent is not None else root
        assert parent is want

    model_spans = [s for s in spans if otel.attributes(s).get("spellide.effect.name", "").startswith("model/")]
    assert len(model_spans) == 4
    for s in model_spans:
        a = otel.attributes(s)
        assert a["gen_ai.operation.name"] == "text_completion" and s["kind"] == otel.KIND_CLIENT
        assert a["gen_ai.provider.name"] == "spellide" and a["spellide.effect.status"] == "live"
        assert by_id[s["parentSpanId"]]["name"] == f"step {a['spellide.effect.key.step']}"
    spit = [otel.attributes(s) for s in spans if otel.attributes(s).get("gen_ai.tool.name") == "io/spit"]
    assert len(spit) == 2 and all(a["spellide.effect.key.args_digest"] for a in spit)

    # every program version rebuilds exactly from the exported base + keep + tail chain
    versions = {}
    for s in step_spans.values():
        for ev in s.get("events", []):
            a = {kv["key"]: next(iter(kv["value"].values())) for kv in ev["attributes"]}
            a = {k: int(v) if k in ("spellide.version.keep_chars", "spellide.version.length") else v
                 for k, v in a.items()}
            versions[a["spellide.version.sha256"]] = a
    for s in steps:
        sha = otel.attributes(step_spans[s.step_id])["spellide.program.sha256"]
        assert _rebuild(versions, sha) == s.program_text()


def test_atif_export_has_a_step_per_spell_step_with_tool_calls(client, user, io_run):
    client.force_login(user)
    doc = json.loads(client.get(f"/runs/{io_run.public_id}/export/atif.json").content)
    assert doc["schema_version"] == "ATIF-v1.7" and doc["session_id"] == str(io_run.public_id)
    steps = doc["steps"]
    assert [s["step_id"] for s in steps] == list(range(1, len(steps) + 1))
    assert steps[0]["source"] == "user" and steps[0]["message"] == "Write notes"
    agent = steps[1:]
    assert [s["extra"]["spellide"]["step"] for s in agent] == [0, 1, 2, 3]
    calls = [c for s in agent for c in s.get("tool_calls", [])]
    assert [c["function_name"] for c in calls] == ["io/spit", "io/slurp", "io/spit"]
    ids = {c["tool_call_id"] for c in calls}
    results = [r for s in agent for r in s.get("observation", {}).get("results", [])]
    assert {r["source_call_id"] for r in results} == ids
    assert agent[3]["message"] == "(think \"done\") [n (:ok u)]"
    assert all(e["status"] == "live" for s in agent for e in s["extra"]["spellide"]["effects"])
    assert doc["final_metrics"]["total_steps"] == len(steps)


def test_exports_follow_the_run_access_rule(client, user, other_user, io_run):
    for fmt in ("otel", "atif"):
        client.force_login(other_user)
        assert client.get(f"/runs/{io_run.public_id}/export/{fmt}.json").status_code == 404
        client.logout()
        r = client.get(f"/runs/{io_run.public_id}/export/{fmt}.json")
        assert r.status_code == 302 and "/accounts/login/" in r["Location"]
        assert client.get(f"/share/nope/export/{fmt}.json").status_code == 404
    Run.objects.filter(pk=io_run.pk).update(share_token="tok-export-1")
    assert client.get("/share/tok-export-1/export/otel.json").status_code == 200
    assert client.get("/share/tok-export-1/export/atif.json").status_code == 200


def test_export_of_a_replayed_fork_marks_cache_hits(client, user, scripted):
    parent = finish(runner.start_run(user, RunConfig(prompt="P", model=scripted(
        ["(def x 1) '(!extend)", "(def y 2) '(!extend)", "(+ x y)"])), "p"))
    fork = finish(runner.fork_run(parent, user, 1))
    client.force_login(user)
    doc = json.loads(client.get(f"/runs/{fork.public_id}/export/otel.json").content)
    status = [otel.attributes(s)["spellide.effect.status"] for s in otel.spans(doc)
              if "spellide.effect.status" in otel.attributes(s)]
    assert "hit" in status
    root = otel.attributes(next(otel.spans(doc)))
    assert root["spellide.run.fork_of"] == str(parent.public_id)



def test_setup_view_links_the_exports_on_its_own_url_tree(client, user, io_run):
    client.force_login(user)
    html = client.get(f"/runs/{io_run.public_id}/setup/").content.decode()
    assert f'href="/runs/{io_run.public_id}/export/otel.json"' in html
    assert f'href="/runs/{io_run.public_id}/export/atif.json"' in html
    Run.objects.filter(pk=io_run.pk).update(share_token="tok-export-2")
    client.logout()
    html = client.get("/share/tok-export-2/setup/").content.decode()
    assert 'href="/share/tok-export-2/export/otel.json"' in html
