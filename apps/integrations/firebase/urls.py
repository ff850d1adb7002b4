from django.urls import path

from apps.integrations.firebase import api

urlpatterns = [
    path("integrations/firebase", api.FirebaseConfigView.as_view(), name="firebase-config"),
    path("integrations/firebase/test", api.FirebaseTestView.as_view(), name="firebase-test"),
]
