"""Start-up work that belongs to the site as a whole rather than to one app."""

from django.apps import AppConfig
from django.conf import settings
from django.db.backends.signals import connection_created


class SiteConfig(AppConfig):
    name = "config"
    label = "site_config"
    verbose_name = "Site"

    def ready(self):
        from config import private_files

        # Secrets and users' data are for the app's own account (config/private_files.py).
        connection_created.connect(private_files.on_connection_created)
        private_files.make_private(settings.MEDIA_ROOT)
