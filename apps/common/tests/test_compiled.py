"""CompiledRows (apps/common/compiled.py) answers what its queryset answers — the same named
tuples, converted alike, in the same order — in one query, compiled once per connection and
number of ids, and never from an earlier call's answer. CompiledFirst: its flat values here,
its instances in test_active_membership. CompiledPage: its bounds here, its pages against the
queryset's in apps/notifications/tests/test_cursor_pages.py."""

import uuid

import pytest
from django.db import connection
from django.db.models import F
from django.db.models.sql.compiler import SQLCompiler
from django.test.utils import CaptureQueriesContext

from apps.common.compiled import CompiledFirst, CompiledPage, CompiledRows
from apps.workspaces.models import Workspace, WorkspaceMember

pytestmark = pytest.mark.django_db


def workspace_rows(ids):
    return (
        Workspace.objects.filter(pk__in=ids)
        .order_by("name")
        .values_list("id", "name", "created_at", "languages", named=True)
    )


@pytest.fixture
def compiled_rows():
    return CompiledRows(workspace_rows, Workspace._meta.pk)


@pytest.fixture
def workspaces(make_workspace):
    return [make_workspace(name=name) for name in ("Charlie", "Alpha", "Bravo")]


def test_same_rows_as_the_queryset(compiled_rows, workspaces):
    ids = [workspace.pk for workspace in workspaces]
    for some in (ids, ids[:1], ids[1:], [uuid.uuid4(), ids[0]], [uuid.uuid4()]):
        expected = list(workspace_rows(some))
        with CaptureQueriesContext(connection) as queries:
            found = compiled_rows(some)
        assert found == expected
        assert [type(row) for row in found] == [type(row) for row in expected]
        assert [row._fields for row in found] == [row._fields for row in expected]
        assert len(queries) == 1
    assert [row.name for row in compiled_rows(ids)] == ["Alpha", "Bravo", "Charlie"]
    assert compiled_rows(ids)[0].languages == ["en"]  # the JSON column's converter applied


def test_compiled_once_per_number_of_ids(compiled_rows, workspaces, monkeypatch):
    ids = [workspace.pk for workspace in workspaces]
    compiled = []
    as_sql = SQLCompiler.as_sql
    monkeypatch.setattr(
        SQLCompiler, "as_sql", lambda self, *a, **k: compiled.append(1) or as_sql(self, *a, **k)
    )
    for _ in range(3):
        compiled_rows(ids[:2])
        compiled_rows(ids[1:])
        compiled_rows(ids)
    assert len(compiled) == 2  # two ids, three ids


def test_never_an_earlier_answer(compiled_rows, workspaces):
    ids = [workspace.pk for workspace in workspaces]
    assert len(compiled_rows(ids)) == 3
    Workspace.objects.filter(pk=ids[0]).update(name="Zulu")
    assert [row.name for row in compiled_rows(ids)] == ["Alpha", "Bravo", "Zulu"]
    Workspace.objects.filter(pk=ids[1]).delete()
    assert [row.name for row in compiled_rows(ids)] == ["Bravo", "Zulu"]


def test_no_ids_no_query_and_long_lists_run_the_queryset(compiled_rows, workspaces):
    with CaptureQueriesContext(connection) as queries:
        assert compiled_rows([]) == []
    assert len(queries) == 0
    many = [uuid.uuid4() for _ in range(CompiledRows.MAX_IDS)] + [workspaces[0].pk]
    assert compiled_rows(many) == list(workspace_rows(many))


def test_refuses_what_it_cannot_compile(workspaces):
    ids = [workspace.pk for workspace in workspaces]
    instances = CompiledRows(lambda ids: Workspace.objects.filter(pk__in=ids), Workspace._meta.pk)
    with pytest.raises(TypeError, match="named=True"):
        instances(ids)
    unused = CompiledRows(
        lambda ids: Workspace.objects.values_list("id", named=True), Workspace._meta.pk
    )
    with pytest.raises(TypeError, match="not a SQL parameter"):
        unused(ids)


def test_a_compiled_first_value_is_what_first_answers(workspaces):
    def names_of(pk):
        return Workspace.objects.filter(pk=pk).values_list("name", flat=True)

    first_name = CompiledFirst(names_of, pk=Workspace._meta.pk)
    for workspace in workspaces:
        with CaptureQueriesContext(connection) as queries:
            found = first_name(pk=workspace.pk)
        assert found == names_of(workspace.pk).first() == workspace.name
        assert len(queries) == 1
    assert first_name(pk=uuid.uuid4()) is None
    Workspace.objects.filter(pk=workspaces[0].pk).update(name="Zulu")
    assert first_name(pk=workspaces[0].pk) == "Zulu"  # run again, not remembered


def members_of(workspace_id):
    return WorkspaceMember.objects.filter(workspace_id=workspace_id).annotate(
        workspace_name=F("workspace__name")
    )


def newest_first(queryset, key):
    queryset = queryset.order_by("-created_at", "-id")
    if key is not None:
        queryset = queryset.filter(created_at__lte=key[0]).exclude(id=key[1])
    return queryset


def test_a_compiled_page_reads_instances_with_their_annotations(workspaces):
    page = CompiledPage(members_of, workspace_id=Workspace._meta.pk)
    assert page.model is WorkspaceMember
    for workspace in workspaces:
        rows = page.rows(
            {"workspace_id": workspace.pk},
            None,
            key_fields=("created_at", "id"),
            shape=(10,),
            page=lambda queryset, key: newest_first(queryset, key)[:10],
        )
        expected = list(newest_first(members_of(workspace.pk), None)[:10])
        assert [(r.pk, r.role, r.workspace_name) for r in rows] == [
            (r.pk, r.role, r.workspace_name) for r in expected
        ]
        assert rows and all(r.workspace_name == workspace.name for r in rows)
        first = rows[0]
        after = page.rows(
            {"workspace_id": workspace.pk},
            (first.created_at, first.pk),
            key_fields=("created_at", "id"),
            shape=(10,),
            page=lambda queryset, key: newest_first(queryset, key)[:10],
        )
        assert first.pk not in {r.pk for r in after}


def test_a_compiled_page_keeps_a_bounded_number_of_shapes(workspaces, monkeypatch):
    page = CompiledPage(members_of, workspace_id=Workspace._meta.pk)
    page._per_connection._max_keys = 2
    compiled = []
    as_sql = SQLCompiler.as_sql
    monkeypatch.setattr(
        SQLCompiler, "as_sql", lambda self, *a, **k: compiled.append(1) or as_sql(self, *a, **k)
    )
    for limit in (1, 2, 1, 3, 1):  # 1 and 2 kept; 3 pushes 1 out; 1 again
        page.rows(
            {"workspace_id": workspaces[0].pk},
            None,
            key_fields=("created_at", "id"),
            shape=(limit,),
            page=lambda queryset, key, limit=limit: newest_first(queryset, key)[:limit],
        )
    assert len(compiled) == 4


def test_a_compiled_page_refuses_related_rows(workspaces):
    page = CompiledPage(
        lambda workspace_id: members_of(workspace_id).select_related("user"),
        workspace_id=Workspace._meta.pk,
    )
    with pytest.raises(TypeError, match="select_related"):
        page.rows(
            {"workspace_id": workspaces[0].pk},
            None,
            key_fields=("created_at", "id"),
            shape=(),
            page=lambda queryset, key: queryset[:5],
        )
