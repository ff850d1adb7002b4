from django.urls import path

from apps.accounts import api

urlpatterns = [
    path("auth/register", api.RegisterView.as_view(), name="auth-register"),
    path("auth/token", api.TokenView.as_view(), name="auth-token"),
    path("auth/token/refresh", api.TokenRefreshView.as_view(), name="auth-token-refresh"),
    path("auth/logout", api.LogoutView.as_view(), name="auth-logout"),
    path("auth/oauth/google", api.GoogleSignInView.as_view(), name="auth-oauth-google"),
    path("auth/oauth/apple", api.AppleSignInView.as_view(), name="auth-oauth-apple"),
    path("me", api.MeView.as_view(), name="me"),
]
