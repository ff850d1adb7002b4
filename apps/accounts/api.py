from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView
from rest_framework_simplejwt import views as jwt_views

from apps.accounts import login_limits, oauth, services
from apps.accounts.serializers import (
    AppleSignInSerializer,
    GoogleSignInSerializer,
    ProfileUpdateSerializer,
    RefreshSerializer,
    RegisterResponseSerializer,
    RegisterSerializer,
    SignInResponseSerializer,
    TokenPairSerializer,
    UserSerializer,
)
from apps.workspaces.serializers import WorkspaceSerializer


class AnonymousAuthView:
    """Credential endpoints: open to anyone, throttled per client IP (scope `auth`)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "auth"


class RegisterView(AnonymousAuthView, APIView):
    @extend_schema(request=RegisterSerializer, responses={201: RegisterResponseSerializer})
    def post(self, request):
        serializer = RegisterSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user, workspace = services.register(**serializer.validated_data)
        body = {
            "user": UserSerializer(user).data,
            "workspace": WorkspaceSerializer(workspace).data,
            **services.issue_tokens(user),
        }
        return Response(body, status=status.HTTP_201_CREATED)


class TokenView(AnonymousAuthView, jwt_views.TokenObtainPairView):
    """Email + password -> access and refresh tokens. Throttled per client IP, and per
    account after repeated wrong passwords (apps/accounts/login_limits.py)."""

    def post(self, request, *args, **kwargs):
        email = request.data.get("email") if isinstance(request.data, dict) else None
        email = email if isinstance(email, str) else ""
        login_limits.ensure_allowed(email)
        try:
            response = super().post(request, *args, **kwargs)
        except AuthenticationFailed:
            login_limits.record_failure(email)
            raise
        login_limits.clear(email)
        return response


class TokenRefreshView(AnonymousAuthView, jwt_views.TokenRefreshView):
    """Rotates: the refresh token sent is blacklisted, a new one is returned."""

    @extend_schema(request=RefreshSerializer, responses={200: TokenPairSerializer})
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)


class LogoutView(AnonymousAuthView, APIView):
    @extend_schema(request=RefreshSerializer, responses={204: None})
    def post(self, request):
        serializer = RefreshSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.logout(refresh_token=serializer.validated_data["refresh"])
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses=UserSerializer)
    def get(self, request):
        return Response(UserSerializer(request.user).data)

    @extend_schema(request=ProfileUpdateSerializer, responses=UserSerializer)
    def patch(self, request):
        serializer = ProfileUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        user = services.update_profile(user=request.user, **serializer.validated_data)
        return Response(UserSerializer(user).data)


class GoogleSignInView(AnonymousAuthView, APIView):
    """Exchange a Google id_token for PushPilot tokens (creating the account if needed)."""

    @extend_schema(request=GoogleSignInSerializer, responses=SignInResponseSerializer)
    def post(self, request):
        serializer = GoogleSignInSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        identity = oauth.verify_google(serializer.validated_data["id_token"])
        return _signed_in(*services.sign_in_with_identity(identity))


class AppleSignInView(AnonymousAuthView, APIView):
    """Exchange an Apple id_token for PushPilot tokens (creating the account if needed)."""

    @extend_schema(request=AppleSignInSerializer, responses=SignInResponseSerializer)
    def post(self, request):
        serializer = AppleSignInSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        identity = oauth.verify_apple(serializer.validated_data["id_token"])
        user, created = services.sign_in_with_identity(
            identity, name=serializer.validated_data["name"]
        )
        return _signed_in(user, created)


def _signed_in(user, created: bool) -> Response:
    body = {"user": UserSerializer(user).data, "created": created, **services.issue_tokens(user)}
    return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)
