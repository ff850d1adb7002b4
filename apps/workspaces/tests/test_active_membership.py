"""The tenancy check's membership lookup (compiled once per connection, apps/common/
compiled.py) answers what the queryset's `.first()` answers, in one query, and never
from an earlier request's answer."""

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.common.compiled import CompiledFirst
from apps.workspaces.models import Workspace, WorkspaceMember
from apps.workspaces.selectors import _active_memberships, active_membership

pytestmark = pytest.mark.django_db


def field_values(instance):
    return {
        field.attname: getattr(instance, field.attname) for field in type(instance)._meta.fields
    }


def test_same_instances_as_the_queryset(workspace, owner, make_user, add_member):
    admin = make_user(email="admin@example.com")
    add_member(workspace, admin, "admin")
    for user in (owner, admin):
        expected = _active_memberships(workspace.pk, user.pk).first()
        with CaptureQueriesContext(connection) as queries:
            found = active_membership(user, str(workspace.pk))
            assert field_values(found) == field_values(expected)
            # The workspace came with it (select_related), every column converted alike.
            assert field_values(found.workspace) == field_values(expected.workspace)
            assert found.workspace.languages == expected.workspace.languages == ["en"]
        assert len(queries) == 1
        assert not found._state.adding and found._state.db == "default"
        assert isinstance(found.workspace, Workspace) and found.workspace_id == workspace.pk


def test_no_answer_outlives_its_query(workspace, make_user, add_member, make_workspace):
    user = make_user(email="gone@example.com")
    membership = add_member(workspace, user, "member")
    assert active_membership(user, workspace.pk).pk == membership.pk
    WorkspaceMember.objects.filter(pk=membership.pk).update(status="removed")
    assert active_membership(user, workspace.pk) is None
    WorkspaceMember.objects.filter(pk=membership.pk).update(status="active", role="admin")
    assert active_membership(user, workspace.pk).role == "admin"
    Workspace.objects.filter(pk=workspace.pk).update(is_deleted=True, deleted_at=timezone.now())
    assert active_membership(user, workspace.pk) is None
    other = make_workspace(name="Other")
    assert active_membership(user, other.pk) is None
    assert active_membership(user, uuid.uuid4()) is None
    assert active_membership(user, "not-a-uuid") is None


def test_refuses_what_it_cannot_compile(workspace):
    only_some = CompiledFirst(
        lambda workspace_id: WorkspaceMember.objects.filter(workspace_id=workspace_id).only("id"),
        workspace_id=Workspace._meta.pk,
    )
    with pytest.raises(TypeError, match="every column"):
        only_some(workspace_id=workspace.pk)
    unused = CompiledFirst(
        lambda workspace_id: WorkspaceMember.objects.all(), workspace_id=Workspace._meta.pk
    )
    with pytest.raises(TypeError, match="not a SQL parameter"):
        unused(workspace_id=workspace.pk)
