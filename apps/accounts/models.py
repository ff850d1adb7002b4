from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.db.models.functions import Lower

from apps.common.models import BaseModel


def normalize_email(email: str) -> str:
    """One spelling per mailbox: emails are compared and stored lower-cased and trimmed."""
    return (email or "").strip().lower()


class UserManager(BaseUserManager):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **fields):
        if not email:
            raise ValueError("An email is required.")
        user = self.model(email=normalize_email(email), **fields)
        user.set_password(password)  # None gives an unusable password (social sign-in)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str, **fields):
        fields.update(is_staff=True, is_superuser=True)
        return self.create_user(email, password, **fields)

    def get_by_natural_key(self, email: str):
        return self.get(email=normalize_email(email))


class User(BaseModel, AbstractBaseUser, PermissionsMixin):
    """A person. The email is the login."""

    email = models.EmailField(max_length=254, unique=True)
    name = models.CharField(max_length=150, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        constraints = [models.UniqueConstraint(Lower("email"), name="user_email_ci_unique")]

    def __str__(self) -> str:
        return self.email


class SocialIdentity(BaseModel):
    """A Google or Apple account linked to a user, keyed by the provider's stable subject."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="identities")
    provider = models.CharField(max_length=16)
    subject = models.CharField(max_length=255)
    email = models.EmailField(max_length=254)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["provider", "subject"], name="identity_unique_subject")
        ]

    def __str__(self) -> str:
        return f"{self.provider}:{self.subject}"
