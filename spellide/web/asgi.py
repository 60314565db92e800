"""ASGI entry point: ``daphne spellide.web.asgi:application``.

HTTP goes to Django (static files served by ``ASGIStaticFilesHandler`` unless
SPELLIDE_SERVE_STATIC=0, for a deployment behind a real web server); websockets are
origin-checked (scheme, host and port: ``origins.SameOriginValidator``) and authenticated
with the Django session. The whole application is wrapped in ``ServerHooks`` (marks runs a
previous server left active as interrupted; tells worker threads which event loop to
broadcast on).
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spellide.web.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ChannelNameRouter, ProtocolTypeRouter, URLRouter  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from django.urls import path  # noqa: E402

from spellide.web.consumers import RunConsumer  # noqa: E402
from spellide.web.origins import SameOriginValidator  # noqa: E402
from spellide.web.runner.lifecycle import ServerHooks  # noqa: E402
from spellide.web.runner.scale import RUNS_CHANNEL  # noqa: E402
from spellide.web.runner.worker import RunWorkerConsumer  # noqa: E402

websocket_urlpatterns = [
    path("ws/runs/<uuid:public_id>/", RunConsumer.as_asgi()),
]

http_app = (django_asgi_app if os.environ.get("SPELLIDE_SERVE_STATIC", "1") == "0"
            else ASGIStaticFilesHandler(django_asgi_app))

application = ServerHooks(ProtocolTypeRouter({
    "http": http_app,
    "websocket": SameOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    # scale mode: `manage.py runworker spellide-runs` executes runs (runner/worker.py)
    "channel": ChannelNameRouter({RUNS_CHANNEL: RunWorkerConsumer.as_asgi()}),
}))
