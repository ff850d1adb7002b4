import django_filters

from apps.common.filters import DateTimeFilter
from apps.notifications.models import Notification, NotificationStatus


class NotificationFilter(django_filters.FilterSet):
    campaign = django_filters.UUIDFilter(field_name="campaign_id")
    delivery = django_filters.UUIDFilter(field_name="delivery_id")
    job = django_filters.UUIDFilter(field_name="delivery_id", help_text="Deprecated: `delivery`.")
    status = django_filters.MultipleChoiceFilter(choices=NotificationStatus.choices)
    sent_from = DateTimeFilter(field_name="sent_at", lookup_expr="gte")
    sent_to = DateTimeFilter(field_name="sent_at", lookup_expr="lt")

    class Meta:
        model = Notification
        fields: list[str] = []
