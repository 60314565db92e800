from django.apps import AppConfig


class WebConfig(AppConfig):
    """The IDE app. ``ready()`` touches no database (it also runs during ``migrate``); runs
    left active by a previous server process are marked interrupted by the ASGI entry point
    on the first request it serves (see ``spellide.web.asgi`` and ``runner.recover``)."""

    name = "spellide.web"
    label = "web"
    verbose_name = "spellide IDE"
    default_auto_field = "django.db.models.BigAutoField"
