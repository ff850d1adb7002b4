from django.urls import path

from apps.ai import api

generations = api.GenerationViewSet.as_view({"get": "list"})
generation = api.GenerationViewSet.as_view({"get": "retrieve"})
save_template = api.GenerationViewSet.as_view({"post": "save_template"})
templates = api.TemplateViewSet.as_view({"get": "list", "post": "create"})
template = api.TemplateViewSet.as_view(
    {"get": "retrieve", "patch": "partial_update", "delete": "destroy"}
)

urlpatterns = [
    path("ai/generate", api.GenerateView.as_view(), name="ai-generate"),
    path("ai/translate", api.TranslateView.as_view(), name="ai-translate"),
    path("ai/generations", generations, name="ai-generation-list"),
    path("ai/generations/<uuid:generation_id>", generation, name="ai-generation-detail"),
    path(
        "ai/generations/<uuid:generation_id>/save-template",
        save_template,
        name="ai-generation-save-template",
    ),
    path("templates", templates, name="template-list"),
    path("templates/<uuid:template_id>", template, name="template-detail"),
]
