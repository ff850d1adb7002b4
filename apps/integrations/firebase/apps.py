from django.apps import AppConfig


class FirebaseConfig(AppConfig):
    name = "apps.integrations.firebase"
    label = "firebase"
