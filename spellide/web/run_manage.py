"""Renaming, tagging and deleting runs (issue 10 rough edge 7). The views in
``views.controls`` check the owner and CSRF; this module says what a valid title or tag is
and what deleting a run removes."""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

from django import forms
from django.conf import settings
from django.db import transaction

from .models import Run, RunTag
from .runner import workspace_path
from .runner.journal import remove_journal

log = logging.getLogger("spellide.runs")

MAX_TAGS = 10
_TAG = re.compile(r"^\w[\w.-]*$")


class RenameForm(forms.Form):
    title = forms.CharField(required=False, max_length=200, error_messages={
        "max_length": "a title has at most %(limit_value)d characters (this one has %(show_value)d)"})


class TagsForm(forms.Form):
    tags = forms.CharField(required=False, max_length=1000)

    def clean_tags(self) -> list[str]:
        names = []
        for t in re.split(r"[\s,]+", (self.cleaned_data.get("tags") or "").lower()):
            if t and t not in names:
                names.append(t)
        bad = [t for t in names if len(t) > RunTag.MAX_LENGTH or not _TAG.match(t)]
        if bad:
            raise forms.ValidationError(f"{bad[0][:50]!r} is not a tag (letters, digits, '_', '-' and '.', "
                                        f"at most {RunTag.MAX_LENGTH} characters)")
        if len(names) > MAX_TAGS:
            raise forms.ValidationError(f"at most {MAX_TAGS} tags on a run")
        return names


def set_tags(run: Run, names: list[str]) -> None:
    with transaction.atomic():
        RunTag.objects.filter(run=run).exclude(name__in=names).delete()
        have = set(RunTag.objects.filter(run=run).values_list("name", flat=True))
        RunTag.objects.bulk_create([RunTag(run=run, name=n) for n in names if n not in have])


def delete_run(run: Run) -> None:
    """Remove the run's records (its row and, by cascade, steps, program versions, effects,
    edits, events, tags), then its effect journal, its workspace and a record written for
    replaying it. Forks of it keep their own records (their parent link becomes empty)."""
    public_id = run.public_id
    run.delete()
    remove_journal(public_id)
    workspace = workspace_path(public_id)
    if workspace.is_dir():
        shutil.rmtree(workspace, ignore_errors=True)
        if workspace.exists():
            log.error("cannot remove the workspace of deleted run %s: %s", public_id, workspace)
    record = Path(settings.RECORDS_DIR) / f"{public_id}.json"
    record.unlink(missing_ok=True)
