import django_filters

from apps.common.models import AuditLog


class AuditLogFilter(django_filters.FilterSet):
    actor = django_filters.UUIDFilter(field_name="actor_id")
    action = django_filters.CharFilter(field_name="action")
    target_type = django_filters.CharFilter(field_name="target_type")
    target_id = django_filters.CharFilter(field_name="target_id")
    # `from`/`to` are Python keywords; declared through the field names.
    created_from = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_to = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = AuditLog
        fields: list[str] = []

    def __init__(self, data=None, *args, **kwargs):
        if data is not None:
            data = data.copy()
            for public, internal in (("from", "created_from"), ("to", "created_to")):
                if public in data and internal not in data:
                    data[internal] = data[public]
        super().__init__(data, *args, **kwargs)
