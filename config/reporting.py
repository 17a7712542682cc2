"""Error reports (the DEBUG error page, error e-mails) without credentials.

Django hides settings whose *name* looks secret (KEY, TOKEN, PASS...), but not secrets
inside a URL: `OLLAMA_URLS=http://user:secret@gpu1:11434`, `DATABASE_URL`, `REDIS_URL`
and the `CACHES`/`CHANNEL_LAYERS` entries built from them would show in full.
"""

from django.views.debug import SafeExceptionReporterFilter

from ollama_layer.client import public_url


class ReporterFilter(SafeExceptionReporterFilter):
    def cleanse_setting(self, key, value):
        """Django's cleansing, then every URL-looking string without user, password,
        query or fragment (nested values come back through here)."""
        value = super().cleanse_setting(key, value)
        if isinstance(value, str) and "://" in value:
            return public_url(value)
        return value

    def get_traceback_frame_variables(self, request, tb_frame):
        """Each frame's local variables, with the same cleaning for URL strings."""
        return [
            (name, public_url(value) if isinstance(value, str) and "://" in value else value)
            for name, value in super().get_traceback_frame_variables(request, tb_frame)
        ]
