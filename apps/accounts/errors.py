from apps.common.errors import ApplicationError, AuthenticationFailed


class InvalidRefreshToken(AuthenticationFailed):
    message = "The refresh token is invalid, expired or already used."


class OAuthTokenInvalid(AuthenticationFailed):
    message = "The identity token could not be verified."


class OAuthProviderNotConfigured(ApplicationError):
    code = "OAUTH_PROVIDER_NOT_CONFIGURED"
    message = "Sign-in with this provider is not enabled on this server."
