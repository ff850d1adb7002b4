"""Query-string filters shared by every list: an ISO 8601 date-time filter that answers what
it cannot represent with a 400 naming the parameter, and the audit log's filters."""

from datetime import UTC, timedelta

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField
from django_filters.rest_framework import DjangoFilterBackend

from apps.common.audit import about_campaign
from apps.common.models import AuditLog

# The widest offsets in use on Earth (UTC-12:00 to UTC+14:00); PostgreSQL refuses beyond ±15:59.
MAX_UTC_OFFSET = timedelta(hours=14)


class DateTimeField(IsoDateTimeField):
    def to_python(self, value):
        parsed = super().to_python(value)
        if parsed is None:
            return None
        offset = parsed.utcoffset()
        if offset is not None and abs(offset) > MAX_UTC_OFFSET:
            raise forms.ValidationError("The UTC offset must be between -14:00 and +14:00.")
        try:
            parsed.astimezone(UTC)
        except OverflowError:
            raise forms.ValidationError(
                "This instant is out of range (years 1 to 9999 in UTC)."
            ) from None
        return parsed


class DateTimeFilter(django_filters.IsoDateTimeFilter):
    """ISO 8601 with an offset (or Z); a time that cannot be stored is a 400, not a 500."""

    field_class = DateTimeField


class FilterBackend(DjangoFilterBackend):
    """django-filter's backend (DEFAULT_FILTER_BACKENDS), without building the FilterSet and
    its form on a request that names none of its filters — most list reads. With no data
    every filter returns the queryset it is given (django-filter skips empty values), so the
    answer is that queryset, or the FilterSet's own `unfiltered(queryset)` when its `qs` adds
    something of its own (a FilterSet that changes `qs` without saying so always runs). A
    parameter that starts with a filter's name (widgets add suffixes such as `_min`) goes
    through the FilterSet, invalid values included."""

    def filter_queryset(self, request, queryset, view):
        filterset_class = self.get_filterset_class(view, queryset)
        if filterset_class is None:
            return queryset
        names = tuple(filterset_class.base_filters)
        if not any(param.startswith(names) for param in request.query_params):
            unfiltered = self.unfiltered(filterset_class, queryset)
            if unfiltered is not None:
                return unfiltered
        return super().filter_queryset(request, queryset, view)

    @staticmethod
    def unfiltered(filterset_class, queryset):
        """What `filterset_class` answers with no data, or None if only running it tells."""
        if hasattr(filterset_class, "unfiltered"):
            return filterset_class.unfiltered(queryset)
        plain = django_filters.FilterSet
        if filterset_class.qs is not plain.qs or (
            filterset_class.filter_queryset is not plain.filter_queryset
        ):
            return None
        return queryset


def add_aliases(filterset, aliases: dict[str, str]):
    """Also accept `name` for each `existing` filter of `filterset` (a Python keyword such as
    `from` cannot be declared as an attribute); an error names the parameter the client
    sent."""
    for name, existing in aliases.items():
        filterset.base_filters[name] = filterset.base_filters[existing]
    return filterset


class AuditLogFilter(django_filters.FilterSet):
    actor = django_filters.UUIDFilter(field_name="actor_id")
    actor_api_key = django_filters.UUIDFilter(field_name="actor_api_key_id")
    action = django_filters.CharFilter(field_name="action")
    target_type = django_filters.CharFilter(field_name="target_type")
    target_id = django_filters.CharFilter(field_name="target_id")
    created_from = DateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_to = DateTimeFilter(field_name="created_at", lookup_expr="lt")
    # A campaign's whole history, the engine's batch rows that list it included.
    campaign = django_filters.UUIDFilter(method="filter_campaign")

    class Meta:
        model = AuditLog
        fields: list[str] = []

    def filter_campaign(self, queryset, name, value):
        return queryset.filter(about_campaign(value))


add_aliases(AuditLogFilter, {"from": "created_from", "to": "created_to"})
