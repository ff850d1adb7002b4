import json
import os

import httpx
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.integrations.firebase.fake import make_demo_service_account


class Command(BaseCommand):
    help = (
        "Create a demo service account for the local fake FCM, register it with the running "
        "fake, and print the JSON body for PUT /api/v1/integrations/firebase."
    )

    def add_arguments(self, parser):
        parser.add_argument("--project", default="demo-project")
        parser.add_argument("--fake-url", default=_running_fake_url())

    def handle(self, *args, project: str, fake_url: str, **options):
        account = make_demo_service_account(project, token_uri=f"{fake_url}/token")
        try:
            httpx.post(f"{fake_url}/_fake/accounts", json=account, timeout=5).raise_for_status()
        except httpx.HTTPError as exc:
            raise CommandError(
                f"The fake FCM at {fake_url} is not reachable ({exc}); start `make run` first."
            ) from None
        self.stdout.write(json.dumps({"project_id": project, "service_account": account}, indent=2))


def _running_fake_url() -> str:
    """FAKE_FCM_URL, else the fake `make run` started (var/fake-fcm.url), else FAKE_FCM_PORT
    or 9099 on this machine."""
    if os.environ.get("FAKE_FCM_URL"):
        return os.environ["FAKE_FCM_URL"]
    started = settings.VAR_DIR / "fake-fcm.url"
    if started.exists():
        return started.read_text().strip()
    return f"http://127.0.0.1:{os.environ.get('FAKE_FCM_PORT', '9099')}"
