"""Registration, tokens and profile changes."""

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import RefreshToken

from apps.accounts.errors import InvalidRefreshToken
from apps.accounts.models import SocialIdentity, User, normalize_email
from apps.accounts.oauth import Identity, OAuthTokenInvalid
from apps.ai.services import seed_example_templates
from apps.common import audit
from apps.common.errors import ValidationFailed
from apps.workspaces.services import create_workspace

EMAIL_TAKEN = "An account with this email already exists."


def default_workspace_name(user: User) -> str:
    owner = user.name.strip() or user.email.split("@")[0]
    return f"{owner}'s workspace"[:120]


def _create_account(*, email: str, password: str | None, name: str):
    """A user with their default workspace and owner membership. `password=None` (social
    sign-in) leaves an unusable password."""
    try:
        with transaction.atomic():
            user = User.objects.create_user(email=email, password=password, name=name)
    except IntegrityError:  # a concurrent registration won the race
        raise ValidationFailed.on("email", EMAIL_TAKEN) from None
    workspace = create_workspace(owner=user, name=default_workspace_name(user))
    seed_example_templates(workspace, actor=user)
    return user, workspace


@transaction.atomic
def register(*, email: str, password: str, name: str = ""):
    """Create the user, their default workspace and the owner membership, all or nothing."""
    email = normalize_email(email)
    candidate = User(email=email, name=name)
    try:
        validate_password(password, user=candidate)
    except DjangoValidationError as exc:
        raise ValidationFailed(details={"password": list(exc.messages)}) from None
    if User.objects.filter(email=email).exists():
        raise ValidationFailed.on("email", EMAIL_TAKEN)
    user, workspace = _create_account(email=email, password=password, name=name)
    audit.record("user.registered", actor=user, workspace=workspace, target=user)
    return user, workspace


@transaction.atomic
def sign_in_with_identity(identity: Identity, *, name: str = "") -> tuple[User, bool]:
    """Find the user behind a verified provider identity: by the provider's subject, else by
    the (verified) email — linking the identity — else create the account. Returns
    (user, created)."""
    linked = (
        SocialIdentity.objects.select_related("user")
        .filter(provider=identity.provider, subject=identity.subject)
        .first()
    )
    if linked is not None:
        user, created = linked.user, False
    else:
        email = normalize_email(identity.email)
        user = User.objects.filter(email=email).first()
        created = user is None
        if created:
            user, workspace = _create_account(
                email=email, password=None, name=(name or identity.name)[:150]
            )
            audit.record(
                "user.registered",
                actor=user,
                workspace=workspace,
                target=user,
                metadata={"provider": identity.provider},
            )
        SocialIdentity.objects.create(
            user=user, provider=identity.provider, subject=identity.subject, email=email
        )
        audit.record(
            "user.identity_linked",
            actor=user,
            target=user,
            metadata={"provider": identity.provider},
        )
    if not user.is_active:
        raise OAuthTokenInvalid("This account is disabled.")
    audit.record(
        "user.signed_in", actor=user, target=user, metadata={"provider": identity.provider}
    )
    return user, created


def issue_tokens(user: User) -> dict[str, str]:
    refresh = RefreshToken.for_user(user)
    return {"access": str(refresh.access_token), "refresh": str(refresh)}


@transaction.atomic
def logout(*, refresh_token: str) -> None:
    """Blacklist the refresh token: it can no longer be used or rotated."""
    try:
        token = RefreshToken(refresh_token)
        token.blacklist()
    except TokenError:
        raise InvalidRefreshToken() from None
    audit.record("user.logged_out", target_type="accounts.user", target_id=str(token["user_id"]))


@transaction.atomic
def update_profile(*, user: User, **changes) -> User:
    fields = [field for field in ("name",) if field in changes]
    for field in fields:
        setattr(user, field, changes[field])
    if fields:
        user.save(update_fields=[*fields, "updated_at"])
        audit.record("user.updated", actor=user, target=user, metadata={"fields": fields})
    return user
