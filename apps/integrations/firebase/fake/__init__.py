"""A faithful local stand-in for FCM HTTP v1 and Google's OAuth2 token endpoint.

Used by tests (start a ``FakeFCM`` per test or per session) and by ``make run``
(``python -m apps.integrations.firebase.fake``). It imports nothing from Django or the rest of
``apps``: it is the independent referee of our FCM client.
"""

from .accounts import make_demo_service_account
from .server import FAULT_KINDS, FakeFCM

__all__ = ["FAULT_KINDS", "FakeFCM", "make_demo_service_account"]
