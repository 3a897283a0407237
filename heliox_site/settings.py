"""Heliox settings: one module, every value from the environment (see .env.example).

Unset DATABASE_URL → a SQLite file; unset REDIS_URL → the in-process store and cache
(the embedded default: one process, nothing to install).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from heliox_site.env import (
    envbool,
    envchoice,
    envcidrs,
    envfloat,
    envint,
    envlist,
    envstr,
    envurl,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(envstr("HELIOX_VAR_DIR", str(BASE_DIR / "var")))

# django-environ reads a .env file if there is one; the process environment wins.
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = envbool("DEBUG", False)

_DEV_SECRET = "heliox-dev-only-secret-key-not-for-production-use-0123456789"
SECRET_KEY = envstr("SECRET_KEY", _DEV_SECRET if DEBUG else "")
if not SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is false")

# The pepper keyed into every API key's HMAC. Changing it invalidates every issued key.
API_KEY_PEPPER = envstr("API_KEY_PEPPER", "heliox-dev-pepper" if DEBUG else "")
if not API_KEY_PEPPER:
    raise ImproperlyConfigured("API_KEY_PEPPER must be set when DEBUG is false")

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "tenants",
    "billing",
    "gateway",
    "analytics",
    "abuse",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "heliox_site.urls"
ASGI_APPLICATION = "heliox_site.asgi.application"

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

# --- database -------------------------------------------------------------------------
_env = environ.Env()
_database_url = envurl(
    "DATABASE_URL",
    f"sqlite:///{VAR_DIR / 'heliox.sqlite3'}",
    ["sqlite", "postgres", "postgresql", "pgsql"],
)
DATABASES = {"default": _env.db_url_config(_database_url)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Under ASGI persistent connections leak (one per thread); psycopg's pool instead.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": envint("DATABASE_POOL_MIN", 2, minimum=0),
        "max_size": envint("DATABASE_POOL_MAX", 10, minimum=1),
        "timeout": envfloat("DATABASE_POOL_TIMEOUT", 5.0, minimum=0.1),
    }
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    # Waits for the writer lock instead of failing at once (gateway jobs write in a thread).
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: the store, the cache, the broker ----------------------------------------------
REDIS_URL = envurl("REDIS_URL", "", ["redis", "rediss", "unix"])
EMBEDDED = not REDIS_URL
# Short timeouts and no retries: a dead Redis must cost milliseconds, not seconds.
REDIS_SOCKET_TIMEOUT = envfloat("REDIS_SOCKET_TIMEOUT", 0.25, minimum=0.01)

if EMBEDDED:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
else:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": envurl("DJANGO_CACHE_URL", REDIS_URL, ["redis", "rediss", "unix"]),
            "KEY_PREFIX": "hxdj",
            "OPTIONS": {
                "SOCKET_CONNECT_TIMEOUT": REDIS_SOCKET_TIMEOUT,
                "SOCKET_TIMEOUT": REDIS_SOCKET_TIMEOUT,
            },
        }
    }

# The response cache. Point it at a Redis with `maxmemory-policy allkeys-lru` of its own, so
# that eviction there can never touch the rate-limit and quota counters in REDIS_URL's
# (which should run `noeviction`). Defaults to REDIS_URL for small deployments.
CACHE_REDIS_URL = envurl("CACHE_REDIS_URL", REDIS_URL, ["redis", "rediss", "unix"])
CELERY_BROKER_URL = envstr("CELERY_BROKER_URL", REDIS_URL)
# Embedded mode has no broker: periodic jobs run in-process (gateway/runtime/embedded_jobs).
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SOFT_TIME_LIMIT = 50
CELERY_TASK_TIME_LIMIT = 60
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# --- the gateway (data plane) -------------------------------------------------------------
TRUSTED_PROXIES = envcidrs("TRUSTED_PROXIES")
RATELIMIT_ON_STORE_ERROR = envchoice("RATELIMIT_ON_STORE_ERROR", "local", ["local", "open", "closed"])
SNAPSHOT_PATH = Path(envstr("SNAPSHOT_PATH", str(VAR_DIR / "snapshot.json")))
SNAPSHOT_RESYNC_SECONDS = envfloat("SNAPSHOT_RESYNC_SECONDS", 1.0, minimum=0.1)
RECORD_SPOOL_PATH = Path(envstr("RECORD_SPOOL_PATH", str(VAR_DIR / "records.spool")))
RECORD_FLUSH_INTERVAL_SECONDS = envfloat("RECORD_FLUSH_INTERVAL_SECONDS", 0.1, minimum=0.01)
# Off only to measure what recording costs: no request log, rollups, metrics or abuse signals.
REQUEST_RECORDS = envbool("REQUEST_RECORDS", True)
RECORD_STREAM_MAXLEN = envint("RECORD_STREAM_MAXLEN", 1_000_000, minimum=1000)
UPSTREAM_POOL_SIZE = envint("UPSTREAM_POOL_SIZE", 256, minimum=1)
# A route's target is skipped after this many connection failures or timeouts in a row, for
# CIRCUIT_OPEN_SECONDS, then probed with one request (gateway/runtime/circuit.py).
CIRCUIT_FAILURE_THRESHOLD = envint("CIRCUIT_FAILURE_THRESHOLD", 5, minimum=1)
CIRCUIT_OPEN_SECONDS = envfloat("CIRCUIT_OPEN_SECONDS", 30.0, minimum=0.1)
UPSTREAM_ALLOW_LINK_LOCAL = envbool("UPSTREAM_ALLOW_LINK_LOCAL", False)
# Portal (self-serve) routes may point at loopback or private addresses only when set (a local demo).
PORTAL_UPSTREAM_ALLOW_PRIVATE = envbool("PORTAL_UPSTREAM_ALLOW_PRIVATE", False)
LAST_USED_WRITE_INTERVAL_SECONDS = 60
EXAMPLE_UPSTREAM_URL = envurl("EXAMPLE_UPSTREAM_URL", "http://127.0.0.1:8001", ["http", "https"])
GATEWAY_VERSION = "0.1.0"

# Optional bearer token for /metrics and /metrics/prometheus (open when unset, as probes are).
METRICS_BEARER_TOKEN = envstr("METRICS_BEARER_TOKEN", "")

# --- analytics retention (analytics/retention.py) ------------------------------------------------
REQUEST_LOG_RETENTION_DAYS = envint("REQUEST_LOG_RETENTION_DAYS", 30, minimum=1)
ROLLUP_MINUTE_RETENTION_DAYS = envint("ROLLUP_MINUTE_RETENTION_DAYS", 7, minimum=1)
ROLLUP_RETENTION_DAYS = envint("ROLLUP_RETENTION_DAYS", 730, minimum=1)


# --- abuse detection (abuse/, README "Abuse detection") -----------------------------------------
ABUSE_INTERVAL_SECONDS = envint("ABUSE_INTERVAL_SECONDS", 10, minimum=1)
ABUSE_EWMA_ALPHA = envfloat("ABUSE_EWMA_ALPHA", 0.3, minimum=0.01)
ABUSE_ZSCORE_THRESHOLD = envfloat("ABUSE_ZSCORE_THRESHOLD", 3.0, minimum=0.1)
ABUSE_BLOCK_ZSCORE = envfloat("ABUSE_BLOCK_ZSCORE", 6.0, minimum=0.1)
ABUSE_WARMUP_INTERVALS = envint("ABUSE_WARMUP_INTERVALS", 6, minimum=0)
ABUSE_MIN_RATE = envfloat("ABUSE_MIN_RATE", 1.0, minimum=0)
ABUSE_BLOCK_DURATION_SECONDS = envint("ABUSE_BLOCK_DURATION_SECONDS", 300, minimum=1)
ABUSE_SOFT_LIMIT_FACTOR = envfloat("ABUSE_SOFT_LIMIT_FACTOR", 0.5, minimum=0.01)
ABUSE_SOFT_LIMIT_SECONDS = envint("ABUSE_SOFT_LIMIT_SECONDS", 300, minimum=1)
ABUSE_ERROR_STORM_RATIO = envfloat("ABUSE_ERROR_STORM_RATIO", 0.5, minimum=0.01)
ABUSE_ERROR_STORM_MIN_REQUESTS = envint("ABUSE_ERROR_STORM_MIN_REQUESTS", 50, minimum=1)
ABUSE_KEY_GUESSING_THRESHOLD = envint("ABUSE_KEY_GUESSING_THRESHOLD", 20, minimum=2)
ABUSE_ALLOWLIST_KEY_IDS = [int(v) for v in envlist("ABUSE_ALLOWLIST_KEY_IDS") if v.isdigit()]
ABUSE_ALLOWLIST_IPS = envcidrs("ABUSE_ALLOWLIST_IPS")

# --- security -----------------------------------------------------------------------------
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", not DEBUG)
# Probes and scrapers talk plain HTTP inside the cluster.
SECURE_REDIRECT_EXEMPT = [r"^health$", r"^ready$", r"^metrics"]
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", not DEBUG)
SESSION_COOKIE_SECURE = envbool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = envbool("CSRF_COOKIE_SECURE", not DEBUG)
if envbool("SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
X_FRAME_OPTIONS = "DENY"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(envstr("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns on every start without it
STATICFILES_DIRS = [BASE_DIR / "static"] if (BASE_DIR / "static").is_dir() else []
# Serve straight from the apps' static folders: no collectstatic step for the demo.
WHITENOISE_USE_FINDERS = True

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",  # for staff signed in to django-admin
    ],
    "DEFAULT_PARSER_CLASSES": ["heliox_site.api.parsers.BoundedJSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "heliox_site.api.authentication.AdminKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["heliox_site.api.authentication.IsStaffOrAdminKey"],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "heliox_site.api.pagination.PagePagination",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_RATES": {
        # Counted per submitted e-mail and per client address (tenants/accounts/throttles.py).
        "login_account": envstr("LOGIN_RATE_PER_ACCOUNT", "5/min"),
        "login_ip": envstr("LOGIN_RATE_PER_IP", "30/min"),
        "signup_ip": envstr("SIGNUP_RATE_PER_IP", "10/hour"),
        "email_ip": envstr("EMAIL_RATE_PER_IP", "10/hour"),
        "email_address": envstr("EMAIL_RATE_PER_ADDRESS", "5/hour"),
        "reset_address": envstr("EMAIL_RATE_PER_ADDRESS", "5/hour"),  # the same rate, its own budget
    },
    "EXCEPTION_HANDLER": "heliox_site.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
# A control-plane request body larger than this is a 413 (the proxy has per-route limits).
API_MAX_BODY_BYTES = envint("API_MAX_BODY_BYTES", 1024 * 1024, minimum=1024)

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": dt.timedelta(seconds=envint("JWT_ACCESS_SECONDS", 900, minimum=30)),
    "REFRESH_TOKEN_LIFETIME": dt.timedelta(seconds=envint("JWT_REFRESH_SECONDS", 7 * 86_400, minimum=60)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": True,
    "ALGORITHM": "HS256",
    # Its own key, so rotating it logs every customer out without touching sessions or signing.
    "SIGNING_KEY": envstr("JWT_SIGNING_KEY", SECRET_KEY),
    "AUTH_HEADER_TYPES": ("Bearer",),
    # Tokens carry a hash of the password they were issued under: a password change or reset
    # voids every access token at once, not when it expires.
    "CHECK_REVOKE_TOKEN": True,
}

# --- accounts (the portal's signup, verification and password reset) --------------------------
SKIP_EMAIL_VERIFICATION = envbool("SKIP_EMAIL_VERIFICATION", False)
SIGNUP_TRIAL_DAYS = envint("SIGNUP_TRIAL_DAYS", 14, minimum=0)
EMAIL_VERIFICATION_SECONDS = envint("EMAIL_VERIFICATION_SECONDS", 3600, minimum=60)
PASSWORD_RESET_TIMEOUT = envint("PASSWORD_RESET_TIMEOUT", 3600, minimum=60)
# console in development; smtp://user:password@host:587 (or smtp+tls://) in production.
EMAIL_CONFIG = _env.email_url_config(envurl(
    "EMAIL_URL", "consolemail://", ["consolemail", "smtp", "smtps", "smtp+tls", "smtp+ssl", "memorymail"]
))
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = envstr("DEFAULT_FROM_EMAIL", "Heliox <no-reply@localhost>")

SPECTACULAR_SETTINGS = {
    "TITLE": "Heliox API",
    "DESCRIPTION": "The Heliox gateway: the proxy and AI endpoints, the admin API and the customer portal.",
    "VERSION": GATEWAY_VERSION,
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",  # served from our static files: the machines have no internet
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "heliox_site.api.schema.add_data_plane_endpoints",
    ],
    # The admin API and the portal share these choice sets: one name each.
    "ENUM_NAME_OVERRIDES": {
        "TenantStatusEnum": "tenants.models.Tenant.Status",
        "SubscriptionStatusEnum": "billing.models.Subscription.Status",
        "ApiKeyStatusEnum": ["active", "revoked", "expired"],
        "RateLimitAlgorithmEnum": "billing.models.RateLimitAlgorithm",
    },
}
# Keys for the admin JSON API (X-Admin-Key); several, comma-separated, so one can be rotated.
ADMIN_API_KEYS = envlist("ADMIN_API_KEYS")
if any(len(key) < 16 for key in ADMIN_API_KEYS):
    raise ImproperlyConfigured("ADMIN_API_KEYS: each key must be at least 16 characters")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": envchoice(
        "LOG_LEVEL", "INFO", ["DEBUG", "INFO", "WARNING", "ERROR"]
    )},
}
