"""A run as OpenTelemetry trace data: OTLP/JSON spans that follow the GenAI semantic conventions.

Any OTel backend (Jaeger, Tempo, Langfuse, Phoenix, an OTel collector) can take a spellide run
this way. The shape is one trace per run: a root span for the run (``invoke_agent``), a span per
step under its parent step (nested ``!llm-self`` calls nest as spans do), and a span per effect
under the step whose evaluation performed it. Model calls (``model/...`` effects) carry the
``gen_ai.*`` attributes; everything Spell-specific is under ``spellide.*`` (the README lists
each field).

Program versions travel as span events, stored the way spellide stores them: a version names its
base version and how many of the base's characters it keeps, plus the new tail, so an export grows
with the new text, not with steps x program size, and every program can be rebuilt exactly.

OTLP/JSON differs from protobuf's generic JSON mapping in two ways that matter here: trace and
span ids are hex strings, and enums are integers. Timestamps are decimal strings of nanoseconds.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, Iterator, Optional

from spellide.web.models import MAIN_AGENT, Agent, Effect, Message, ProgramVersion, Receipt, Run, RunEvent, Step

SCOPE_NAME = "spellide"
SCHEMA_URL = "https://opentelemetry.io/schemas/1.37.0"

# Span kinds (opentelemetry.proto.trace.v1.Span.SpanKind) and status codes.
KIND_INTERNAL, KIND_CLIENT = 1, 3
STATUS_UNSET, STATUS_OK, STATUS_ERROR = 0, 1, 2

# gen_ai.operation.name by the transport a model call used.
OPERATION_BY_TRANSPORT = {"prefill": "text_completion", "message": "chat", "tool-call": "chat"}


def export_run(run: Run, *, version: str = "0") -> dict[str, Any]:
    """The run as an ``ExportTraceServiceRequest`` in OTLP/JSON."""
    trace_id = _hex(f"trace:{run.public_id}", 16)
    root_id = _hex(f"run:{run.public_id}", 8)
    steps = list(Step.objects.filter(run=run).order_by("step_id"))
    versions = _version_rows(run)
    settings = model_settings(run)
    spans = [_run_span(run, trace_id, root_id, steps, settings)]
    step_span = {s.step_id: _hex(f"step:{run.public_id}:{s.step_id}", 8) for s in steps}
    transport = {s.step_id: s.transport for s in steps}
    spawned_at = dict(Agent.objects.filter(run=run, spawn_step__isnull=False).values_list("handle", "spawn_step"))
    messages = _message_events(run)
    for s in steps:
        parent = step_span.get(s.parent) if s.parent is not None else None
        if parent is None and s.agent != MAIN_AGENT:
            # a spawned agent's step without a parent step: under the step that spawned it
            parent = step_span.get(spawned_at.get(s.agent))
        span = _step_span(s, trace_id, step_span[s.step_id], parent or root_id, versions)
        if messages.get(s.step_id):
            span.setdefault("events", []).extend(messages[s.step_id])
        spans.append(span)
    for e in Effect.objects.filter(run=run).order_by("seq", "id").iterator(chunk_size=2000):
        spans.append(_effect_span(run, e, trace_id, step_span.get(e.step_id, root_id), settings,
                                  transport.get(e.step_id) or ""))
    resource = {"attributes": _attrs({"service.name": "spellide", "service.version": version,
                                      "spellide.run.id": str(run.public_id)})}
    return {"resourceSpans": [{"resource": resource, "schemaUrl": SCHEMA_URL, "scopeSpans": [
        {"scope": {"name": SCOPE_NAME, "version": version}, "schemaUrl": SCHEMA_URL, "spans": spans}]}]}


# --- spans -----------------------------------------------------------------------------------
def model_settings(run: Run) -> dict[str, Any]:
    """The model settings the run started with (from its ``run_started`` event; never a key)."""
    first = RunEvent.objects.filter(run=run, type="run_started").order_by("seq").first()
    return dict((first.data or {}).get("model_settings") or {}) if first else {}


def _run_span(run: Run, trace_id: str, span_id: str, steps: list[Step],
              settings: dict[str, Any]) -> dict[str, Any]:
    cfg = run.config or {}
    totals = run.totals or {}
    start = run.created_at
    end = max([s.finished_at or s.started_at for s in steps] + [run.updated_at])
    attrs = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": run.title or "spell agent",
        "gen_ai.agent.id": str(run.public_id),
        "gen_ai.conversation.id": str(run.public_id),
        "gen_ai.provider.name": _provider(settings),
        "gen_ai.request.model": settings.get("model"),
        "gen_ai.usage.input_tokens": int(totals.get("input_tokens") or 0),
        "gen_ai.usage.output_tokens": int(totals.get("output_tokens") or 0),
        "spellide.run.status": run.status,
        "spellide.run.model": str(cfg.get("model") or ""),
        "spellide.run.seed": int(cfg.get("seed") or 0),
        "spellide.run.cost_usd": float(totals.get("cost") or 0.0),
        "spellide.run.cost_saved_usd": float(totals.get("cost_saved") or 0.0),
        "spellide.run.effects_executed": int(totals.get("effects_executed") or 0),
        "spellide.run.effects_reused": int(totals.get("effects_reused") or 0),
        "spellide.run.value": run.value,
        "spellide.run.error": run.error,
        "spellide.run.prompt": cfg.get("prompt"),
        "spellide.run.init": cfg.get("init"),
    }
    if run.parent_run_id is not None:
        attrs["spellide.run.fork_of"] = str(run.parent_run.public_id)
        attrs["spellide.run.fork_step"] = run.fork_step
    return _span(trace_id, span_id, None, "invoke_agent " + (run.title or "spell agent"), KIND_INTERNAL,
                 start, end, attrs, _status(run.error))


def _step_span(s: Step, trace_id: str, span_id: str, parent_id: str,
               versions: dict[int, ProgramVersion]) -> dict[str, Any]:
    usage = s.usage or {}
    attrs = {
        "spellide.step.id": s.step_id,
        "spellide.step.parent": s.parent,
        "spellide.step.depth": s.depth,
        "spellide.step.status": s.status,
        "spellide.step.continued_by": s.continued_by,
        "spellide.step.completion": s.completion,
        "spellide.step.value": s.value,
        "spellide.step.error": s.error,
        "spellide.step.recovered": s.recovered,
        "spellide.agent.handle": s.agent,
        "spellide.agent.generation": s.generation,
        "spellide.prefix.sha256": _sha(versions, s.prefix_version_id),
        "spellide.program.sha256": _sha(versions, s.program_version_id),
        "gen_ai.request.model": s.model or None,
        "gen_ai.usage.input_tokens": usage.get("input_tokens"),
        "gen_ai.usage.output_tokens": usage.get("output_tokens"),
    }
    events = []
    for label, vid, at in (("prefix", s.prefix_version_id, s.started_at),
                           ("program", s.program_version_id, s.finished_at or s.started_at)):
        if vid is not None and vid in versions:
            events.append(_version_event(label, versions[vid], versions, at))
    for seg in s.provenance or []:
        if isinstance(seg, dict) and seg.get("source") == "human":
            events.append({"timeUnixNano": _ns(s.started_at), "name": "spellide.human_edit",
                           "attributes": _attrs({"spellide.edit.author": seg.get("author"),
                                                 "spellide.edit.start": seg.get("start"),
                                                 "spellide.edit.end": seg.get("end")})})
    span = _span(trace_id, span_id, parent_id, f"step {s.step_id}", KIND_INTERNAL, s.started_at,
                 s.finished_at or s.started_at, attrs, _status(s.error))
    if events:
        span["events"] = events
    return span


def _message_events(run: Run) -> dict[int, list[dict[str, Any]]]:
    """A multi-agent run's messages as span events: ``spellide.message`` on the sender's step,
    ``spellide.receipt`` on the step whose program bound it to a ``msg-N`` name."""
    out: dict[int, list[dict[str, Any]]] = {}
    for m in Message.objects.filter(run=run, step_id__isnull=False).order_by("seq", "id"):
        out.setdefault(m.step_id, []).append({
            "timeUnixNano": _ns(m.sent_at), "name": "spellide.message",
            "attributes": _attrs({"spellide.message.id": m.msg_id, "spellide.message.kind": m.kind,
                                  "spellide.message.sender": m.sender, "spellide.message.targets": list(m.targets),
                                  "spellide.message.edge": m.edge, "spellide.message.body": m.body})})
    for r in Receipt.objects.filter(run=run, step_id__isnull=False).order_by("seq", "id"):
        out.setdefault(r.step_id, []).append({
            "timeUnixNano": _ns(r.received_at), "name": "spellide.receipt",
            "attributes": _attrs({"spellide.message.id": r.msg_id, "spellide.receipt.agent": r.agent,
                                  "spellide.receipt.name": r.name, "spellide.receipt.site": r.site})})
    return out


def _effect_span(run: Run, e: Effect, trace_id: str, parent_id: str, settings: dict[str, Any],
                 transport: str) -> dict[str, Any]:
    span_id = _hex(f"effect:{run.public_id}:{e.pk}", 8)
    start = float(e.started_at or 0.0)
    end = start + float(e.duration_ms or 0.0) / 1000.0
    usage = e.usage or {}
    attrs: dict[str, Any] = {
        "spellide.effect.name": e.name,
        "spellide.effect.key.step": e.step_id,
        "spellide.effect.key.ordinal": e.ordinal,
        "spellide.effect.key.args_digest": e.args_digest,
        "spellide.effect.status": e.status,          # live | hit | miss | blocked
        "spellide.effect.miss_reason": e.reason or None,
        "spellide.effect.args": e.args_text(),
        "spellide.effect.result": e.result,
        "spellide.effect.error": e.error,
        "spellide.effect.saved_ms": e.saved_ms or None,
    }
    if e.name.startswith("model/"):
        op = OPERATION_BY_TRANSPORT.get(transport, "text_completion")
        model = str(settings.get("model") or "")
        attrs.update({
            "gen_ai.operation.name": op,
            "gen_ai.provider.name": _provider(settings),
            "gen_ai.request.model": model or None,
            "gen_ai.request.temperature": _float(settings.get("temperature")),
            "gen_ai.request.max_tokens": _int(settings.get("max_tokens")),
            "gen_ai.usage.input_tokens": usage.get("input_tokens"),
            "gen_ai.usage.output_tokens": usage.get("output_tokens"),
            "gen_ai.usage.cache_read.input_tokens": usage.get("cached_input_tokens"),
            "spellide.model.cost_usd": usage.get("cost"),
        })
        name, kind = f"{op} {model}".strip(), KIND_CLIENT
    else:
        attrs["gen_ai.operation.name"] = "execute_tool"
        attrs["gen_ai.tool.name"] = e.name
        attrs["gen_ai.tool.type"] = "function"
        name, kind = f"execute_tool {e.name}", KIND_INTERNAL
    return _span(trace_id, span_id, parent_id, name, kind, start, end, attrs, _status(e.error))


def _version_event(label: str, v: ProgramVersion, versions: dict[int, ProgramVersion],
                   at: Optional[datetime]) -> dict[str, Any]:
    base = versions.get(v.base_id) if v.base_id is not None else None
    return {"timeUnixNano": _ns(at), "name": f"spellide.{label}",
            "attributes": _attrs({"spellide.version.sha256": v.sha256,
                                  "spellide.version.length": v.length,
                                  "spellide.version.base_sha256": base.sha256 if base else None,
                                  "spellide.version.keep_chars": v.keep_chars if base else 0,
                                  "spellide.version.tail": v.tail})}


def _span(trace_id: str, span_id: str, parent_id: Optional[str], name: str, kind: int, start: Any,
          end: Any, attrs: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    out = {"traceId": trace_id, "spanId": span_id, "name": name, "kind": kind,
           "startTimeUnixNano": _ns(start), "endTimeUnixNano": _ns(end),
           "attributes": _attrs(attrs), "status": status}
    if parent_id:
        out["parentSpanId"] = parent_id
    return out


# --- values ----------------------------------------------------------------------------------
def _attrs(values: dict[str, Any]) -> list[dict[str, Any]]:
    """OTLP ``KeyValue`` list; ``None`` values are left out (OTel has no null attribute)."""
    return [{"key": k, "value": _any(v)} for k, v in values.items() if v is not None]


def _any(v: Any) -> dict[str, Any]:
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, (list, tuple)):
        return {"arrayValue": {"values": [_any(x) for x in v]}}
    return {"stringValue": str(v)}


def _status(error: Optional[str]) -> dict[str, Any]:
    return {"code": STATUS_ERROR, "message": error} if error else {"code": STATUS_UNSET}


def _ns(t: Any) -> str:
    if t is None:
        return "0"
    if isinstance(t, datetime):
        t = t.timestamp()
    return str(int(round(float(t) * 1e9)))


def _hex(seed: str, n: int) -> str:
    """A stable id of ``n`` bytes (an export of the same run gives the same ids)."""
    return hashlib.sha256(seed.encode()).hexdigest()[: 2 * n]


def _sha(versions: dict[int, ProgramVersion], vid: Optional[int]) -> Optional[str]:
    v = versions.get(vid) if vid is not None else None
    return v.sha256 if v else None


def _version_rows(run: Run) -> dict[int, ProgramVersion]:
    return {v.pk: v for v in ProgramVersion.objects.filter(run=run, kind=ProgramVersion.KIND_PROGRAM)
            .only("pk", "base_id", "keep_chars", "tail", "length", "sha256").iterator(chunk_size=2000)}


def _provider(settings: dict[str, Any]) -> str:
    """``gen_ai.provider.name``: the profile's provider, or ``spellide`` for the built-in local
    models (hello, scripted, replay), which are not a provider of anyone's."""
    return str(settings.get("provider") or "spellide")


def _float(v: Any) -> Optional[float]:
    try:
        return float(v) if v not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _int(v: Any) -> Optional[int]:
    try:
        return int(v) if v not in (None, "") else None
    except (TypeError, ValueError):
        return None


def spans(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every span of an export (for tests and tools)."""
    for rs in doc.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            yield from ss.get("spans", [])


def attributes(span: dict[str, Any]) -> dict[str, Any]:
    """A span's attributes as a plain dict."""
    out: dict[str, Any] = {}
    for kv in span.get("attributes", []):
        (kind, value), = kv["value"].items()
        out[kv["key"]] = int(value) if kind == "intValue" else value
    return out

