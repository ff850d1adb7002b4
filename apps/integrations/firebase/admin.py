from django.contrib import admin

from apps.integrations.firebase.models import FirebaseConfig


@admin.register(FirebaseConfig)
class FirebaseConfigAdmin(admin.ModelAdmin):
    """Shows what identifies the connection; the encrypted service account is never shown."""

    list_display = ["project_id", "workspace", "client_email", "status", "last_tested_at"]
    list_filter = ["status"]
    search_fields = ["project_id", "client_email"]
    exclude = ["encrypted_credentials"]
    readonly_fields = ["project_id", "client_email", "key_fingerprint", "status",
                       "last_tested_at", "last_error"]  # fmt: skip

    def has_add_permission(self, request) -> bool:
        # A connection is made through the API, which validates and verifies the account.
        return False
