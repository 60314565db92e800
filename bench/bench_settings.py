"""Settings for benches that serve the IDE in a subprocess: the normal settings, with the demo
directory taken from SPELLIDE_BENCH_DEMOS so a bench can offer its own scripted agent through
the ordinary start form (the form only accepts bundled demos as scripted models)."""

import os
from pathlib import Path

from spellide.web.settings import *  # noqa: F401,F403

if os.environ.get("SPELLIDE_BENCH_DEMOS"):
    DEMOS_DIR = Path(os.environ["SPELLIDE_BENCH_DEMOS"])

if os.environ.get("SPELLIDE_BENCH_SWITCH"):
    import sys
    sys.setswitchinterval(float(os.environ["SPELLIDE_BENCH_SWITCH"]))

if os.environ.get("SPELLIDE_BENCH_TRACE"):
    # Experiment: log when each event is handed to the broadcaster and when the consumer
    # sends it, to see where latency accumulates inside the server.
    import time as _time
    from django.core.signals import request_started as _rs

    _trace = open(os.environ["SPELLIDE_BENCH_TRACE"], "a", buffering=1)

    def _patch(**_kw):
        from spellide.web.consumers import RunConsumer
        from spellide.web.runner import broadcast, persist
        if getattr(RunConsumer, "_traced", False):
            return
        RunConsumer._traced = True
        orig_send = broadcast.Broadcaster.send

        def send(self, group, message):
            _trace.write(f"B {message.get('seq')} {_time.time():.6f}\n")
            return orig_send(self, group, message)
        broadcast.Broadcaster.send = send
        orig_event = RunConsumer.run_event

        async def run_event(self, message):
            _trace.write(f"C {message.get('seq')} {_time.time():.6f}\n")
            await orig_event(self, message)
            _trace.write(f"S {message.get('seq')} {_time.time():.6f}\n")
        RunConsumer.run_event = run_event
        orig_write = persist.RunPersister._write

        def _write(self, events):
            _trace.write(f"W {events[0].seq} {events[-1].seq} {_time.time():.6f}\n")
            return orig_write(self, events)
        persist.RunPersister._write = _write
    _rs.connect(_patch)
