"""Who acts. Services are called from views (with `request.user`, possibly anonymous), from
tasks and commands (with None); the rows they write name a real user or nobody."""


def user_or_none(actor):
    """The signed-in user behind `actor`, or None."""
    return actor if getattr(actor, "is_authenticated", False) else None
