"""One settings module; every deploy-specific value comes from the environment."""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
import dj_email_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from config import redis_sentinel
from config.env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
RUN_DIR = BASE_DIR / ".run"

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = "insecure-dev-only-key-set-SECRET_KEY-in-production"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"] if DEBUG else [])
if "*" in ALLOWED_HOSTS:
    # "*" would also make the WebSocket origin check accept any site.
    raise ImproperlyConfigured("ALLOWED_HOSTS must name hosts; '*' is refused")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "realtime",
    "csp",
    "django_eventstream",
    "axes",
    "notifications",
    "feeds",
    "demos",
    "ticker",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Turns a locked-out login (site or admin) into the lockout page; last, as axes asks.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"

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
                "notifications.context_processors.bell",
                "notifications.context_processors.site",
            ],
        },
    },
]

DATABASE_URL = env_str("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not :memory:, so a server started by the tests sees the test database.
    DATABASES["default"]["TEST"] = {"NAME": env_str("TEST_SQLITE_PATH") or None}
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A bounded pool per process. Without it every concurrent request thread opens its own
    # connection, and a burst of a few hundred SSE connects exceeds PostgreSQL's
    # max_connections (100 by default) with 500s. Callers beyond the pool wait (timeout s).
    pool_size = env_int("DATABASE_POOL_SIZE", 16)
    if pool_size < 1:
        raise ImproperlyConfigured("DATABASE_POOL_SIZE must be at least 1")
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": pool_size,
        "timeout": 20,
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Redis carries live events between processes. Unset: the private Redis that
# `manage.py serve` starts on a unix socket inside the project.
# With Sentinel (REDIS_SENTINELS, or a redis+sentinel:// REDIS_URL) every client follows
# the primary that the sentinels name, through failovers (config/redis_sentinel.py).
REDIS_SENTINEL = redis_sentinel.from_environment(env_str("REDIS_URL"))
REDIS_URL = env_str("REDIS_URL") or f"unix://{RUN_DIR / 'redis.sock'}"
# The Pulse channel layer (realtime/layer.py): channels-redis's pub/sub layer with one
# subscription per process and encode-once delivery; on REDIS_URL like the rest of Pulse.
# Consumers of your own use it with the standard API (README, "Use it from your code").
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "realtime.layer.PulseChannelLayer",
        "CONFIG": {"prefix": "asgi"},
    }
}

# Live connections one user may hold across all server processes (realtime/connection_caps.py):
# plenty for tabs and devices, and a script cannot hold thousands.
SSE_STREAMS_PER_USER = env_int("SSE_STREAMS_PER_USER", 20)
CHAT_SOCKETS_PER_USER = env_int("CHAT_SOCKETS_PER_USER", 20)
if SSE_STREAMS_PER_USER < 1 or CHAT_SOCKETS_PER_USER < 1:
    raise ImproperlyConfigured("SSE_STREAMS_PER_USER and CHAT_SOCKETS_PER_USER must be positive")

# How long after sending a chat message its author may still edit it (feeds.services).
CHAT_EDIT_WINDOW_SECONDS = env_int("CHAT_EDIT_WINDOW_SECONDS", 15 * 60)
if CHAT_EDIT_WINDOW_SECONDS < 0:
    raise ImproperlyConfigured(
        f"CHAT_EDIT_WINDOW_SECONDS must be 0 or more, got {CHAT_EDIT_WINDOW_SECONDS}"
    )

# Repeated notifications of one kind on one target within this many seconds collapse into
# one row ("bob and 3 others replied ..."; notifications.services); 0 turns it off.
NOTIFICATION_COLLAPSE_SECONDS = env_int("NOTIFICATION_COLLAPSE_SECONDS", 3600)
if NOTIFICATION_COLLAPSE_SECONDS < 0:
    raise ImproperlyConfigured(
        f"NOTIFICATION_COLLAPSE_SECONDS must be 0 or more, got {NOTIFICATION_COLLAPSE_SECONDS}"
    )

# On SIGTERM a server process stops accepting and moves its clients off over this many
# seconds, spread out, before it exits (realtime/drain.py): a rolling restart of several
# processes then loses nothing and causes no reconnect storm.
DRAIN_SECONDS = env_int("DRAIN_SECONDS", 10)
if DRAIN_SECONDS < 0:
    raise ImproperlyConfigured(f"DRAIN_SECONDS must be 0 or more, got {DRAIN_SECONDS}")

# GET /metrics (realtime/ops.py) answers staff sessions and `Authorization: Bearer
# <METRICS_TOKEN>`; unset, staff only.
METRICS_TOKEN = env_str("METRICS_TOKEN")
if METRICS_TOKEN and len(METRICS_TOKEN) < 16:
    raise ImproperlyConfigured("METRICS_TOKEN must be at least 16 characters (or unset)")
# prometheus_client reads PROMETHEUS_MULTIPROC_DIR itself (realtime/metrics.py): every
# server process of a host writes its metrics there and a scrape of any sums them all.
# Checked here, before a metric is made: a missing directory would fail at import.
_metrics_dir = env_str("PROMETHEUS_MULTIPROC_DIR")
if _metrics_dir and not (Path(_metrics_dir).is_dir() and os.access(_metrics_dir, os.W_OK)):
    raise ImproperlyConfigured(
        f"PROMETHEUS_MULTIPROC_DIR={_metrics_dir} is not a writable directory: create it "
        "(empty) before the servers start, or unset it for per-process metrics"
    )

EVENTSTREAM_STORAGE_CLASS = "notifications.storage.ReplayStorage"
EVENTSTREAM_CHANNELMANAGER_CLASS = "notifications.channels.AccessChannelManager"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if env_bool("FAST_PASSWORD_HASHER", False):
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Login throttling (django-axes): failed logins are counted in the database, so every server
# process sees them. LOGIN_LOCKOUT_PARAMETERS: what a lock applies to, each item locked on
# its own; `username+ip_address` locks only that pair. Behind a proxy the client address is
# REMOTE_ADDR as the ASGI server sets it (daphne --proxy-headers, uvicorn --proxy-headers).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
_cooloff_minutes = env_int("LOGIN_COOLOFF_MINUTES", 15)
if AXES_FAILURE_LIMIT < 1 or _cooloff_minutes < 1:
    raise ImproperlyConfigured("LOGIN_FAILURE_LIMIT and LOGIN_COOLOFF_MINUTES must be positive")
AXES_COOLOFF_TIME = timedelta(minutes=_cooloff_minutes)
_lockout_items = env_list("LOGIN_LOCKOUT_PARAMETERS", ["username", "ip_address"])
if not _lockout_items or any(
    part not in ("username", "ip_address", "user_agent")
    for item in _lockout_items
    for part in item.split("+")
):
    raise ImproperlyConfigured(
        "LOGIN_LOCKOUT_PARAMETERS must list username, ip_address or user_agent (join with +)"
    )
AXES_LOCKOUT_PARAMETERS = [item.split("+") if "+" in item else item for item in _lockout_items]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_HTTP_RESPONSE_CODE = 429

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "notifications:inbox"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# Email for missed notifications and digests (notifications/emails/): EMAIL_URL as
# smtp://[user:password@]host:port (`?tls=True` for STARTTLS, smtps:// for TLS) or
# console:// (the default: messages are printed, as under bin/run).
EMAIL_URL = env_str("EMAIL_URL") or "console://"
_email = dj_email_url.parse(EMAIL_URL)
if "EMAIL_BACKEND" not in _email:
    raise ImproperlyConfigured(
        "EMAIL_URL must start with smtp://, smtps:// or console://, "
        f"got {EMAIL_URL.partition(':')[0]}:..."
    )
EMAIL_BACKEND = _email["EMAIL_BACKEND"]
EMAIL_HOST = _email["EMAIL_HOST"] or "localhost"
EMAIL_PORT = _email["EMAIL_PORT"] or 25
EMAIL_HOST_USER = _email["EMAIL_HOST_USER"] or ""
EMAIL_HOST_PASSWORD = _email["EMAIL_HOST_PASSWORD"] or ""
EMAIL_USE_TLS, EMAIL_USE_SSL = _email["EMAIL_USE_TLS"], _email["EMAIL_USE_SSL"]
EMAIL_TIMEOUT = _email["EMAIL_TIMEOUT"] or 30
DEFAULT_FROM_EMAIL = env_str("EMAIL_FROM") or "Pulse <pulse@localhost>"
# A worker's claim on due email rows lasts this long; a worker that died leaves its unsent
# rows to the others after it (notifications/emails/claims.py). Longer than a batch takes.
NOTIFICATION_EMAIL_LEASE_SECONDS = env_int("NOTIFICATION_EMAIL_LEASE_SECONDS", 300)
if NOTIFICATION_EMAIL_LEASE_SECONDS < 1:
    raise ImproperlyConfigured(
        "NOTIFICATION_EMAIL_LEASE_SECONDS must be 1 or more, "
        f"got {NOTIFICATION_EMAIL_LEASE_SECONDS}"
    )
# The links in emails are absolute: the address users reach the site at.
SITE_URL = (env_str("SITE_URL") or "http://127.0.0.1:8000").rstrip("/")

# The last `manage.py compare_transports` result, which the staff page /staff/transports/ shows.
TRANSPORT_COMPARISON_FILE = Path(
    env_str("TRANSPORT_COMPARISON_FILE") or RUN_DIR / "compare_transports.json"
)

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"

# Cookies and transport security: safe defaults, HTTPS-only flags when SECURE_SSL is on.
SECURE_SSL = env_bool("SECURE_SSL", not DEBUG)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = SECURE_SSL
CSRF_COOKIE_SECURE = SECURE_SSL
SECURE_SSL_REDIRECT = SECURE_SSL and env_bool("SECURE_SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if SECURE_SSL else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_SSL
SECURE_HSTS_PRELOAD = SECURE_SSL
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if SECURE_SSL else None
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# Content-Security-Policy (django-csp): scripts and styles only as files from this site, so
# text that slips into a page as HTML cannot run. Pages load ES modules and stylesheets
# from static/ and set styles only through the CSSOM; the admin's scripts are files too.
# connect-src 'self' covers the SSE stream and the chat WebSocket (same host and port).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],  # the favicon and the admin's icons are data: URLs
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}
CSRF_FAILURE_VIEW = "notifications.views.api.csrf_failure"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # axes logs every login at INFO; lockouts are WARNING.
    "loggers": {"django_eventstream": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}
