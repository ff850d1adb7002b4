from drf_spectacular.utils import extend_schema
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


class FirebaseConfigView(OutsideRequestTransaction, WorkspaceScopedAPIView):
    """The workspace's Firebase connection (admins only). The secret is write-only."""

    read_role = Role.ADMIN
    write_role = Role.ADMIN
    serializer_class = FirebaseConfigSerializer

    @extend_schema(responses=FirebaseConfigSerializer)
    def get(self, request):
        config = get_config(self.workspace)
        if config is None:
            raise NotFound("No Firebase project is connected to this workspace.")
        return Response(FirebaseConfigSerializer(config).data)

    @extend_schema(request=FirebaseConfigWriteSerializer, responses=FirebaseConfigSerializer)
    def put(self, request):
        if isinstance(request.data, dict) and "server_key" in request.data:
            raise LegacyServerKeyUnsupported()
        serializer = FirebaseConfigWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        config = services.save_config(
            workspace=self.workspace, actor=request.user, **serializer.validated_data
        )
        return Response(FirebaseConfigSerializer(config).data)

    @extend_schema(responses={204: None})
    def delete(self, request):
        services.delete_config(workspace=self.workspace, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class FirebaseTestView(OutsideRequestTransaction, WorkspaceScopedAPIView):
    """Send "Firebase connected!" to a test topic (or only validate it with FCM)."""

    read_role = Role.ADMIN
    write_role = Role.ADMIN
    serializer_class = FirebaseTestSerializer

    @extend_schema(request=FirebaseTestSerializer, responses=FirebaseTestResultSerializer)
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
