import django_filters
from django.db.models import Q

from apps.campaigns.models import Campaign, CampaignStatus
from apps.common.filters import DateTimeFilter


class CampaignFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(
        choices=CampaignStatus.choices, help_text="Repeat to match any of several states."
    )
    search = django_filters.CharFilter(
        method="filter_search", help_text="Case-insensitive match on name or description."
    )
    scheduled_from = DateTimeFilter(
        field_name="scheduled_at", lookup_expr="gte", help_text="scheduled_at at or after"
    )
    scheduled_to = DateTimeFilter(
        field_name="scheduled_at", lookup_expr="lt", help_text="scheduled_at before"
    )
    ordering = django_filters.OrderingFilter(
        fields=(
            ("created_at", "created_at"),
            ("updated_at", "updated_at"),
            ("name", "name"),
            ("status", "status"),
            ("scheduled_at", "scheduled_at"),
            ("next_run_at", "next_run_at"),
        ),
        help_text="One of the fields, '-' for descending; default -created_at.",
    )

    class Meta:
        model = Campaign
        fields: list[str] = []

    def filter_search(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(Q(name__icontains=value) | Q(description__icontains=value))

    @property
    def qs(self):
        return self.unfiltered(super().qs)

    @staticmethod
    def unfiltered(queryset):
        """A stable order for pagination whatever was asked (the default -created_at): ties
        broken by id. Also the whole answer to a request without filters (FilterBackend)."""
        ordering = list(queryset.query.order_by) or ["-created_at"]
        return queryset.order_by(*ordering, "-id")
