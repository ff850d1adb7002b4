from apps.common.errors import ApplicationError


class FirebaseNotConnected(ApplicationError):
    status_code = 409
    code = "FIREBASE_NOT_CONNECTED"
    message = (
        "Connect a Firebase project first (PUT /integrations/firebase); its credentials must "
        "have been accepted (status 'connected')."
    )


class LegacyServerKeyUnsupported(ApplicationError):
    code = "LEGACY_SERVER_KEY_UNSUPPORTED"
    message = (
        "Firebase server keys belong to the legacy FCM API, which Google shut down in 2024 and "
        "which authorises nothing on FCM HTTP v1. Upload a service-account JSON instead: in the "
        "Firebase console, Project settings > Service accounts > Generate new private key, and "
        "send it as `service_account` with your `project_id`."
    )
