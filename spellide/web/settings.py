"""Django settings for spellide.

Embedded default (no configuration): SQLite in ``var/spellide.sqlite3``, the in-memory
channel layer, runs executed by the server (each in a child process of it).

Scale mode, switched on by environment variables:
  SPELLIDE_DATABASE_URL=postgres://user:pass@host:5432/dbname   -> PostgreSQL
  SPELLIDE_REDIS_URL=redis://host:6379/0                         -> channels_redis layer, and
                                                                    runs in run workers
  (`manage.py runworker spellide-runs`; SPELLIDE_RUN_WORKERS=threads keeps them in-process)

Other variables: SPELLIDE_SECRET_KEY (else a key generated once into var/secret-key.txt),
SPELLIDE_DEBUG=1, SPELLIDE_ALLOWED_HOSTS=a,b (added to the local ones), SPELLIDE_VAR (the
var/ directory), SPELLIDE_SQLITE_PATH / SPELLIDE_TEST_SQLITE_PATH (database files);
SPELLIDE_HTTPS=1 (secure cookies, HSTS), SPELLIDE_CSRF_TRUSTED_ORIGINS=https://host,...,
SPELLIDE_LOGIN_FAILURES / SPELLIDE_LOGIN_WINDOW (sign-in rate limit): see "security" below.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parents[2]
VAR_DIR = Path(os.environ.get("SPELLIDE_VAR") or BASE_DIR / "var")
VAR_DIR.mkdir(parents=True, exist_ok=True)
WORKSPACES_DIR = VAR_DIR / "workspaces"
RECORDS_DIR = VAR_DIR / "records"
DEMOS_DIR = Path(os.environ.get("SPELLIDE_DEMOS_DIR") or BASE_DIR / "spellide" / "demos")


def _secret_key() -> str:
    key = os.environ.get("SPELLIDE_SECRET_KEY")
    if key:
        return key
    path = VAR_DIR / "secret-key.txt"
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        key = secrets.token_urlsafe(50)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process won the race
            return path.read_text(encoding="utf-8").strip()
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(key)
        return key


SECRET_KEY = _secret_key()
DEBUG = os.environ.get("SPELLIDE_DEBUG", "") in ("1", "true", "yes")
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"] + [
    h.strip() for h in os.environ.get("SPELLIDE_ALLOWED_HOSTS", "").split(",") if h.strip()]
CSRF_TRUSTED_ORIGINS = [o.strip() for o in os.environ.get("SPELLIDE_CSRF_TRUSTED_ORIGINS", "").split(",")
                        if o.strip()]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # before "channels": its `runworker` command extends Channels' (scale mode's run workers)
    "spellide.web.apps.WebConfig",
    "channels",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Login is required everywhere; views that must be public (sign-in, share links)
    # are marked with django.contrib.auth.decorators.login_not_required.
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Bidirectional-control characters in run text shown as visible markers (spellide/web/bidi.py).
    "spellide.web.bidi.BidiMarkMiddleware",
]

ROOT_URLCONF = "spellide.web.urls"
ASGI_APPLICATION = "spellide.web.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def _database_from_url(url: str) -> dict:
    u = urlparse(url)
    if u.scheme not in ("postgres", "postgresql", "pgsql"):
        raise ValueError(f"SPELLIDE_DATABASE_URL: unsupported scheme {u.scheme!r} (use postgres://)")
    options = {k: v[-1] for k, v in parse_qs(u.query).items()}
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(u.path.lstrip("/")) or "spellide",
        "USER": unquote(u.username or ""),
        "PASSWORD": unquote(u.password or ""),
        "HOST": u.hostname or "",
        "PORT": str(u.port or ""),
        "OPTIONS": options,
        "CONN_MAX_AGE": 0,
        "TEST": {"NAME": os.environ.get("SPELLIDE_TEST_DATABASE_NAME") or None},
    }


if os.environ.get("SPELLIDE_DATABASE_URL"):
    DATABASES = {"default": _database_from_url(os.environ["SPELLIDE_DATABASE_URL"])}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("SPELLIDE_SQLITE_PATH") or str(VAR_DIR / "spellide.sqlite3"),
            "OPTIONS": {
                # Worker threads persist events while requests read: WAL lets readers run
                # beside the writer; IMMEDIATE avoids lock-upgrade deadlocks between writers.
                "timeout": 30,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous="
                                + os.environ.get("SPELLIDE_SQLITE_SYNCHRONOUS", "NORMAL"),
            },
            # Tests use a file database too: the threads relaying runs and the test share it.
            "TEST": {"NAME": os.environ.get("SPELLIDE_TEST_SQLITE_PATH")
                     or str(VAR_DIR / f"test-spellide-{os.getpid()}.sqlite3")},
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

if os.environ.get("SPELLIDE_REDIS_URL"):
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # redis-py 8 reads with a 5 s socket timeout by default, which aborts
                # channels_redis's 5 s blocking BZPOPMIN (channels_redis issue #422): keep
                # the socket timeout above it.
                "hosts": [{"address": os.environ["SPELLIDE_REDIS_URL"], "socket_timeout": 30,
                           "socket_connect_timeout": 5}],
                "capacity": 5000,
                "expiry": 60,
                "prefix": os.environ.get("SPELLIDE_REDIS_PREFIX", "spellide"),
            },
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            # Consumers fill gaps from the database, but a large capacity keeps that rare.
            "CONFIG": {"capacity": 5000, "expiry": 60},
        }
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [
    BASE_DIR / "static",
    ("vendor/htmx", BASE_DIR / "node_modules" / "htmx.org" / "dist"),
]

# --- security (README "Trust") ---
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Content-Security-Policy on every response (django.middleware.csp): scripts, styles and
# sockets from this origin only; no inline scripts, handlers or style attributes (the pages
# have none: ide.js and ide.css carry them), no eval (htmx evaluates only hx-on / js: / trigger
# filters, which the pages do not use), no plugins, no framing, forms post only here.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
}
# SPELLIDE_HTTPS=1: the IDE is served over HTTPS (directly or behind a TLS proxy): cookies are
# sent over HTTPS only and browsers are told to use HTTPS for a year (HSTS). Behind a proxy
# that terminates TLS, also set SPELLIDE_CSRF_TRUSTED_ORIGINS=https://your.host so POSTs and
# websockets from the https:// pages are accepted.
SPELLIDE_HTTPS = os.environ.get("SPELLIDE_HTTPS", "") in ("1", "true", "yes")
if SPELLIDE_HTTPS:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = int(os.environ.get("SPELLIDE_HSTS_SECONDS", str(365 * 24 * 3600)))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = False  # other services of the domain are not ours to bind
# Sign-in: this many failed attempts for one username from one address within the window
# (seconds) and that pair is refused with 429 until the window ends (views/auth.py).
SPELLIDE_LOGIN_FAILURES = int(os.environ.get("SPELLIDE_LOGIN_FAILURES", "5"))
SPELLIDE_LOGIN_WINDOW = int(os.environ.get("SPELLIDE_LOGIN_WINDOW", "900"))
if os.environ.get("SPELLIDE_REDIS_URL"):  # the failure counts are shared by every server
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                          "LOCATION": os.environ["SPELLIDE_REDIS_URL"],
                          "KEY_PREFIX": os.environ.get("SPELLIDE_REDIS_PREFIX", "spellide")}}
# --- end security ---

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"spellide": {"handlers": ["console"], "level": os.environ.get("SPELLIDE_LOG_LEVEL", "INFO")}},
}

# The run service: the thread stack a run's process evaluates in (Spell evaluation recurses on
# nested forms and on non-tail self-calls) and the recursion limit it sets.
SPELLIDE_RUN_STACK_MB = int(os.environ.get("SPELLIDE_RUN_STACK_MB", "256"))
SPELLIDE_RECURSION_LIMIT = int(os.environ.get("SPELLIDE_RECURSION_LIMIT", "100000"))

# --- scale mode: where runs execute (see spellide/web/runner/scale.py) ---
# "threads": the server process executes runs (each in a child process, relayed by a thread:
# the embedded default); "channels": separate run workers (`manage.py runworker
# spellide-runs`), the default when SPELLIDE_REDIS_URL is set.
SPELLIDE_RUN_WORKERS = (os.environ.get("SPELLIDE_RUN_WORKERS")
                        or ("channels" if os.environ.get("SPELLIDE_REDIS_URL") else "threads")).strip().lower()
if SPELLIDE_RUN_WORKERS not in ("threads", "channels"):
    raise ValueError(f"SPELLIDE_RUN_WORKERS: {SPELLIDE_RUN_WORKERS!r} is not 'threads' or 'channels'")
if SPELLIDE_RUN_WORKERS == "channels" and not os.environ.get("SPELLIDE_REDIS_URL"):
    raise ValueError("SPELLIDE_RUN_WORKERS=channels needs SPELLIDE_REDIS_URL (the Redis channel layer)")
# How long a control sent to a run in another process waits for the run worker's answer.
SPELLIDE_CONTROL_TIMEOUT = float(os.environ.get("SPELLIDE_CONTROL_TIMEOUT", "5"))
# --- end scale mode ---

# Caps on runs (spellide/web/quota.py): every active run holds a child process, and a paused
# one keeps it while it waits for a person (README "Where runs execute" gives the memory a
# paused run costs). 0 switches a cap off.
SPELLIDE_MAX_ACTIVE_RUNS_PER_USER = int(os.environ.get("SPELLIDE_MAX_ACTIVE_RUNS_PER_USER", "8"))
SPELLIDE_MAX_PAUSED_RUNS = int(os.environ.get("SPELLIDE_MAX_PAUSED_RUNS", "32"))
