"""Who acts. Services are called from views (with `request.user`, possibly anonymous or an
API key's principal), from tasks and commands (with None); the rows they write name a real
user or nobody, and the audit trail names the key (`api_key_of`)."""

from django.contrib.auth.base_user import AbstractBaseUser


def user_or_none(actor):
    """The signed-in user behind `actor`, or None (an API key is not a user)."""
    if isinstance(actor, AbstractBaseUser) and actor.is_authenticated:
        return actor
    return None


def api_key_of(actor):
    """The id of the API key behind `actor` (a request made with `X-API-Key`), or None."""
    return getattr(actor, "api_key_id", None)
