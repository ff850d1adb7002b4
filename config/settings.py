"""PushPilot settings: one module, every value from the environment (12-factor).

With no environment at all PushPilot runs "embedded": SQLite file, local-memory
cache, a file-system Celery broker and local fakes. Set DATABASE_URL / REDIS_URL
(and the production values below) to run it for real.
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.env import env, env_bool, env_int, env_list

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env("PUSHPILOT_VAR_DIR", str(BASE_DIR / "var")))

ENVIRONMENT = env("ENVIRONMENT", "local")
if ENVIRONMENT not in {"local", "staging", "production"}:
    raise ImproperlyConfigured("ENVIRONMENT must be one of local, staging, production.")

DEBUG = env_bool("DEBUG", ENVIRONMENT == "local")
SECRET_KEY = env("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY is required when DEBUG is off.")
    SECRET_KEY = "insecure-local-only-key-do-not-use-in-production-0123456789"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")
CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS", "")
CORS_ALLOW_HEADERS = (
    "accept",
    "authorization",
    "content-type",
    "x-request-id",
    "x-workspace-id",
    "x-pushpilot-key",
)
CORS_EXPOSE_HEADERS = ("x-request-id", "retry-after")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "apps.common",
    "apps.accounts",
    "apps.workspaces",
    "apps.integrations.firebase",
    "apps.ai",
    "apps.campaigns",
    "apps.notifications",
    "apps.analytics",
    "apps.devices",
    "apps.webhooks",
]

MIDDLEWARE = [
    "apps.common.metrics.MetricsMiddleware",
    "apps.common.middleware.RequestIdMiddleware",
    "apps.common.middleware.TrailingSlashMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
AUTH_USER_MODEL = "accounts.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Paths are normalised by TrailingSlashMiddleware; never redirect (a redirect loses a POST body).
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = env("DATABASE_URL", "")
if not DATABASE_URL:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASE_URL = f"sqlite:///{VAR_DIR / 'pushpilot.sqlite3'}"
DATABASES = {
    "default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))
}
DATABASES["default"]["ATOMIC_REQUESTS"] = True
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True  # a reused connection is checked first
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded mode runs web, worker and scheduler as separate processes on one file:
    # WAL lets readers and one writer overlap, IMMEDIATE takes the write lock up front so
    # two writers queue on the busy timeout instead of failing with "database is locked".
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
USES_POSTGRES = DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
if USES_POSTGRES:
    # Django's backend with psycopg's C date-time parser (apps/common/postgresql/base.py).
    DATABASES["default"]["ENGINE"] = "apps.common.postgresql"
    # Cursor pages planned once a session (apps/common/postgresql/base.py); off behind a
    # pooler that drops a session's prepared statements.
    DATABASES["default"].setdefault("OPTIONS", {})["prepared_statements"] = env_bool(
        "DB_PREPARED_STATEMENTS", True
    )

# --- Cache ----------------------------------------------------------------------------------
REDIS_URL = env("REDIS_URL", "")
if REDIS_URL:
    CACHES = {
        "default": {
            # Degrades instead of failing when Redis is down (apps/common/cache.py).
            "BACKEND": "apps.common.cache.ResilientRedisCache",
            "LOCATION": env("CACHE_REDIS_URL", REDIS_URL),
            "KEY_PREFIX": env("CACHE_KEY_PREFIX", "pushpilot"),
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                # A Redis that hangs costs a request at most this, not a worker thread.
                "SOCKET_CONNECT_TIMEOUT": 0.5,
                "SOCKET_TIMEOUT": 0.5,
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Auth -----------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if env_bool("FAST_PASSWORD_HASHER", False):  # tests only: PBKDF2 costs ~0.3 s per hash
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(seconds=env_int("JWT_ACCESS_LIFETIME_SECONDS", 15 * 60)),
    "REFRESH_TOKEN_LIFETIME": timedelta(
        seconds=env_int("JWT_REFRESH_LIFETIME_SECONDS", 14 * 24 * 3600)
    ),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": True,
    "SIGNING_KEY": env("JWT_SIGNING_KEY", SECRET_KEY),
    "ALGORITHM": "HS256",
    "AUTH_HEADER_TYPES": ("Bearer",),
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "user_id",
}

# Sign in with Google / Apple: the app's OAuth client ids (audiences), comma-separated.
GOOGLE_CLIENT_IDS = env_list("GOOGLE_CLIENT_IDS", "")
GOOGLE_CERTS_URL = env("GOOGLE_CERTS_URL", "https://www.googleapis.com/oauth2/v1/certs")
APPLE_CLIENT_IDS = env_list("APPLE_CLIENT_IDS", "")
APPLE_JWKS_URL = env("APPLE_JWKS_URL", "https://appleid.apple.com/auth/keys")
APPLE_ISSUER = env("APPLE_ISSUER", "https://appleid.apple.com")

# Password sign-in per account: this many wrong passwords within the window -> 429 until it
# has passed (apps/accounts/login_limits.py).
LOGIN_MAX_FAILURES = env_int("LOGIN_MAX_FAILURES", 5)
LOGIN_FAILURE_WINDOW_SECONDS = env_int("LOGIN_FAILURE_WINDOW_SECONDS", 15 * 60)

# --- DRF ------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework_simplejwt.authentication.JWTAuthentication",
        # X-API-Key: a workspace's key, limited to scopes (apps/workspaces/authentication.py).
        "apps.workspaces.authentication.ApiKeyAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["apps.common.renderers.JSONRenderer"],  # DRF's JSON, by orjson
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "apps.common.pagination.PageNumberPagination",
    "DEFAULT_FILTER_BACKENDS": ["apps.common.filters.FilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "apps.common.schema.AutoSchema",
    "DEFAULT_METADATA_CLASS": "apps.common.metadata.Metadata",
    "EXCEPTION_HANDLER": "apps.common.exceptions.custom_exception_handler",
    "DEFAULT_THROTTLE_CLASSES": [
        "apps.workspaces.authentication.MemberRateThrottle",  # `user`: people (not keys)
        "apps.workspaces.authentication.ApiKeyRateThrottle",  # `api_key`: per API key
    ],
    "DEFAULT_THROTTLE_RATES": {
        "user": env("THROTTLE_USER", "1000/day"),
        "auth": env("THROTTLE_AUTH", "20/min"),
        "ai": env("THROTTLE_AI", "60/min"),
        # Per ingest key — every install of an app shares its key: size it for the audience.
        "ingest": env("THROTTLE_INGEST", "600/min"),
        # Per ingest key too: every install registers at start, and imports come in batches.
        "devices": env("THROTTLE_DEVICES", "1200/min"),
        # Per API key (X-API-Key): a server's calls, not a person's.
        "api_key": env("THROTTLE_API_KEY", "600/min"),
    },
    "NUM_PROXIES": env_int("NUM_PROXIES", None),
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "PushPilot API",
    "DESCRIPTION": (
        "Multi-tenant push-notification backend. Authenticate with `Authorization: Bearer "
        "<access JWT>` (from /auth/register or /auth/token); workspace-scoped operations also "
        "need `X-Workspace-ID: <workspace id>` — both are security schemes, so Swagger UI's "
        '"Authorize" sets them once for every request. Servers may use a workspace\'s '
        "`X-API-Key: <key>` instead (the ApiKey scheme, on the operations that accept keys; "
        "the key names its workspace). Every error is "
        '`{"error": {"code", "message", "details"}}`.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "apps.common.schema.describe_path_parameters",
    ],
    # Several models have a `status` field; name each choice set after its model.
    "ENUM_NAME_OVERRIDES": {
        "MemberStatusEnum": "apps.workspaces.models.MemberStatus",
        "InvitationStatusEnum": "apps.workspaces.models.InvitationStatus",
        "RoleEnum": "apps.workspaces.models.Role",
        "ApiKeyStatusEnum": "apps.workspaces.models.ApiKeyStatus",
        "ApiKeyScopeEnum": "apps.workspaces.models.ApiKeyScope",
        "ToneEnum": "apps.ai.models.Tone",
        "TemplateSourceEnum": "apps.ai.models.TemplateSource",
        "AIGenerationStatusEnum": "apps.ai.models.GenerationStatus",
        "StatusEnum": "apps.campaigns.models.CampaignStatus",
        "DeviceStatusEnum": "apps.devices.models.DeviceStatus",
        "DevicePlatformEnum": "apps.devices.models.Platform",
        "PlatformEnum": "apps.analytics.models.Platform",
    },
}

# --- Celery ---------------------------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", REDIS_URL or "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem"):
    # The embedded broker: kombu's file-system transport, so `make run` needs no server.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(VAR_DIR / "broker"),
        "data_folder_out": str(VAR_DIR / "broker"),
        "processed_folder": str(VAR_DIR / "broker-processed"),
        "control_folder": str(VAR_DIR / "broker-control"),
        "store_processed": False,
        "polling_interval": 0.1,
    }
else:
    # Redis redelivers a message not acknowledged within the visibility timeout. The engine
    # never relies on it (leases and claim tokens recover deliveries sooner); keep it long.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT_SECONDS", 3600)
    }
# Celery's Django fixup closes the database connection around every task unless told to
# reuse it: a new PostgreSQL connection per batch costs more than it needs to. Reuse it for
# this many tasks; apps.common.celery_signals health-checks it before and after every task.
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 1000)
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
# Worker processes sized for the machine: sending is CPU-bound Python (one core per
# process), each process sends a batch at a time concurrently. `celery worker` alone (make
# run, compose, the README's command) picks these up; -c / --pool still override them.
CELERY_WORKER_POOL = env("WORKER_POOL", "prefork")
CELERY_WORKER_CONCURRENCY = env_int("WORKER_CONCURRENCY", os.cpu_count() or 1)

# --- i18n / time ----------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files ---------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if not DEBUG
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
# Serve straight from the apps' static folders in the embedded mode: no collectstatic needed.
WHITENOISE_USE_FINDERS = DEBUG
if DEBUG:
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns when it is missing

# --- Security (production values make `check --deploy` clean) -------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 1024 * 1024)

# --- Email (invitations) --------------------------------------------------------------------
EMAIL_BACKEND = env(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = env("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 587)
EMAIL_HOST_USER = env("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "PushPilot <no-reply@pushpilot.local>")
# Where the invitee accepts; `{token}` is replaced. Points at your front end in production.
INVITATION_ACCEPT_URL = env(
    "INVITATION_ACCEPT_URL", "http://127.0.0.1:8000/api/v1/invitations/{token}/accept"
)

# --- Product settings -----------------------------------------------------------------------
INVITATION_TTL_HOURS = env_int("INVITATION_TTL_HOURS", 72)
HEALTH_CHECK_TIMEOUT_SECONDS = float(env("HEALTH_CHECK_TIMEOUT_SECONDS", "2"))

# --- Firebase Cloud Messaging (HTTP v1) -----------------------------------------------------
FCM_BASE_URL = env("FCM_BASE_URL", "https://fcm.googleapis.com").rstrip("/")
FCM_TIMEOUT_SECONDS = float(env("FCM_TIMEOUT_SECONDS", "10"))
# Requests in flight per Firebase project in one process. FCM allows 1,000 concurrent topic
# fan-outs per project: keep worker processes x this below that.
FCM_MAX_IN_FLIGHT_PER_PROJECT = env_int("FCM_MAX_IN_FLIGHT_PER_PROJECT", 100)
# The Instance ID batch API (topic subscriptions of many tokens). Empty: derived when used,
# https://iid.googleapis.com with the real FCM, else FCM_BASE_URL (the fake serves both).
FCM_IID_BASE_URL = env("FCM_IID_BASE_URL", "").rstrip("/")
# New topic subscriptions per Firebase project per second, shared by every process through
# the cache. FCM allows about 3,000 in any rolling second; the budget is counted in fixed
# one-second windows, which can put twice this into one rolling second: half of FCM's.
FCM_SUBSCRIPTIONS_PER_SECOND = env_int("FCM_SUBSCRIPTIONS_PER_SECOND", 1500)
# A dry run asks FCM about each message of the next occurrence: at most this many.
DRY_RUN_MAX_MESSAGES = env_int("DRY_RUN_MAX_MESSAGES", 1000)
# Fernet keys (urlsafe base64, 32 bytes), comma-separated: the first encrypts, all decrypt.
# Empty in the embedded mode: a local key is derived from SECRET_KEY (and the log says so).
FIELD_ENCRYPTION_KEYS = env_list("FIELD_ENCRYPTION_KEYS", "")
if not FIELD_ENCRYPTION_KEYS and ENVIRONMENT != "local":
    raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS is required outside the local environment.")

# --- Sending engine -------------------------------------------------------------------------
# The dispatcher (`manage.py dispatch`) wakes at least every DISPATCH_INTERVAL seconds, and
# when the next delivery is due (but no more often than every DISPATCH_TICK). It claims
# deliveries up to DISPATCH_LOOKAHEAD before they are due — the worker holds each send until
# its time, so batches are larger and sends on time — at most DISPATCH_CLAIM_SIZE a round,
# fairly across workspaces, and publishes them as batches of DELIVERY_BATCH_SIZE (one broker
# message each). It stops claiming while DISPATCH_MAX_QUEUED claimed deliveries wait for a
# worker: about half a second of the workers' throughput keeps the queue short, so a new
# due delivery is not stuck behind it.
DISPATCH_INTERVAL_SECONDS = float(env("DISPATCH_INTERVAL", "1"))
DISPATCH_TICK_SECONDS = float(env("DISPATCH_TICK", "0.2"))
DISPATCH_LOOKAHEAD_SECONDS = float(env("DISPATCH_LOOKAHEAD", "0.5"))
DISPATCH_CLAIM_SIZE = env_int("DISPATCH_CLAIM_SIZE", 500)
DELIVERY_BATCH_SIZE = env_int("DELIVERY_BATCH_SIZE", 100)
DISPATCH_MAX_QUEUED = env_int("DISPATCH_MAX_QUEUED", 500)
# The engine audits a batch as one row per workspace listing what it did (README "Logs and
# audit"); at most this many entries per row, the rest only counted. The default holds a
# whole default batch (each delivery's outcome and its campaign's transitions).
AUDIT_BATCH_MAX_ENTRIES = env_int("AUDIT_BATCH_MAX_ENTRIES", 500)
# A worker holds a batch for this long and renews it while sending; a delivery whose lease
# ran out (worker killed or stopped) goes back to pending.
JOB_LEASE_SECONDS = env_int("JOB_LEASE_SECONDS", 60)
# How often a dispatcher returns deliveries whose lease ran out.
DISPATCH_REAP_INTERVAL_SECONDS = float(env("DISPATCH_REAP_INTERVAL", "5"))
# Worker starts of one delivery before it fails (retryable FCM errors, dying workers).
JOB_MAX_ATTEMPTS = env_int("JOB_MAX_ATTEMPTS", 5)
# A claimed delivery no worker has started by then (message lost, no worker running) goes
# back to pending and is claimed again; waiting costs no attempt.
JOB_QUEUE_TIMEOUT_SECONDS = env_int("JOB_QUEUE_TIMEOUT_SECONDS", 60)
# Recurring campaigns are planned this far ahead (always at least their next occurrence),
# at most PLAN_BATCH_SIZE occurrences per campaign and transaction; the dispatcher refills
# plans every PLAN_INTERVAL seconds.
PLAN_HORIZON_SECONDS = env_int("PLAN_HORIZON_SECONDS", 24 * 3600)
PLAN_BATCH_SIZE = env_int("PLAN_BATCH_SIZE", 100)
PLAN_INTERVAL_SECONDS = float(env("PLAN_INTERVAL", "60"))
# /readyz fails when no dispatcher has completed a round for this long.
SCHEDULER_STALE_SECONDS = env_int("SCHEDULER_STALE_SECONDS", 30)

# --- Devices --------------------------------------------------------------------------------
# The key of the HMAC that finds a device by its token and picks its experiment bucket. Set
# it once and keep it: a new key orphans every registered device and reshuffles buckets.
# Empty: derived from SECRET_KEY (which then must never change either).
DEVICE_TOKEN_HASH_KEY = env("DEVICE_TOKEN_HASH_KEY", "")
# Subscription changes wait this long for others to share their FCM calls; a sync's claim on
# its devices lasts DEVICE_SYNC_CLAIM_SECONDS (then a crashed sync's devices are taken over,
# and a device FCM refused for another reason is tried again); a sync FCM asked to back off
# without saying how long retries after DEVICE_SYNC_RETRY_SECONDS; the dispatcher re-queues
# waiting devices every DEVICE_SYNC_SWEEP_SECONDS.
DEVICE_SYNC_COALESCE_SECONDS = float(env("DEVICE_SYNC_COALESCE_SECONDS", "1"))
DEVICE_SYNC_CLAIM_SECONDS = env_int("DEVICE_SYNC_CLAIM_SECONDS", 300)
DEVICE_SYNC_RETRY_SECONDS = env_int("DEVICE_SYNC_RETRY_SECONDS", 60)
DEVICE_SYNC_SWEEP_SECONDS = float(env("DEVICE_SYNC_SWEEP_SECONDS", "60"))

# --- Webhooks -------------------------------------------------------------------------------
# One HTTP attempt waits this long (connect, each read and write); a worker holds an
# endpoint's line for WEBHOOK_LEASE_SECONDS (renewed before every attempt; a killed worker's
# endpoint is taken over when it runs out, so it must exceed the timeout).
WEBHOOK_TIMEOUT_SECONDS = float(env("WEBHOOK_TIMEOUT_SECONDS", "10"))
WEBHOOK_LEASE_SECONDS = float(env("WEBHOOK_LEASE_SECONDS", "60"))
# Seconds before each retry of a failed event (each ±10 % jitter; a longer Retry-After is
# honoured up to the longest step): 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h — 8 attempts
# over about 27.6 hours. An event whose last attempt fails disables its endpoint.
WEBHOOK_RETRY_SCHEDULE = [float(step) for step in env_list(
    "WEBHOOK_RETRY_SCHEDULE", "5,300,1800,7200,18000,36000,36000"
)]  # fmt: skip
# Rotation: the previous secret keeps signing (a second signature) this long.
WEBHOOK_SECRET_ROTATION_OVERLAP_SECONDS = env_int(
    "WEBHOOK_SECRET_ROTATION_OVERLAP_SECONDS", 24 * 3600
)
# SSRF guard: outside the local mode no request goes to a private, loopback, link-local,
# multicast, reserved, unspecified or CGNAT address (checked on the address connected to),
# and endpoint URLs must be https.
WEBHOOK_ALLOW_PRIVATE_ADDRESSES = env_bool("WEBHOOK_ALLOW_PRIVATE_ADDRESSES", DEBUG)
WEBHOOK_REQUIRE_HTTPS = env_bool("WEBHOOK_REQUIRE_HTTPS", not DEBUG)
# Static name -> address answers consulted before DNS ("name=ip,name=ip"), checked like DNS
# answers: split-horizon names, and tests (no DNS needed).
WEBHOOK_RESOLVE_OVERRIDES = dict(
    item.split("=", 1) for item in env_list("WEBHOOK_RESOLVE_OVERRIDES", "") if "=" in item
)
# The dispatcher re-queues endpoints with due events (lost tasks, killed workers, retries
# too far ahead for a countdown) this often; finished events and attempts older than
# WEBHOOK_RETENTION_DAYS are deleted (in bounded batches).
WEBHOOK_SWEEP_SECONDS = float(env("WEBHOOK_SWEEP_SECONDS", "5"))
WEBHOOK_RETENTION_DAYS = env_int("WEBHOOK_RETENTION_DAYS", 30)
# The delivery log keeps the first this-many bytes of each response body.
WEBHOOK_RESPONSE_HEAD_BYTES = env_int("WEBHOOK_RESPONSE_HEAD_BYTES", 1024)

# --- AI content generation ------------------------------------------------------------------
# "openai" talks to any OpenAI-compatible endpoint; "offline" is the deterministic embedded
# provider. Default: openai when a key is configured, offline otherwise.
AI_API_KEY = env("AI_API_KEY", "")
AI_PROVIDER = env("AI_PROVIDER", "openai" if AI_API_KEY else "offline")
AI_BASE_URL = env("AI_BASE_URL", "https://api.openai.com/v1")
AI_MODEL = env("AI_MODEL", "gpt-4o-mini")
AI_TIMEOUT_SECONDS = float(env("AI_TIMEOUT", "20"))
AI_MAX_ATTEMPTS = env_int("AI_MAX_ATTEMPTS", 3)
# Ask for `response_format: json_object`; turn off for servers that reject the parameter.
AI_JSON_MODE = env_bool("AI_JSON_MODE", True)

# --- Analytics ------------------------------------------------------------------------------
EVENTS_MAX_AGE_DAYS = env_int("EVENTS_MAX_AGE_DAYS", 30)  # older events are rejected
ANALYTICS_CACHE_SECONDS = env_int("ANALYTICS_CACHE_SECONDS", 30)  # dashboard responses
# Rollup buckets are written in shards while they are recent; the dispatcher folds the shards
# of buckets older than this back into one row (reads of history touch one row a bucket).
ROLLUP_COMPACT_AFTER_SECONDS = env_int("ROLLUP_COMPACT_AFTER_SECONDS", 2 * 3600)
ROLLUP_COMPACT_INTERVAL_SECONDS = float(env("ROLLUP_COMPACT_INTERVAL_SECONDS", "60"))
INGEST_KEY_CACHE_SECONDS = env_int(
    "INGEST_KEY_CACHE_SECONDS", 5
)  # key lookups (revocation delay with local caches)
# --- Retention (README "Retention") ---------------------------------------------------------
# Default windows in whole days; a workspace may set its own (GET|PUT /retention). A row is
# expired when its time key is before the start of today (UTC) minus the window. Events and
# notifications are kept at least EVENTS_MAX_AGE_DAYS + 2 days: ingestion accepts events that
# old and links them to notifications, so neither may already be gone.
RETENTION_EVENTS_DAYS = env_int("RETENTION_EVENTS_DAYS", 90)
RETENTION_NOTIFICATIONS_DAYS = env_int("RETENTION_NOTIFICATIONS_DAYS", 90)
RETENTION_AUDIT_DAYS = env_int("RETENTION_AUDIT_DAYS", 365)
# The dispatcher enqueues one bounded retention run this often; a run deletes at most
# RETENTION_MAX_BATCHES batches of RETENTION_BATCH_SIZE rows per table (each batch its own
# short transaction) and makes the partitions of the next PARTITION_DAYS_AHEAD days.
RETENTION_INTERVAL_SECONDS = float(env("RETENTION_INTERVAL_SECONDS", "3600"))
RETENTION_BATCH_SIZE = env_int("RETENTION_BATCH_SIZE", 1000)
RETENTION_MAX_BATCHES = env_int("RETENTION_MAX_BATCHES", 100)
# Two days: events may be a day ahead, and the hourly runs have a day to spare. Not more: every
# list page of a partitioned table plans the partitions from today onwards (~0.1 ms each).
PARTITION_DAYS_AHEAD = env_int("PARTITION_DAYS_AHEAD", 2)
# --- API keys -------------------------------------------------------------------------------
# How long a rotated API key's previous secret keeps working (then 401).
API_KEY_ROTATION_GRACE_SECONDS = env_int("API_KEY_ROTATION_GRACE_SECONDS", 24 * 3600)
# Optional bearer token for /metrics. Metrics from several processes (gunicorn workers,
# Celery, the dispatcher) are merged when they share PROMETHEUS_MULTIPROC_DIR.
METRICS_TOKEN = env("METRICS_TOKEN", "")
if env("PROMETHEUS_MULTIPROC_DIR", ""):
    # prometheus_client writes there from the first metric a module defines.
    Path(env("PROMETHEUS_MULTIPROC_DIR", "")).mkdir(parents=True, exist_ok=True)
# Further process groups' metrics directories that /metrics merges (apps/common/metrics.py).
METRICS_MERGE_DIRS = env_list("METRICS_MERGE_DIRS", "")

# --- Idempotency keys (apps/common/idempotency.py) -----------------------------------------
# How long a POST's Idempotency-Key answers retries with the first response; older records are
# swept by the dispatcher (and `manage.py sweep_idempotency_keys`), and the key is new again.
IDEMPOTENCY_KEY_TTL_SECONDS = env_int("IDEMPOTENCY_KEY_TTL_SECONDS", 24 * 3600)

# --- Error tracking -------------------------------------------------------------------------
SENTRY_DSN = env("SENTRY_DSN", "")
RELEASE = env("RELEASE", "pushpilot@0.1.0")
if SENTRY_DSN:
    from apps.common.sentry import init_sentry

    init_sentry(
        dsn=SENTRY_DSN,
        environment=ENVIRONMENT,
        release=RELEASE,
        traces_sample_rate=float(env("SENTRY_TRACES_SAMPLE_RATE", "0")),
    )

# --- Logging: JSON lines through structlog --------------------------------------------------
LOG_LEVEL = env("LOG_LEVEL", "INFO")
LOG_FORMAT = env("LOG_FORMAT", "json")  # json | console
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "structlog": {
            "()": "apps.common.logging.ProcessorFormatter",
            "format": LOG_FORMAT,
        }
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "structlog"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # The request log line replaces Django's own per-request warnings.
        "django.request": {"level": "ERROR", "propagate": True},
        "django.server": {"level": "ERROR", "propagate": True},
        "celery": {"level": "INFO", "propagate": True},
        # One line per outbound request is noise; our services log what matters.
        "httpx": {"level": "WARNING", "propagate": True},
        "httpcore": {"level": "WARNING", "propagate": True},
    },
}
