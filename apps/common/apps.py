from django.apps import AppConfig


class CommonConfig(AppConfig):
    name = "apps.common"
    label = "common"

    def ready(self):
        from apps.common import tracing  # noqa: F401  (connects the Celery signal handlers)
