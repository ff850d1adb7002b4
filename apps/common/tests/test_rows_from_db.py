"""BaseModel.from_db: a row read whole, for a model no init signal listens to, is put in the
instance's __dict__ directly — and must be exactly the instance Model.__init__ makes."""

import pytest
from django.db import models
from django.db.models.signals import post_init

from apps.common.models import AuditLog
from apps.workspaces.models import WorkspaceMember

pytestmark = pytest.mark.django_db


def django_from_db(model, row):
    """The same row through Django's own Model.from_db (Model.__init__)."""
    names = [f.attname for f in model._meta.concrete_fields]
    values = [getattr(row, name) for name in names]
    return models.Model.from_db.__func__(model, "default", names, values)


def test_a_row_read_whole_is_the_instance_django_builds(workspace, owner):
    member = WorkspaceMember.objects.get(workspace=workspace, user=owner)
    reference = django_from_db(WorkspaceMember, member)
    read = {k: v for k, v in vars(member).items() if k != "_state"}
    assert read == {k: v for k, v in vars(reference).items() if k != "_state"}
    assert (member._state.adding, member._state.db) == (False, "default")
    assert member.workspace == workspace  # the foreign key loads as before
    member.role = "admin"
    member.save(update_fields=["role"])  # an update of an existing row, not an insert
    assert WorkspaceMember.objects.get(pk=member.pk).role == "admin"


def test_a_row_read_in_part_keeps_the_deferred_columns_deferred(workspace):
    entry = AuditLog.objects.create(workspace=workspace, action="test.row", target_type="t")
    partial = AuditLog.objects.only("id", "action").get(pk=entry.pk, created_at=entry.created_at)
    assert "target_type" not in vars(partial)
    assert partial.get_deferred_fields() >= {"target_type"}
    assert partial.target_type == "t"  # loaded on first access, as Django does


def test_a_model_with_an_init_receiver_is_built_by_django(workspace, owner):
    seen = []

    def receiver(sender, instance, **kwargs):
        seen.append(instance)

    post_init.connect(receiver, sender=WorkspaceMember)
    try:
        member = WorkspaceMember.objects.get(workspace=workspace, user=owner)
    finally:
        post_init.disconnect(receiver, sender=WorkspaceMember)
    assert seen == [member]
