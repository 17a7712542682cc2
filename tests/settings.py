"""Test settings: the real settings with a throwaway secret and plain static storage."""

import os
import tempfile

os.environ.setdefault("SECRET_KEY", "test-secret-key-" + "t" * 40)
os.environ.setdefault("OLLAMA_URL", "http://127.0.0.1:9")  # each test points it at its double

from config.settings import *  # noqa: E402,F403

# Plain storage: the manifest storage needs collectstatic (Channels pitfall 10).
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
MEDIA_ROOT = tempfile.mkdtemp(prefix="chat-test-media-")  # uploads never land in the project
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast, tests only
STREAM_FLUSH_MS = 20
CHECKPOINT_SECONDS = 0.2
# No background title request after each first answer: tests that count Ollama requests
# would race with it. tests/test_history*.py turn it on where they test it.
AUTO_TITLES = False
