"""``manage.py export_run RUN_ID FILE``: write a run as a bundle (gzip JSON; ``-`` for stdout)."""

from __future__ import annotations

import sys
import uuid

from django.core.management.base import BaseCommand, CommandError

from spellide.spell import api
from spellide.web.bundles import export_bundle
from spellide.web.models import Run
from spellide.web.views.transfer import spellide_version


class Command(BaseCommand):
    help = "Export a run (record, program versions, effects, edits, events, fork lineage) as one bundle file."

    def add_arguments(self, parser):
        parser.add_argument("run_id", help="the run's id (its UUID, as in /runs/<id>/)")
        parser.add_argument("file", help="where to write the bundle; - for standard output")
        parser.add_argument("--plain", action="store_true", help="write uncompressed JSON")

    def handle(self, run_id: str, file: str, plain: bool = False, **_):
        try:
            run = Run.objects.get(public_id=uuid.UUID(run_id))
        except (ValueError, Run.DoesNotExist):
            raise CommandError(f"no run with id {run_id!r}") from None
        data = api.dump_bundle(export_bundle(run, None, version=spellide_version()), compress=not plain)
        if file == "-":
            sys.stdout.buffer.write(data)
        else:
            try:
                with open(file, "wb") as f:
                    f.write(data)
            except OSError as e:
                raise CommandError(f"cannot write {file}: {e.strerror}") from None
            self.stderr.write(f"wrote {file} ({len(data):,} bytes, {run.totals.get('steps', 0)} steps)")
