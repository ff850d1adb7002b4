"""apps.common.filters.FilterBackend: a request that names no filter skips the FilterSet,
which is only right if an empty FilterSet changes nothing — checked for every one in use."""

import pytest
from django.urls import get_resolver

from apps.common.filters import FilterBackend

pytestmark = pytest.mark.django_db


def filtersets_in_use():
    found = {}

    def walk(patterns):
        for pattern in patterns:
            if hasattr(pattern, "url_patterns"):
                walk(pattern.url_patterns)
                continue
            view = getattr(pattern.callback, "cls", None)
            filterset_class = getattr(view, "filterset_class", None)
            if filterset_class is not None:
                found[filterset_class.__name__] = filterset_class

    walk(get_resolver().url_patterns)
    return found


def test_the_lists_use_it():
    from rest_framework.settings import api_settings

    assert [FilterBackend] == api_settings.DEFAULT_FILTER_BACKENDS
    assert {"NotificationFilter", "AuditLogFilter", "CampaignFilter"} <= set(filtersets_in_use())


@pytest.mark.parametrize("name", sorted(filtersets_in_use()))
@pytest.mark.parametrize("ordered", [False, True])
def test_skipping_answers_what_an_empty_filterset_answers(name, ordered):
    filterset_class = filtersets_in_use()[name]
    queryset = filterset_class._meta.model.objects.all()
    if ordered:
        queryset = queryset.order_by("created_at")
    filterset = filterset_class(data={}, queryset=queryset)
    assert filterset.is_valid(), filterset.errors
    skipped = FilterBackend.unfiltered(filterset_class, queryset)
    if skipped is not None:  # None: the backend runs the FilterSet
        assert str(skipped.query) == str(filterset.qs.query)


def test_a_filterset_that_changes_qs_without_saying_how_always_runs():
    import django_filters

    from apps.common.models import AuditLog

    class Reordering(django_filters.FilterSet):
        class Meta:
            model = AuditLog
            fields: list[str] = []

        @property
        def qs(self):
            return super().qs.order_by("id")

    assert FilterBackend.unfiltered(Reordering, AuditLog.objects.all()) is None


def test_a_named_filter_still_filters_and_refuses_bad_values(api, workspace):
    from apps.common import audit

    audit.record("x.one", workspace=workspace)
    audit.record("x.two", workspace=workspace)
    every = api.get("/api/v1/audit-logs").json()["results"]
    assert {"x.one", "x.two"} <= {row["action"] for row in every}
    assert [
        row["action"] for row in api.get("/api/v1/audit-logs?action=x.one").json()["results"]
    ] == ["x.one"]
    refused = api.get("/api/v1/audit-logs?from=yesterday")
    assert refused.status_code == 400 and "from" in refused.json()["error"]["details"]
