"""Static files storage for production (STATICFILES_STORAGE=config.storage.StaticStorage)."""

from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticStorage(CompressedManifestStaticFilesStorage):
    # The page scripts are ES modules importing each other by relative path: rewrite those
    # imports to the hashed names too, so every file can be cached forever.
    support_js_module_import_aggregation = True
