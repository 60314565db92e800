"""``manage.py import_run FILE [--user NAME]``: import a run bundle; prints the new run's id."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from spellide.spell import api
from spellide.web.bundles import import_bundle

from .ensure_local_user import USERNAME


class Command(BaseCommand):
    help = "Import a run bundle written by export_run or the IDE's download."

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--user", default=USERNAME, help=f"who owns the imported run (default {USERNAME})")

    def handle(self, file: str, user: str, **_):
        owner = get_user_model().objects.filter(username=user).first()
        if owner is None:
            raise CommandError(f"no user named {user!r} (create it, or pass --user)")
        try:
            run = import_bundle(api.load_bundle(file), owner)
        except api.BundleError as e:
            raise CommandError(str(e)) from None
        self.stdout.write(str(run.public_id))
