"""Every write to workspaces, memberships and invitations, with its business rules."""

from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.accounts.models import normalize_email
from apps.campaigns import services as campaigns
from apps.common import audit
from apps.common.errors import NotFound, PermissionDenied, ValidationFailed
from apps.common.logging import get_logger
from apps.common.tokens import digest_of, issue_secret
from apps.devices import tasks as devices_tasks
from apps.workspaces.errors import AlreadyMember, InvitationExpired, InvitationUsed, LastOwner
from apps.workspaces.models import (
    Invitation,
    InvitationStatus,
    MemberStatus,
    Role,
    Workspace,
    WorkspaceMember,
)

logger = get_logger("pushpilot.workspaces")


# --- workspaces -------------------------------------------------------------------------------
@transaction.atomic
def create_workspace(*, owner, name: str, timezone_name: str = "UTC") -> Workspace:
    workspace = Workspace.objects.create(name=name, timezone=timezone_name, created_by=owner)
    WorkspaceMember.objects.create(workspace=workspace, user=owner, role=Role.OWNER)
    audit.record("workspace.created", actor=owner, workspace=workspace, target=workspace)
    return workspace


@transaction.atomic
def update_workspace(*, workspace: Workspace, actor, **changes) -> Workspace:
    _check_languages(workspace, changes)
    fields = [
        field
        for field in ("name", "timezone", "languages", "default_language")
        if field in changes and changes[field] != getattr(workspace, field)
    ]
    languages_changed = bool({"languages", "default_language"} & set(fields))
    for field in fields:
        setattr(workspace, field, changes[field])
    if fields:
        workspace.save(update_fields=[*fields, "updated_at"])
        audit.record(
            "workspace.updated",
            actor=actor,
            workspace=workspace,
            target=workspace,
            metadata={field: changes[field] for field in fields},
        )
    if languages_changed:  # devices move to the language topic that now fits them best
        devices_tasks.remap_languages.delay_on_commit(str(workspace.pk))
    return workspace


def _check_languages(workspace: Workspace, changes: dict) -> None:
    """The default language is one of the languages (added to them when it is new)."""
    if "languages" not in changes and "default_language" not in changes:
        return
    languages = list(changes.get("languages", workspace.languages))
    default = changes.get("default_language", workspace.default_language)
    if default not in languages:
        if "languages" in changes and "default_language" not in changes:
            raise ValidationFailed.on(
                "languages", f"The default language {default} must stay among the languages."
            )
        languages.append(default)
    changes["languages"], changes["default_language"] = languages, default


@transaction.atomic
def delete_workspace(*, workspace: Workspace, actor) -> None:
    """Soft delete; its campaigns stop in the same transaction (nothing more is sent), and
    its devices are erased right after (their tokens are personal data)."""
    if workspace.mark_deleted():
        campaigns.stop_workspace_campaigns(workspace=workspace, actor=actor)
        devices_tasks.erase_workspace.delay_on_commit(str(workspace.pk))
        audit.record("workspace.deleted", actor=actor, workspace=workspace, target=workspace)


# --- members ----------------------------------------------------------------------------------
def _lock_active_owners(workspace: Workspace) -> list[WorkspaceMember]:
    """Lock the owner rows so two concurrent demotions cannot both pass the last-owner check."""
    return list(
        WorkspaceMember.objects.select_for_update()
        .filter(workspace=workspace, role=Role.OWNER, status=MemberStatus.ACTIVE)
        .order_by("pk")
    )


def _check_may_manage(actor_membership: WorkspaceMember, target: WorkspaceMember, new_role):
    """Admins manage members and admins; only owners touch owners or make owners."""
    touches_owner = target.role == Role.OWNER or new_role == Role.OWNER
    if touches_owner and actor_membership.role != Role.OWNER:
        raise PermissionDenied("Only an owner can change an owner or grant ownership.")


def _keep_an_owner(target: WorkspaceMember, leaves_owner_role: bool) -> None:
    if target.role != Role.OWNER or not leaves_owner_role:
        return
    owners = _lock_active_owners(target.workspace)
    if all(owner.pk == target.pk for owner in owners):
        raise LastOwner()


@transaction.atomic
def change_member_role(*, actor_membership: WorkspaceMember, member: WorkspaceMember, role: str):
    if role == member.role:
        return member
    _check_may_manage(actor_membership, member, role)
    _keep_an_owner(member, leaves_owner_role=role != Role.OWNER)
    previous = member.role
    WorkspaceMember.objects.filter(pk=member.pk).update(role=role, updated_at=timezone.now())
    member.role = role
    audit.record(
        "member.role_changed",
        actor=actor_membership.user,
        workspace=member.workspace,
        target=member,
        metadata={"user_id": str(member.user_id), "from": previous, "to": role},
    )
    return member


@transaction.atomic
def remove_member(*, actor_membership: WorkspaceMember, member: WorkspaceMember) -> None:
    leaving_self = actor_membership.pk == member.pk
    if not leaving_self:
        if actor_membership.role == Role.MEMBER:
            raise PermissionDenied("Only admins and owners can remove other members.")
        _check_may_manage(actor_membership, member, None)
    _keep_an_owner(member, leaves_owner_role=True)
    updated = WorkspaceMember.objects.filter(pk=member.pk, status=MemberStatus.ACTIVE).update(
        status=MemberStatus.REMOVED, updated_at=timezone.now()
    )
    if updated:
        audit.record(
            "member.left" if leaving_self else "member.removed",
            actor=actor_membership.user,
            workspace=member.workspace,
            target=member,
            metadata={"user_id": str(member.user_id), "role": member.role},
        )


# --- invitations ------------------------------------------------------------------------------
@transaction.atomic
def invite(*, actor_membership: WorkspaceMember, email: str, role: str) -> tuple[Invitation, str]:
    """Create an invitation and return it with the raw token (shown once, never stored)."""
    if role == Role.OWNER and actor_membership.role != Role.OWNER:
        raise PermissionDenied("Only an owner can invite another owner.")
    email = normalize_email(email)
    workspace = actor_membership.workspace
    if WorkspaceMember.objects.filter(
        workspace=workspace, user__email=email, status=MemberStatus.ACTIVE
    ).exists():
        raise AlreadyMember()
    issued = issue_secret()
    token = issued.value
    invitation = Invitation.objects.create(
        workspace=workspace,
        email=email,
        role=role,
        token_hash=issued.digest,
        expires_at=timezone.now() + timedelta(hours=settings.INVITATION_TTL_HOURS),
        invited_by=actor_membership.user,
    )
    audit.record(
        "invitation.created",
        actor=actor_membership.user,
        workspace=workspace,
        target=invitation,
        metadata={"email": email, "role": role},
    )
    from apps.workspaces.tasks import send_invitation_email

    transaction.on_commit(lambda: send_invitation_email.delay(str(invitation.pk), token))
    return invitation, token


def send_invitation_email(*, invitation_id: str, token: str) -> None:
    invitation = (
        Invitation.objects.select_related("workspace", "invited_by")
        .filter(pk=invitation_id, status=InvitationStatus.PENDING)
        .first()
    )
    if invitation is None or invitation.is_expired:
        logger.info("invitation_email_skipped", invitation_id=invitation_id)
        return
    inviter_user = invitation.invited_by
    inviter = (inviter_user.name or inviter_user.email) if inviter_user else "A teammate"
    send_mail(
        subject=f"{inviter} invited you to {invitation.workspace.name} on PushPilot",
        message=(
            f'{inviter} invited you to join the workspace "{invitation.workspace.name}" as '
            f"{invitation.role}.\n\nAccept the invitation (sign in or sign up with this email "
            f"address first): {settings.INVITATION_ACCEPT_URL.format(token=token)}\n\n"
            f"The invitation expires on {invitation.expires_at:%Y-%m-%d %H:%M} UTC."
        ),
        from_email=None,
        recipient_list=[invitation.email],
    )
    logger.info("invitation_email_sent", invitation_id=invitation_id)


@transaction.atomic
def accept_invitation(*, token: str, user) -> WorkspaceMember:
    invitation = (
        Invitation.objects.select_related("workspace")
        .filter(token_hash=digest_of(token), workspace__is_deleted=False)
        .first()
    )
    if invitation is None:
        raise NotFound("No such invitation.")
    if invitation.email != normalize_email(user.email):
        raise PermissionDenied("This invitation was sent to another email address.")
    if invitation.status != InvitationStatus.PENDING:
        raise InvitationUsed()
    if invitation.is_expired:
        raise InvitationExpired()
    # Single use: only one request can move it out of pending.
    claimed = Invitation.objects.filter(pk=invitation.pk, status=InvitationStatus.PENDING).update(
        status=InvitationStatus.ACCEPTED,
        accepted_by=user,
        accepted_at=timezone.now(),
        updated_at=timezone.now(),
    )
    if not claimed:
        raise InvitationUsed()
    member = _join(invitation.workspace, user, invitation.role)
    audit.record(
        "invitation.accepted",
        actor=user,
        workspace=invitation.workspace,
        target=invitation,
        metadata={"role": invitation.role},
    )
    return member


def _join(workspace: Workspace, user, role: str) -> WorkspaceMember:
    existing = WorkspaceMember.objects.filter(workspace=workspace, user=user).first()
    if existing is not None:
        if existing.status == MemberStatus.ACTIVE:
            raise AlreadyMember()
        WorkspaceMember.objects.filter(pk=existing.pk).update(
            status=MemberStatus.ACTIVE, role=role, updated_at=timezone.now()
        )
        existing.refresh_from_db()
        return existing
    try:
        with transaction.atomic():
            return WorkspaceMember.objects.create(workspace=workspace, user=user, role=role)
    except IntegrityError:
        raise AlreadyMember() from None
