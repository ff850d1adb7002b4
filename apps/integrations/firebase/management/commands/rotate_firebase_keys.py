from django.core.management.base import BaseCommand

from apps.integrations.firebase.services import rotate_encryption


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored Firebase service account with the newest key in "
        "FIELD_ENCRYPTION_KEYS. Put the new key first, keep the old ones until this has run."
    )

    def handle(self, *args, **options):
        rotated, current = rotate_encryption()
        self.stdout.write(
            f"Rotated {rotated} credential(s); {current} already used the newest key."
        )
