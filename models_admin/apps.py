from django.apps import AppConfig


class ModelsAdminConfig(AppConfig):
    name = "models_admin"
    verbose_name = "Model administration"

    def ready(self) -> None:
        from models_admin import pulls
        from relay import lifecycle

        # SIGTERM: running pulls end `interrupted` (Ollama keeps what it downloaded).
        lifecycle.on_shutdown(pulls.shutdown)
