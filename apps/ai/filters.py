import django_filters

from apps.ai import selectors
from apps.ai.models import AIGeneration, GenerationStatus, Template, TemplateSource
from apps.common.filters import DateTimeFilter


class TemplateFilter(django_filters.FilterSet):
    search = django_filters.CharFilter(
        method="filter_search", help_text="Text in the name, title or subtitle."
    )
    tag = django_filters.CharFilter(method="filter_tag", help_text="Templates with this tag.")
    source = django_filters.ChoiceFilter(choices=TemplateSource.choices)
    ordering = django_filters.OrderingFilter(
        fields=(("name", "name"), ("created_at", "created_at"), ("updated_at", "updated_at")),
        help_text="name, created_at or updated_at; prefix with '-' for descending.",
    )

    class Meta:
        model = Template
        fields: list[str] = []

    def filter_search(self, queryset, name, value):
        return selectors.search_templates(queryset, value)

    def filter_tag(self, queryset, name, value):
        return selectors.with_tag(queryset, value)


class GenerationFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=GenerationStatus.choices)
    provider = django_filters.CharFilter()
    user = django_filters.UUIDFilter(field_name="user_id")
    created_from = DateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_to = DateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = AIGeneration
        fields: list[str] = []
