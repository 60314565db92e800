"""A run as an ATIF trajectory (Agent Trajectory Interchange Format, harbor RFC 0001, v1.7).

ATIF is a list of steps from a user, the agent or the system, with tool calls, observations and
token metrics per step. A Spell run maps onto it as: one ``user`` step with the run's prompt (or
its init program), then one ``agent`` step per Spell step in step order, whose message is the
model's completion and whose tool calls are the effects its evaluation performed (the
observation holds their results). Model calls are not tool calls: they are the step's LLM call
(``model_name``, ``metrics``). Nested steps stay flat in ATIF's sequence; their parent and depth
are in the step's ``extra``, with the effect-cache status of each effect and the program's
digest: spellide's extension, under ``extra`` as the format provides.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Optional

from django.db.models import F

from spellide.web.models import Effect, Run, Step

SCHEMA_VERSION = "ATIF-v1.7"


def export_run(run: Run, *, version: str = "0") -> dict[str, Any]:
    """The run as one ATIF trajectory (a JSON-ready dict)."""
    cfg = run.config or {}
    totals = run.totals or {}
    effects: dict[int, list[Effect]] = {}
    for e in Effect.objects.filter(run=run).order_by("seq", "id").iterator(chunk_size=2000):
        effects.setdefault(e.step_id, []).append(e)
    steps: list[dict[str, Any]] = [{
        "step_id": 1, "timestamp": _iso(run.created_at), "source": "user",
        "message": cfg.get("prompt") if cfg.get("prompt") is not None else (cfg.get("init") or ""),
        "extra": {"spellide": {"kind": "prompt" if cfg.get("prompt") is not None else "init"}},
    }]
    rows = (Step.objects.filter(run=run).order_by("step_id").defer("provenance")
            .annotate(program_sha=F("program_version__sha256")))
    for s in rows.iterator(chunk_size=2000):
        steps.append(_agent_step(len(steps) + 1, s, effects.get(s.step_id, [])))
    return {
        "schema_version": SCHEMA_VERSION,
        "session_id": str(run.public_id),
        "trajectory_id": str(run.public_id),
        "agent": {"name": "spellide", "version": version, "model_name": str(cfg.get("model") or "")},
        "steps": steps,
        "notes": run.title or None,
        "final_metrics": {
            "total_prompt_tokens": int(totals.get("input_tokens") or 0),
            "total_completion_tokens": int(totals.get("output_tokens") or 0),
            "total_cost_usd": float(totals.get("cost") or 0.0),
            "total_steps": len(steps),
        },
        "extra": {"spellide": {
            "status": run.status, "value": run.value, "error": run.error,
            "fork_of": str(run.parent_run.public_id) if run.parent_run_id else None,
            "fork_step": run.fork_step, "seed": cfg.get("seed"),
            "effects_reused": int(totals.get("effects_reused") or 0),
            "cost_saved_usd": float(totals.get("cost_saved") or 0.0),
        }},
    }


def _agent_step(n: int, s: Step, effects: list[Effect]) -> dict[str, Any]:
    usage = s.usage or {}
    calls, results, cache = [], [], []
    for e in effects:
        cache.append({"name": e.name, "ordinal": e.ordinal, "args_digest": e.args_digest,
                      "status": e.status, "reason": e.reason or None})
        if e.name.startswith("model/"):
            continue   # the step's own LLM call, not a tool call
        call_id = f"s{s.step_id}-e{e.ordinal}"
        calls.append({"tool_call_id": call_id, "function_name": e.name,
                      "arguments": {"args": e.args_text()}})
        results.append({"source_call_id": call_id,
                        "content": e.result if e.error is None else f"error: {e.error}"})
    out: dict[str, Any] = {
        "step_id": n, "timestamp": _iso(s.started_at), "source": "agent",
        "message": s.completion, "model_name": s.model or None,
        "metrics": {"prompt_tokens": int(usage.get("input_tokens") or 0),
                    "completion_tokens": int(usage.get("output_tokens") or 0),
                    "cached_tokens": int(usage.get("cached_input_tokens") or 0),
                    "cost_usd": float(usage.get("cost") or 0.0)},
        "extra": {"spellide": {
            "step": s.step_id, "parent": s.parent, "depth": s.depth, "status": s.status,
            "value": s.value, "error": s.error, "continued_by": s.continued_by,
            "program_sha256": s.program_sha,
            "effects": cache,
        }},
    }
    if calls:
        out["tool_calls"] = calls
        out["observation"] = {"results": results}
    return out


def _iso(t: Optional[datetime]) -> Optional[str]:
    if t is None:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.isoformat()
