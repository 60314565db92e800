"""The effect cache: every effect a run performs, keyed by where it happened.

A key identifies the invocation, not just its inputs: the step, the evaluation context within
that step (``ctx``: "" for the step's own evaluation, ``f<i>`` / ``f<i>.f<j>`` for futures,
spell-agents.md section 8.2), the ordinal of the effect within that context, the effect name,
and a digest of the canonical printed arguments. Replaying a run looks entries up by (step,
ctx, ordinal) and then compares the name and the argument digest, so a miss can say *why* it
missed. Each context counts its own ordinals, so futures running concurrently never shift the
ordinals of the step's evaluation or of each other, whatever the thread timing.
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

LIVE = "live"
HIT = "hit"
MISS = "miss"
BLOCKED = "blocked"

# Why a miss happened (design.md section 4).
NEW_STEP = "new step"
NEW_EFFECT = "new effect in this step"
ARGS_CHANGED = "arguments changed"
EFFECT_CHANGED = "a different effect at this position"
EDITED_BEFORE = "program edited before this effect"
AFTER_FORK = "after the fork point"
CACHE_DISABLED = "cache disabled"


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


@dataclass
class EffectRecord:
    step: int
    ordinal: int
    name: str
    args: str                 # canonical printed arguments
    args_digest: str
    result: Optional[str]     # printed result (None when the effect raised)
    status: str
    reason: str = ""
    error: Optional[str] = None
    error_kind: Optional[str] = None
    started: float = 0.0
    duration_ms: float = 0.0
    usage: Optional[dict] = None
    saved_ms: float = 0.0     # for hits: the recorded duration that did not have to be spent
    ctx: str = ""             # "" = the step's own evaluation; "f0", "f0.f1"... = a future
    internal: bool = False    # a coordinator transition (gate.perform): executed in every mode, not the world's

    def key(self) -> dict[str, Any]:
        key = {"step": self.step, "ordinal": self.ordinal, "name": self.name,
               "args_digest": self.args_digest}
        if self.ctx:   # absent for the step's own evaluation: records made before futures read the same
            key["ctx"] = self.ctx
        return key

    def to_json(self) -> dict[str, Any]:
        d = {"key": self.key(), "step": self.step, "ordinal": self.ordinal, "name": self.name,
             "args": self.args, "args_digest": self.args_digest, "result": self.result,
             "status": self.status, "reason": self.reason, "error": self.error,
             "error_kind": self.error_kind, "started": self.started,
             "duration_ms": round(self.duration_ms, 3)}
        if self.usage is not None:
            d["usage"] = self.usage
        if self.saved_ms:
            d["saved_ms"] = round(self.saved_ms, 3)
        if self.ctx:
            d["ctx"] = self.ctx
        if self.internal:   # absent otherwise: records and events of other effects read as before
            d["internal"] = True
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "EffectRecord":
        return cls(step=int(d["step"]), ordinal=int(d["ordinal"]), name=d["name"],
                   args=d.get("args", ""), args_digest=d.get("args_digest") or digest(d.get("args", "")),
                   result=d.get("result"), status=d.get("status", LIVE), reason=d.get("reason", ""),
                   error=d.get("error"), error_kind=d.get("error_kind"),
                   started=float(d.get("started") or 0.0), duration_ms=float(d.get("duration_ms") or 0.0),
                   usage=d.get("usage"), ctx=str(d.get("ctx") or ""), internal=bool(d.get("internal")))


def args_diff(old: str, new: str, limit: int = 2000) -> str:
    """A short unified diff of two printed argument lists, for the "arguments changed" reason."""
    if len(old) > 200 or len(new) > 200 or "\n" in old or "\n" in new:
        lines = difflib.unified_diff(old.splitlines() or [old], new.splitlines() or [new],
                                     "recorded", "now", n=1, lineterm="")
        text = "\n".join(lines)
        if not text:  # same lines, different whitespace at the end
            i = next((i for i, (a, b) in enumerate(zip(old, new)) if a != b), min(len(old), len(new)))
            text = f"first difference at character {i}: recorded {old[i:i+60]!r}, now {new[i:i+60]!r}"
    else:
        text = f"recorded {old}\nnow      {new}"
    return text if len(text) <= limit else text[:limit] + "\n…"


@dataclass
class Lookup:
    record: Optional[EffectRecord]   # the recorded entry to reuse, or None on a miss
    reason: str = ""


@dataclass
class EffectCache:
    """Recorded effects of an earlier run, served back by position.

    ``valid_through`` limits reuse to steps up to a fork point (None = all recorded steps).
    """

    entries: dict[tuple[int, str, int], EffectRecord] = field(default_factory=dict)   # (step, ctx, ordinal)
    valid_through: Optional[int] = None
    max_step: int = -2

    @classmethod
    def from_records(cls, records: Iterable[EffectRecord], valid_through: Optional[int] = None) -> "EffectCache":
        cache = cls(valid_through=valid_through)
        for r in records:
            if r.status == BLOCKED and r.error_kind == "rejected":
                continue
            # On a re-run of a step (after an edit) the last record at a position wins.
            cache.entries[(r.step, r.ctx, r.ordinal)] = r
            cache.max_step = max(cache.max_step, r.step)
        return cache

    def add(self, record: EffectRecord) -> None:
        self.entries[(record.step, record.ctx, record.ordinal)] = record
        self.max_step = max(self.max_step, record.step)

    def lookup(self, step: int, ordinal: int, name: str, args_text: str, args_dig: str,
               edited: bool = False, ctx: str = "") -> Lookup:
        if self.valid_through is not None and step > self.valid_through:
            return Lookup(None, AFTER_FORK)
        rec = self.entries.get((step, ctx, ordinal))
        if rec is None:
            return Lookup(None, NEW_STEP if step > self.max_step else NEW_EFFECT)
        if rec.name != name:
            return Lookup(None, f"{EFFECT_CHANGED}: recorded {rec.name}, now {name}")
        if rec.args_digest != args_dig:
            why = EDITED_BEFORE if edited else ARGS_CHANGED
            return Lookup(None, f"{why}\n{args_diff(rec.args, args_text)}")
        return Lookup(rec)
