"""Settings for benches that serve the IDE in a subprocess: the normal settings, with the demo
directory taken from SPELLIDE_BENCH_DEMOS so a bench can offer its own scripted agent through
the ordinary start form (the form only accepts bundled demos as scripted models)."""

import os
from pathlib import Path

from spellide.web.settings import *  # noqa: F401,F403

if os.environ.get("SPELLIDE_BENCH_DEMOS"):
    DEMOS_DIR = Path(os.environ["SPELLIDE_BENCH_DEMOS"])

