"""Settings for the Ollama chat, all read from the environment (see .env.example)."""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.client_ip import parse_networks
from config.env import env_bool, env_choice, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set unless DEBUG=true (see .env.example)")
    # Only for local development: sessions do not survive a restart with a new key,
    # which is acceptable on a laptop and never allowed in production (above).
    SECRET_KEY = "insecure-dev-key-change-me-" + "x" * 32

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    # daphne first so that `runserver` serves ASGI (websockets) too.
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "axes",  # log-in throttling: its tables of failed attempts (see "auth" below)
    "chat",
    "models_admin",
    "config.apps.SiteConfig",  # start-up: private files (config/private_files.py)
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "config.middleware.content_security_policy",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Accounts waiting for approval or deactivated may only read the pending page and log
    # out (chat/access.py); after the others, so that its refusals get their headers.
    "chat.access.accounts_on_hold",
    # Last, as axes asks: turns a refused log-in into the lockout page.
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
            ],
        },
    },
]

# --- database -------------------------------------------------------------------------

DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
try:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
except ValueError as exc:  # dj_database_url raises ValueError on unknown schemes
    raise ImproperlyConfigured(f"DATABASE_URL is not usable: {exc}") from None
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        # WAL lets page reads go on while a generation checkpoints its text;
        # IMMEDIATE transactions avoid "database is locked" on lock upgrades.
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
else:
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- channel layer and cache ----------------------------------------------------------

REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            # Pub/sub: one round trip per message and no shared per-process queue to
            # overflow; the list-based layer lost frames at 200 streams
            # (docs/benchmarks.md). Frames are live data: a socket that was not
            # listening catches up from the snapshot, so nothing needs storing. Ours
            # comes through a Redis restart (relay/redis_layer.py).
            "BACKEND": "relay.redis_layer.RedisPubSubChannelLayer",
            "CONFIG": {
                # redis-py 8 reads with a 5 s timeout by default, which would cut the
                # layer's long reads (channels_redis#422): wait as long as it takes.
                "hosts": [{"address": REDIS_URL, "socket_timeout": None}],
            },
        }
    }
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
else:
    # One process only: the in-memory layer does not cross processes (relay.layers: the
    # same, with its expiry sweep made cheap).
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "relay.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 1000}}
    }
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- auth -----------------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Bounded so that a crowd of sign-ups or log-ins leaves CPU for the chat (chat/hashers.py).
PASSWORD_HASHERS = [
    "chat.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
PASSWORD_HASH_CONCURRENCY = env_int(
    "PASSWORD_HASH_CONCURRENCY", max(1, len(os.sched_getaffinity(0)) - 1), minimum=1
)
LOGIN_URL = "chat:login"
LOGIN_REDIRECT_URL = "chat:home"
LOGOUT_REDIRECT_URL = "chat:login"

# open: anyone may sign up; approval: new accounts wait for an administrator; closed: none.
SIGNUP_MODE = env_choice("SIGNUP_MODE", "open", ("open", "approval", "closed"))

# Log-in throttling with django-axes, on every log-in form (ours and /admin/login/): after
# LOGIN_ATTEMPTS_LIMIT failures for one user name from one address, that pair is refused
# for LOGIN_COOLOFF_MINUTES. Keyed by the pair so that neither an attacker guessing one
# name (from elsewhere) nor one noisy address (everyone behind a NAT) locks others out.
LOGIN_ATTEMPTS_LIMIT = env_int("LOGIN_ATTEMPTS_LIMIT", 10, minimum=1)
LOGIN_COOLOFF_MINUTES = env_int("LOGIN_COOLOFF_MINUTES", 15, minimum=1)
# Proxies whose X-Forwarded-For is believed (addresses or networks). Empty: only the
# connection's own address counts; see config/client_ip.py and docs/deployment.md.
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES")
parse_networks(TRUSTED_PROXIES)  # fail at start-up on a typo
AUTHENTICATION_BACKENDS = [
    # First, so that a locked-out pair is refused before its password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = LOGIN_ATTEMPTS_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=LOGIN_COOLOFF_MINUTES)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# A refused attempt during the lockout does not start the wait again, so "try again in
# N minutes" on the lockout page holds for the user who retried once too early.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_CLIENT_IP_CALLABLE = "config.client_ip.client_ip"
AXES_LOCKOUT_CALLABLE = "chat.views.accounts.locked_out"
# Throttling needs only the failures; a row per successful log-in would grow forever and
# keep every user's address and browser.
AXES_DISABLE_ACCESS_LOG = True

# --- Ollama and chat limits -----------------------------------------------------------

OLLAMA_URL = env_str("OLLAMA_URL", "http://localhost:11434").rstrip("/")
# Several Ollama hosts, comma-separated; when set it replaces OLLAMA_URL. Each answer goes
# to a host that has the model, preferring one where it is loaded and least busy.
OLLAMA_URLS = [url.rstrip("/") for url in env_list("OLLAMA_URLS")]
OLLAMA_CONNECT_TIMEOUT = env_float("OLLAMA_CONNECT_TIMEOUT", 5.0, minimum=0.1)
DEFAULT_MODEL = env_str("DEFAULT_MODEL", "llama3.2")

MAX_MESSAGE_CHARS = env_int("MAX_MESSAGE_CHARS", 32_000, minimum=1)
MAX_FRAME_BYTES = env_int("MAX_FRAME_BYTES", 256 * 1024, minimum=1024)
MAX_CONCURRENT_ANSWERS = env_int("MAX_CONCURRENT_ANSWERS", 3, minimum=1)  # per user
MESSAGES_PER_MINUTE = env_int("MESSAGES_PER_MINUTE", 30, minimum=1)  # per user
MAX_IMAGE_BYTES = env_int("MAX_IMAGE_BYTES", 10 * 1024 * 1024, minimum=1024)
# Decoded size limit (all frames of an animation together): 50 MP holds a 50-megapixel
# phone photo. Checking one takes 3-4 bytes a pixel, twice while it is turned upright.
MAX_IMAGE_PIXELS = env_int("MAX_IMAGE_PIXELS", 50_000_000, minimum=1)
MAX_IMAGES_PER_MESSAGE = env_int("MAX_IMAGES_PER_MESSAGE", 4, minimum=1)
# Streaming: one frame per stream at most every STREAM_FLUSH_MS; text to the database at
# most every CHECKPOINT_SECONDS; an answer whose heartbeat is older than STALE_SECONDS
# belongs to a dead process and is marked interrupted.
STREAM_FLUSH_MS = env_int("STREAM_FLUSH_MS", 40, minimum=0)
CHECKPOINT_SECONDS = env_float("CHECKPOINT_SECONDS", 1.0, minimum=0.05)
STALE_SECONDS = env_float("STALE_SECONDS", 20.0, minimum=1.0)
# When every Ollama host answers 503 "server busy", an answer waits in line, retrying
# every QUEUE_RETRY_SECONDS, for at most QUEUE_TIMEOUT_SECONDS.
QUEUE_RETRY_SECONDS = env_float("QUEUE_RETRY_SECONDS", 2.0, minimum=0.05)
QUEUE_TIMEOUT_SECONDS = env_float("QUEUE_TIMEOUT_SECONDS", 300.0, minimum=0)

# --- history (chat/titles.py, chat/imports.py) -----------------------------------------
# After the first answer of a conversation its model writes a short title, in the
# background. Off: titles stay the start of the first message.
AUTO_TITLES = env_bool("AUTO_TITLES", True)
# Largest conversations file /import/ accepts, in bytes.
MAX_IMPORT_BYTES = env_int("MAX_IMPORT_BYTES", 20 * 1024 * 1024, minimum=1024)

# --- model administration (models_admin) ----------------------------------------------
# While a staff page is open, one poller per process reads /api/ps every
# MODELS_POLL_SECONDS and pushes only changes. A pull sends at most one progress frame
# per PULL_FRAME_MS and saves its progress at most every PULL_CHECKPOINT_SECONDS.
MODELS_POLL_SECONDS = env_float("MODELS_POLL_SECONDS", 2.0, minimum=0.05)
PULL_FRAME_MS = env_int("PULL_FRAME_MS", 250, minimum=0)
PULL_CHECKPOINT_SECONDS = env_float("PULL_CHECKPOINT_SECONDS", 1.0, minimum=0.05)

# --- static files, i18n, security -----------------------------------------------------

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / env_str("STATIC_ROOT", "staticfiles")  # an absolute path stays as is
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": env_str(
            "STATICFILES_STORAGE", "django.contrib.staticfiles.storage.StaticFilesStorage"
        ),
        # Public by nature (and maybe served by a web server of another account), unlike
        # the uploads below.
        "OPTIONS": {"file_permissions_mode": 0o644, "directory_permissions_mode": 0o755},
    },
}
MEDIA_ROOT = BASE_DIR / env_str("MEDIA_DIR", "media")
# Uploaded images are people's data: readable by this account only, whatever the umask
# (Django's default makes files 0644). MEDIA_ROOT itself is made 0700 by the first upload.
FILE_UPLOAD_PERMISSIONS = 0o600
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o700

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Set SECURE=true when served over HTTPS: secure cookies, HSTS and the HTTPS redirect.
# Off by default so that the two-command local start works on plain http://127.0.0.1.
SECURE = env_bool("SECURE", False)
SESSION_COOKIE_SECURE = SECURE
CSRF_COOKIE_SECURE = SECURE
SECURE_SSL_REDIRECT = SECURE and env_bool("SECURE_SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if SECURE else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0
if env_bool("BEHIND_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Error reports show settings: hide the credentials inside URLs too (config/reporting.py).
DEFAULT_EXCEPTION_REPORTER_FILTER = "config.reporting.ReporterFilter"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "daphne": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        # Failed log-ins and lockouts are warnings; every successful log-in is not news.
        "axes": {"level": "WARNING"},
    },
}
