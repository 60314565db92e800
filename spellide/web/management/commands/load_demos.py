"""Make the bundled demo agents available and record a run of each demo marked ``record``.

Idempotent: a demo that already has a finished recorded run (owned by the local user) is not
run again. The demos themselves are read from ``spellide/demos/*.json`` by
``spellide.web.demos`` (the start form lists them); this command checks that each one loads
and executes the ``record`` ones headlessly through the run service (events persisted exactly
as in the browser), so a fresh install has runs to browse.
"""

from __future__ import annotations

import uuid

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from spellide.web import runner
from spellide.web.demos import list_demos
from spellide.web.models import Run

from .ensure_local_user import USERNAME


class Command(BaseCommand):
    help = "Check the bundled demo agents and record a run of the demos marked 'record'."

    def add_arguments(self, parser):
        parser.add_argument("--user", default=USERNAME)
        parser.add_argument("--force", action="store_true", help="record again even if a recorded run exists")
        parser.add_argument("--timeout", type=float, default=300.0)

    def handle(self, *args, **options):
        User = get_user_model()
        user = User.objects.filter(username=options["user"]).first()
        if user is None:
            if options["user"] != USERNAME:
                raise CommandError(f"no user {options['user']!r}")
            call_command("ensure_local_user", stdout=self.stdout)
            user = User.objects.get(username=USERNAME)
        demos = list_demos()
        if not demos:
            raise CommandError("no demos found in spellide/demos/")
        recorded = 0
        for demo in demos:
            if not demo.record:
                continue
            done = Run.objects.filter(owner=user, demo=demo.name, status=Run.Status.FINISHED,
                                      parent_run__isnull=True).exists()
            if done and not options["force"]:
                continue
            public_id = uuid.uuid4()
            workspace = (runner.make_workspace(public_id, demo.workspace_seed)
                         if demo.uses_workspace else None)
            config = demo.run_config(workspace=workspace)
            run = runner.start_run(user, config, f"{demo.title} (recorded)", demo=demo.name,
                                   public_id=public_id)
            if not runner.wait_for(run, options["timeout"]):
                raise CommandError(f"demo {demo.name} did not finish in {options['timeout']} s")
            run.refresh_from_db()
            if run.status != Run.Status.FINISHED:
                raise CommandError(f"demo {demo.name} ended {run.status}: {run.error}")
            recorded += 1
            self.stdout.write(f"recorded demo {demo.name}: {run.value}")
        self.stdout.write(f"{len(demos)} demo agents available ({', '.join(d.name for d in demos)}); "
                          f"{recorded} recorded now")
