"""``manage.py import_trace DIR [--user NAME] [--title T]``: a reference trace directory as a run."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from spellide.web.trace_import import TraceRefused, import_trace

from .ensure_local_user import USERNAME


class Command(BaseCommand):
    help = "Import a trace directory (trace.edn + program files) from the Clojure reference as a run."

    def add_arguments(self, parser):
        parser.add_argument("directory")
        parser.add_argument("--user", default=USERNAME, help=f"who owns the imported run (default {USERNAME})")
        parser.add_argument("--title", default="")

    def handle(self, directory: str, user: str, title: str, **_):
        owner = get_user_model().objects.filter(username=user).first()
        if owner is None:
            raise CommandError(f"no user named {user!r} (create it, or pass --user)")
        try:
            run = import_trace(directory, owner, title)
        except TraceRefused as e:
            raise CommandError(str(e)) from None
        self.stdout.write(str(run.public_id))
