"""What a paused run costs the server (figures, not a test): N runs started through the run
service, each paused at its first model call (a breakpoint), then the memory of each run's
child process read from /proc: RSS (what `ps` shows, counting pages still shared with the
fork server), PSS (shared pages split among their sharers) and USS (private pages: what
ending that one process gives back). The README quotes these for SPELLIDE_MAX_PAUSED_RUNS.

A small prompt, and a 1 MB prompt (the paused step holds its prefix).

Usage: .venv/bin/python bench/paused_cost.py [--runs 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.django_env import setup_django  # noqa: E402

TMP = setup_django()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402

from spellide.spell.api import Breakpoints, RunConfig  # noqa: E402
from spellide.web import runner  # noqa: E402
from spellide.web.models import Run  # noqa: E402

PROGRAMS = {
    "hello prompt": dict(prompt="Say hi"),
    "1 MB prompt (in its prefix)": dict(prompt="word " * 200_000),
}


def memory_kb(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            out["rss"] = int(line.split()[1])
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("Pss", "Private_Clean", "Private_Dirty"):
            out[key] = int(rest.split()[0])
    out["uss"] = out.pop("Private_Clean") + out.pop("Private_Dirty")
    out["pss"] = out.pop("Pss")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_user("bench")
    for label, source in PROGRAMS.items():
        started = []
        for _ in range(args.runs):
            cfg = RunConfig(model="hello", budget=None, breakpoints=Breakpoints(before_model=True), **source)
            started.append(runner.start_run(user, cfg, label))
        deadline = time.monotonic() + 120
        while Run.objects.filter(pk__in=[r.pk for r in started], status="paused").count() < len(started):
            if time.monotonic() > deadline:
                raise SystemExit("the runs did not all pause")
            time.sleep(0.1)
        figures = [memory_kb(runner.get_active(r).execution.process.pid) for r in started]
        med = {k: statistics.median(f[k] for f in figures) / 1024 for k in ("rss", "pss", "uss")}
        print(f"{label}: {len(figures)} paused runs, per child process median RSS {med['rss']:.1f} MB, "
              f"PSS {med['pss']:.1f} MB, USS (private) {med['uss']:.1f} MB")
        for r in started:
            runner.control(r, "stop")
        for r in started:
            runner.wait_for(r, 30)


if __name__ == "__main__":
    main()
