"""``manage.py runworker spellide-runs``: Channels' worker command, plus the services of a
spellide run worker (heartbeat, marking runs of dead workers interrupted, taking controls) when
it listens on ``spellide-runs``. Channels' command does the rest (this app is listed before
``channels`` in INSTALLED_APPS so this command takes precedence)."""

from __future__ import annotations

import signal
import warnings

from channels.management.commands.runworker import Command as ChannelsRunworker
from django.core.management import CommandError


class Command(ChannelsRunworker):
    help = "Run a Channels worker; with the channel spellide-runs, a spellide run worker (scale mode)."

    def handle(self, *args, **options):
        from spellide.web.runner import scale
        if scale.RUNS_CHANNEL not in options["channels"]:
            return super().handle(*args, **options)
        if not scale.enabled():
            raise CommandError("spellide run workers need scale mode: set SPELLIDE_REDIS_URL (and "
                               "SPELLIDE_DATABASE_URL), and SPELLIDE_RUN_WORKERS unset or 'channels'")
        from spellide.web.runner.worker import services

        def terminate(signum, frame):  # SIGTERM: leave like Ctrl-C, through the finally below
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, terminate)
        # asgiref's StatelessServer hands consumers a plain lambda as `send`; SyncConsumer wraps
        # it with async_to_sync, which warns once per worker. Harmless: the lambda returns a
        # coroutine.
        warnings.filterwarnings("ignore", message="async_to_sync was passed a non-async-marked callable")
        services.start()
        self.stdout.write(f"spellide run worker {services.worker_id} listening on {scale.RUNS_CHANNEL}")
        self.stdout.flush()
        try:
            return super().handle(*args, **options)
        except KeyboardInterrupt:
            pass
        finally:
            services.stop()
