"""The Django set-up of benches that run the IDE's code in their own process: a fresh
temporary directory for the database and the run files, the embedded defaults (SQLite and the
in-memory channel layer, whatever the environment says), then ``django.setup()``."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def setup_django() -> Path:
    """Set Django up on a new temporary directory, which it returns."""
    tmp = Path(tempfile.mkdtemp(prefix="spellide-bench-"))
    os.environ["DJANGO_SETTINGS_MODULE"] = "spellide.web.settings"
    os.environ["SPELLIDE_VAR"] = str(tmp / "var")
    os.environ["SPELLIDE_SQLITE_PATH"] = str(tmp / "bench.sqlite3")
    for k in ("SPELLIDE_DATABASE_URL", "SPELLIDE_REDIS_URL"):
        os.environ.pop(k, None)
    import django
    django.setup()
    return tmp
