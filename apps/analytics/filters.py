import django_filters

from apps.analytics.models import AnalyticsEvent
from apps.common.filters import DateTimeFilter


class AnalyticsEventFilter(django_filters.FilterSet):
    type = django_filters.CharFilter(
        field_name="type", help_text="One event type: `opened`, `conversion:purchase`..."
    )
    campaign = django_filters.UUIDFilter(field_name="campaign_id")
    notification = django_filters.UUIDFilter(field_name="notification_id")
    # On occurred_at, the index's own column: a time range narrows the page's range scan.
    occurred_from = DateTimeFilter(field_name="occurred_at", lookup_expr="gte")
    occurred_to = DateTimeFilter(field_name="occurred_at", lookup_expr="lt")

    class Meta:
        model = AnalyticsEvent
        fields: list[str] = []
