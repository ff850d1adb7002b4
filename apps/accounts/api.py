from drf_spectacular.utils import OpenApiExample, extend_schema
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
from apps.common.idempotency import IdempotentMixin
from apps.workspaces.serializers import WorkspaceSerializer

# Request examples (the same account throughout, so they can be tried in order).
EMAIL, PASSWORD = "ada@example.com", "correct horse battery staple"
REFRESH_EXAMPLE = [
    OpenApiExample(
        "A refresh token",
        summary="The refresh token from sign-up, sign-in or the last refresh",
        value={"refresh": "eyJhbGciOiJIUzI1NiJ9.eyJ0b2tlbl90eXBlIjoicmVmcmVzaCJ9.c2lnbmF0dXJl"},
        request_only=True,
    )
]


class AnonymousAuthView(IdempotentMixin):
    """Credential endpoints: open to anyone, throttled per client IP (scope `auth`)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "auth"


class RegisterView(AnonymousAuthView, APIView):
    @extend_schema(
        summary="Sign up",
        description="Create an account with an email and a password. The new account gets "
        "its own workspace (you are its owner, the time zone is UTC) with a few example "
        "templates, and is signed in at once: the answer carries an access and a refresh "
        "token. Send the workspace's `id` as `X-Workspace-ID` on workspace-scoped calls.\n\n"
        "Open to anyone; throttled per client IP (429 THROTTLED). An email already in use, "
        "or a password that is too short, too common, all digits or too close to the email, "
        "is a 400 VALIDATION_ERROR naming the field.",
        request=RegisterSerializer,
        responses={201: RegisterResponseSerializer},
        examples=[
            OpenApiExample(
                "Sign up",
                value={"email": EMAIL, "password": PASSWORD, "name": "Ada Lovelace"},
                request_only=True,
            )
        ],
    )
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

    @extend_schema(
        summary="Sign in with email and password",
        description="Exchange an email and a password for an access token (short-lived; "
        "send it as `Authorization: Bearer <access>`) and a refresh token (renews the access "
        "token at /auth/token/refresh).\n\n"
        "Open to anyone; throttled per client IP. Wrong credentials: 401 "
        "AUTHENTICATION_FAILED. After repeated wrong passwords for one account within a "
        "window, that account's sign-in answers 429 THROTTLED with `Retry-After` — from any "
        "address — until the window has passed; a successful sign-in resets the count.",
        examples=[
            OpenApiExample(
                "Sign in", value={"email": EMAIL, "password": PASSWORD}, request_only=True
            )
        ],
    )
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

    @extend_schema(
        summary="Renew the access token",
        description="Exchange a refresh token for a new access token and a new refresh "
        "token. Refresh tokens rotate: the one sent is blacklisted and cannot be used again, "
        "so keep the new one.\n\n"
        "Open to anyone holding a refresh token; throttled per client IP. An expired, "
        "invalid or already used refresh token: 401 AUTHENTICATION_FAILED.",
        request=RefreshSerializer,
        responses={200: TokenPairSerializer},
        examples=REFRESH_EXAMPLE,
    )
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)


class LogoutView(AnonymousAuthView, APIView):
    @extend_schema(
        summary="Sign out",
        description="Blacklist a refresh token, so that it can no longer renew access or be "
        "rotated; access tokens already issued stay valid until they expire (minutes).\n\n"
        "Open to anyone holding the refresh token (no access token needed); throttled per "
        "client IP. An invalid, expired or already used refresh token: 401 "
        "AUTHENTICATION_FAILED.",
        request=RefreshSerializer,
        responses={204: None},
        examples=REFRESH_EXAMPLE,
    )
    def post(self, request):
        serializer = RefreshSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.logout(refresh_token=serializer.validated_data["refresh"])
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        summary="Get your profile",
        description="The signed-in user: id, email, name and when the account was created. "
        "Any signed-in user; no workspace needed.",
        responses=UserSerializer,
    )
    def get(self, request):
        return Response(UserSerializer(request.user).data)

    @extend_schema(
        summary="Change your name",
        description="Update the signed-in user's display name (the email cannot be changed "
        "here). Any signed-in user; no workspace needed. Returns the updated profile.",
        request=ProfileUpdateSerializer,
        responses=UserSerializer,
    )
    def patch(self, request):
        serializer = ProfileUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        user = services.update_profile(user=request.user, **serializer.validated_data)
        return Response(UserSerializer(user).data)


class GoogleSignInView(AnonymousAuthView, APIView):
    """Exchange a Google id_token for PushPilot tokens (creating the account if needed)."""

    @extend_schema(
        summary="Sign in with Google",
        description="Exchange the `id_token` your app received from Google Sign-In for "
        "PushPilot tokens. PushPilot checks the token's signature against Google's published "
        "keys, its audience (one of the server's GOOGLE_CLIENT_IDS), issuer and expiry, and "
        "requires a verified email. It signs in the account already linked to this Google "
        "identity, else links the identity to the account with that email, else creates the "
        "account with its own workspace: `created` says which (201 when created, 200 "
        "otherwise).\n\n"
        "Open to anyone; throttled per client IP. A rejected token: 401 "
        "AUTHENTICATION_FAILED; Google sign-in not configured on this server: 400 "
        "OAUTH_PROVIDER_NOT_CONFIGURED.",
        request=GoogleSignInSerializer,
        responses={200: SignInResponseSerializer, 201: SignInResponseSerializer},
        examples=[
            OpenApiExample(
                "Google id token",
                summary="The id_token Google Sign-In gave the app",
                value={
                    "id_token": "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJhY2NvdW50cy5nb29nbGUuY29tIn0.c2lnbmF0dXJl"
                },
                request_only=True,
            )
        ],
    )
    def post(self, request):
        serializer = GoogleSignInSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        identity = oauth.verify_google(serializer.validated_data["id_token"])
        return _signed_in(*services.sign_in_with_identity(identity))


class AppleSignInView(AnonymousAuthView, APIView):
    """Exchange an Apple id_token for PushPilot tokens (creating the account if needed)."""

    @extend_schema(
        summary="Sign in with Apple",
        description="Exchange the `id_token` your app received from Sign in with Apple for "
        "PushPilot tokens. The token is verified against Apple's published keys (audience: "
        "one of the server's APPLE_CLIENT_IDS, issuer, expiry) and must carry a verified "
        "email. Apple gives the app the user's name only on the first sign-in: send it as "
        "`name` then, and it is used if the account is created. The account is found, linked "
        "or created as for Google; `created` says which (201 when created, 200 otherwise)."
        "\n\n"
        "Open to anyone; throttled per client IP. A rejected token: 401 "
        "AUTHENTICATION_FAILED; Apple sign-in not configured on this server: 400 "
        "OAUTH_PROVIDER_NOT_CONFIGURED.",
        request=AppleSignInSerializer,
        responses={200: SignInResponseSerializer, 201: SignInResponseSerializer},
        examples=[
            OpenApiExample(
                "First sign in",
                summary="Apple's id_token, and the name Apple gave the app this once",
                value={
                    "id_token": "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJhcHBsZWlkLmFwcGxlLmNvbSJ9.c2lnbmF0dXJl",
                    "name": "Ada Lovelace",
                },
                request_only=True,
            )
        ],
    )
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
