from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "apps.notifications"
    label = "notifications"

    def ready(self) -> None:
        from apps.common.ops import add_readiness_check
        from apps.notifications.health import check_scheduler

        add_readiness_check("scheduler", check_scheduler)
