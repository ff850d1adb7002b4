from apps.common.errors import ApplicationError, Conflict


class AIProviderError(ApplicationError):
    status_code = 502
    code = "AI_PROVIDER_ERROR"
    message = "The AI provider could not produce usable content."


class DuplicateTemplateName(Conflict):
    message = "A template with this name already exists in the workspace."
