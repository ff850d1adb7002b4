from django.db import models

from apps.common.models import BaseModel


class ConnectionStatus(models.TextChoices):
    UNTESTED = "untested", "Untested"
    CONNECTED = "connected", "Connected"
    ERROR = "error", "Error"


class FirebaseConfig(BaseModel):
    """A workspace's Firebase project and the service account PushPilot sends with.

    The service-account JSON is stored only encrypted (`encrypted_credentials`); what may be
    shown — project, client email, key fingerprint — is kept beside it in clear.
    """

    workspace = models.OneToOneField(
        "workspaces.Workspace", on_delete=models.CASCADE, related_name="firebase_config"
    )
    project_id = models.CharField(max_length=100)
    client_email = models.EmailField(max_length=254)
    key_fingerprint = models.CharField(max_length=64)
    encrypted_credentials = models.TextField(editable=False)
    status = models.CharField(
        max_length=16, choices=ConnectionStatus.choices, default=ConnectionStatus.UNTESTED
    )
    last_tested_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")

    def __str__(self) -> str:
        return f"{self.project_id} ({self.client_email})"

    def __repr__(self) -> str:  # never the ciphertext either
        return f"<FirebaseConfig {self.project_id} {self.status}>"
