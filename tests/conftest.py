import os

# The web tests need Django; the core's tests do not mind it being configured.
# (pytest-django reads DJANGO_SETTINGS_MODULE before conftest files load, so also set Django
# up here; a `DJANGO_SETTINGS_MODULE` entry in pyproject's pytest options would do the same.)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spellide.web.settings")


def pytest_configure(config):
    import django
    from django.conf import settings

    settings.INSTALLED_APPS  # noqa: B018  (load the settings)
    django.setup()
