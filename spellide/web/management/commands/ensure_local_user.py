"""Create the local user ``spell`` once (idempotent) and print how to sign in.

The password is random, stored in ``var/local-user.txt`` (mode 600) and printed on every run
so ``./dev serve`` always shows it. If the file is lost, a new password is set and stored.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

USERNAME = "spell"


class Command(BaseCommand):
    help = "Create the local sign-in user (spell) if absent and print its password."

    def add_arguments(self, parser):
        parser.add_argument("--port", default=os.environ.get("PORT", "8000"))

    def handle(self, *args, **options):
        path = Path(settings.VAR_DIR) / "local-user.txt"
        password = None
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.startswith("password="):
                    password = line.split("=", 1)[1].strip()
        User = get_user_model()
        user = User.objects.filter(username=USERNAME).first()
        if user is None or password is None or not user.check_password(password):
            if password is None:
                password = secrets.token_urlsafe(12)
            if user is None:
                user = User.objects.create_user(USERNAME, password=password)
                user.is_staff = False
                user.save()
            else:
                user.set_password(password)
                user.save(update_fields=["password"])
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(f"username={USERNAME}\npassword={password}\n")
        self.stdout.write(f"Sign in at http://127.0.0.1:{options['port']}/ as {USERNAME} / {password}")
