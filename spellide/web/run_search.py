"""Finding runs and steps (issue 10 rough edge 7): the run list's filters (title, status,
model, tag, date) and the search of a run's steps (text in prefix, completion, value or
error; status; effect kind). Both are database queries, paged, so a 10,000-step run is
searched without loading its steps; nothing here rebuilds a program text.

A step's prefix is stored as the text that changed from the version before it (``tail`` of
its ``ProgramVersion``), so a prefix search finds the step where the text *appeared* in the
prefix (written by a person, persisted, first carried over), not every later step that still
carries it, and a match that straddles two versions' pieces is not found.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from django import forms
from django.db.models import Exists, OuterRef, Q, QuerySet

from .models import Effect, Run, RunStatus, Step, StepStatus

SNIPPET = 60        # characters of context either side of a match
WHERE = (("", "anywhere"), ("prefix", "prefix (new text)"), ("completion", "completion"),
         ("value", "value"), ("error", "error"))
_EFFECT_KIND = r"^[A-Za-z][\w.*+!?<>=-]*(/[\w.*+!?<>=-]+)?$"


class RunFilterForm(forms.Form):
    """The run list's filters (GET); an invalid one is reported and left out."""
    q = forms.CharField(required=False, max_length=200, strip=True)
    status = forms.ChoiceField(required=False, choices=[("", "any status")] + list(RunStatus.choices))
    model = forms.CharField(required=False, max_length=200, strip=True)
    tag = forms.CharField(required=False, max_length=40, strip=True)
    since = forms.DateField(required=False, error_messages={"invalid": "a date such as 2026-12-03"})
    until = forms.DateField(required=False, error_messages={"invalid": "a date such as 2026-12-03"})

    def filters(self) -> dict[str, Any]:
        """The valid filters (all of them are ignored when any is invalid, and the form says why)."""
        if not self.is_valid():
            return {}
        return {k: v for k, v in self.cleaned_data.items() if v not in (None, "")}


def filter_runs(qs: QuerySet, f: dict[str, Any]) -> QuerySet:
    if f.get("q"):
        qs = qs.filter(title__icontains=f["q"])
    if f.get("status"):
        qs = qs.filter(status=f["status"])
    if f.get("model"):
        qs = qs.filter(config__model__icontains=f["model"])
    if f.get("tag"):
        qs = qs.filter(tags__name=f["tag"].lower())
    if f.get("since"):
        qs = qs.filter(created_at__date__gte=f["since"])
    if f.get("until"):
        qs = qs.filter(created_at__date__lte=f["until"])
    return qs


class StepSearchForm(forms.Form):
    """The search of one run's steps (GET)."""
    q = forms.CharField(required=False, max_length=200, strip=False)
    where = forms.ChoiceField(required=False, choices=WHERE)
    status = forms.ChoiceField(required=False, choices=[("", "any status")] + list(StepStatus.choices))
    effect = forms.RegexField(required=False, max_length=200, regex=_EFFECT_KIND, error_messages={
        "invalid": "an effect kind is a namespace such as io, or a name such as io/spit"})

    @property
    def asked(self) -> bool:
        return self.is_valid() and any(self.cleaned_data.get(k) for k in ("q", "status", "effect"))


def search_steps(run: Run, f: dict[str, Any]) -> QuerySet:
    """The run's steps matching ``f`` (a valid ``StepSearchForm``'s data), in step order."""
    qs = Step.objects.filter(run=run)
    if f.get("status"):
        qs = qs.filter(status=f["status"])
    kind = f.get("effect") or ""
    if kind:
        effects = Effect.objects.filter(run=run, step_id=OuterRef("step_id"))
        effects = effects.filter(name=kind) if "/" in kind else effects.filter(name__startswith=kind + "/")
        qs = qs.filter(Exists(effects))
    text = f.get("q") or ""
    if text:
        where = f.get("where") or ""
        fields = [where] if where else ["prefix", "completion", "value", "error"]
        cond = Q()
        for field in fields:
            cond |= Q(**{f"{_column(field)}__icontains": text})
        qs = qs.filter(cond)
    return qs.order_by("step_id")


def _column(field: str) -> str:
    return "prefix_version__tail" if field == "prefix" else field


@dataclass
class StepHit:
    step_id: int
    status: str
    depth: int
    field: Optional[str]        # where the text matched (None: no text asked)
    before: str = ""
    match: str = ""
    after: str = ""


def hits(steps: list[dict[str, Any]], text: str, where: str = "") -> list[StepHit]:
    """One page of matches, each with the first match's context (from the rows' own text)."""
    out = []
    fields = [where] if where else ["completion", "value", "error", "prefix"]
    for row in steps:
        hit = StepHit(row["step_id"], row["status"], row["depth"], None)
        for field in fields if text else ():
            value = row.get(_column(field)) or ""
            at = value.lower().find(text.lower())
            if at >= 0:
                hit.field = field
                start = max(0, at - SNIPPET)
                hit.before = ("…" if start else "") + value[start:at]
                hit.match = value[at:at + len(text)]
                end = at + len(text)
                hit.after = value[end:end + SNIPPET] + ("…" if end + SNIPPET < len(value) else "")
                break
        out.append(hit)
    return out


def row_values(qs: QuerySet, text: str, where: str = "") -> QuerySet:
    """The columns a page of hits needs (the texts only when a text was asked)."""
    cols = ["step_id", "status", "depth"]
    if text:
        fields = [where] if where else ["completion", "value", "error", "prefix"]
        cols += [_column(f) for f in fields]
    return qs.values(*cols)
