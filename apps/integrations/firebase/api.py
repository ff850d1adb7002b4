from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import status
from rest_framework.response import Response

from apps.common.errors import NotFound, ValidationFailed
from apps.common.transactions import OutsideRequestTransaction
from apps.integrations.firebase import services
from apps.integrations.firebase.errors import LegacyServerKeyUnsupported
from apps.integrations.firebase.selectors import get_config
from apps.integrations.firebase.serializers import (
    FirebaseConfigSerializer,
    FirebaseConfigWriteSerializer,
    FirebaseTestResultSerializer,
    FirebaseTestSerializer,
)
from apps.integrations.firebase.validation import MessageInvalid
from apps.workspaces.models import Role
from apps.workspaces.tenancy import WorkspaceScopedAPIView

CONNECT_EXAMPLE = OpenApiExample(
    "A service account",
    summary="The JSON file from the Firebase console (private key shortened here)",
    value={
        "project_id": "acme-mobile-prod",
        "service_account": {
            "type": "service_account",
            "project_id": "acme-mobile-prod",
            "private_key_id": "3f2b8c1d9e4a7b6c5d0e1f2a3b4c5d6e7f8a9b0c",
            "private_key": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC...\n"
            "-----END PRIVATE KEY-----\n",
            "client_email": "firebase-adminsdk-x1y2z@acme-mobile-prod.iam.gserviceaccount.com",
            "client_id": "104857600123456789012",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": "https://oauth2.googleapis.com/token",
        },
    },
    request_only=True,
)


class FirebaseConfigView(OutsideRequestTransaction, WorkspaceScopedAPIView):
    """The workspace's Firebase connection (admins only). The secret is write-only."""

    read_role = Role.ADMIN
    write_role = Role.ADMIN
    serializer_class = FirebaseConfigSerializer

    @extend_schema(
        summary="Get the Firebase connection",
        description="The Firebase project connected to the workspace: project id, the "
        "service account's client email, the key's fingerprint and the connection `status` "
        "(`untested`, `connected` or `error`, with `last_error` and `last_tested_at`). The "
        "service account itself is never returned. Admins and owners. No project connected: "
        "404.",
        responses=FirebaseConfigSerializer,
    )
    def get(self, request):
        config = get_config(self.workspace)
        if config is None:
            raise NotFound("No Firebase project is connected to this workspace.")
        return Response(FirebaseConfigSerializer(config).data)

    @extend_schema(
        summary="Connect a Firebase project",
        description="Connect (or replace) the workspace's Firebase project with a service "
        "account JSON (Firebase console > Project settings > Service accounts > Generate new "
        "private key); the file's object or its text is accepted. It is checked (fields, "
        "RSA key, project id), stored encrypted, and tried at once by obtaining a Google "
        "access token: the answer's `status` is `connected`, or `error` with the reason in "
        "`last_error` (still 200: fix the account and PUT again). Campaigns can be scheduled "
        "only while a project is connected.\n\n"
        "Admins and owners. A malformed service account: 400 VALIDATION_ERROR naming the "
        "field (the secret is never echoed). A legacy `server_key`: 400 "
        "LEGACY_SERVER_KEY_UNSUPPORTED — Google shut that API down in 2024.",
        request=FirebaseConfigWriteSerializer,
        responses=FirebaseConfigSerializer,
        examples=[CONNECT_EXAMPLE],
    )
    def put(self, request):
        if isinstance(request.data, dict) and "server_key" in request.data:
            raise LegacyServerKeyUnsupported()
        serializer = FirebaseConfigWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        config = services.save_config(
            workspace=self.workspace, actor=request.user, **serializer.validated_data
        )
        return Response(FirebaseConfigSerializer(config).data)

    @extend_schema(
        summary="Disconnect Firebase",
        description="Delete the workspace's Firebase credentials; scheduling campaigns then "
        "answers 409 FIREBASE_NOT_CONNECTED until a project is connected again. Admins and "
        "owners. 204 also when nothing was connected.",
        responses={204: None},
    )
    def delete(self, request):
        services.delete_config(workspace=self.workspace, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class FirebaseTestView(OutsideRequestTransaction, WorkspaceScopedAPIView):
    """Send "Firebase connected!" to a test topic (or only validate it with FCM)."""

    read_role = Role.ADMIN
    write_role = Role.ADMIN
    serializer_class = FirebaseTestSerializer

    @extend_schema(
        summary="Send a test notification",
        description='Send a notification (default: "PushPilot" / "Firebase '
        'connected!") to a topic (default `pushpilot-test`) through the connected project, '
        "or with `validate_only` only have FCM validate it. FCM's verdict is in the body — "
        "`ok` with the `message_id`, or `ok: false` with FCM's error code and message — and "
        "updates the connection's `status`.\n\n"
        "Admins and owners. No project connected: 409 FIREBASE_NOT_CONNECTED; a message FCM "
        "would refuse (topic name, sizes): 400 VALIDATION_ERROR.",
        request=FirebaseTestSerializer,
        responses=FirebaseTestResultSerializer,
        examples=[
            OpenApiExample(
                "Send to the test topic",
                value={"title": "PushPilot", "body": "Firebase connected!"},
                request_only=True,
            ),
            OpenApiExample(
                "Only validate",
                summary="FCM checks the message and the credentials; nothing is delivered",
                value={"topic": "news", "validate_only": True},
                request_only=True,
            ),
        ],
    )
    def post(self, request):
        serializer = FirebaseTestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            outcome = services.send_test(
                workspace=self.workspace, actor=request.user, **serializer.validated_data
            )
        except MessageInvalid as exc:
            raise ValidationFailed.on(exc.field, exc.message) from None
        return Response(outcome)
