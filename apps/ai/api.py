from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, status
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.throttling import UserRateThrottle

from apps.ai import services
from apps.ai.filters import GenerationFilter, TemplateFilter
from apps.ai.models import AIGeneration, Template
from apps.ai.serializers import (
    AIGenerationSerializer,
    GenerateSerializer,
    GenerationResultSerializer,
    SaveVariantSerializer,
    TemplateSerializer,
    TemplateWriteSerializer,
    TranslateSerializer,
    TranslationResultSerializer,
)
from apps.common.serializers import ErrorSerializer
from apps.common.transactions import OutsideRequestTransaction
from apps.workspaces.tenancy import WorkspaceScopedAPIView, WorkspaceScopedViewSet

PROVIDER_ERROR = OpenApiResponse(
    ErrorSerializer,
    description="AI_PROVIDER_ERROR: the provider failed or its reply stayed unusable after "
    "retries and one repair attempt (details: reason, attempts, generation_id, ...).",
)


class AIGenerateThrottle(UserRateThrottle):
    """Per user, across workspaces: the `ai` rate (THROTTLE_AI, default 60/min)."""

    scope = "ai"


class GenerateView(OutsideRequestTransaction, WorkspaceScopedAPIView):
    """Generate notification copy (title + subtitle variants) from a prompt and a tone.

    Outside the request transaction: a failed call's AIGeneration row must survive the 502,
    and nothing is held open while the provider thinks.
    """

    api_key_scopes = {"POST": "ai:write"}
    throttle_classes = [*api_settings.DEFAULT_THROTTLE_CLASSES, AIGenerateThrottle]
    serializer_class = GenerateSerializer

    @extend_schema(
        summary="Generate notification copy with AI",
        description="Write `n` (1 to 5) title + subtitle variants for a push notification "
        "from a prompt and a tone, within the title and subtitle length limits, in the "
        "prompt's language or the one given. Nothing is saved as content: use the variants "
        "in a campaign, or keep one with /ai/generations/{generation_id}/save-template. "
        "Every call, successful or not, is recorded in /ai/generations (with its latency "
        "and token usage). Without an AI provider configured on the server, copy is written "
        "offline and `notice` says so.\n\n"
        "Members and above. Throttled per user across workspaces (THROTTLE_AI, default "
        "60/min; 429 THROTTLED). The provider failing or replying unusably after retries: "
        "502 AI_PROVIDER_ERROR (details name the reason and the generation id).",
        request=GenerateSerializer,
        responses={200: GenerationResultSerializer, 502: PROVIDER_ERROR},
        examples=[
            OpenApiExample(
                "Three variants",
                value={
                    "prompt": "Spring sale: 20% off everything until Sunday",
                    "tone": "friendly",
                    "n": 3,
                    "language": "en",
                },
                request_only=True,
            ),
            OpenApiExample(
                "Short copy",
                summary="Tighter length limits, for small screens",
                value={
                    "prompt": "Your order has shipped and arrives tomorrow",
                    "tone": "informative",
                    "max_title": 30,
                    "max_subtitle": 80,
                },
                request_only=True,
            ),
        ],
    )
    def post(self, request):
        serializer = GenerateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        generation = services.generate_notification_content(
            workspace=self.workspace, user=request.user, **serializer.validated_data
        )
        body = {
            "id": generation.pk,
            "variants": generation.variants,
            "provider": generation.provider,
            "model": generation.model,
            "notice": services.offline_notice(generation),
            "latency_ms": generation.latency_ms,
            "usage": {
                "prompt_tokens": generation.prompt_tokens,
                "completion_tokens": generation.completion_tokens,
                "total_tokens": generation.total_tokens,
            },
        }
        return Response(GenerationResultSerializer(body).data)


class TranslateView(OutsideRequestTransaction, WorkspaceScopedAPIView):
    """Draft a translation of a title and subtitle (for a content's `translations`)."""

    api_key_scopes = {"POST": "ai:write"}
    throttle_classes = [*api_settings.DEFAULT_THROTTLE_CLASSES, AIGenerateThrottle]
    serializer_class = TranslateSerializer

    @extend_schema(
        summary="Translate notification copy with AI",
        description="Put a title and subtitle into another language (a BCP 47 tag) through "
        "the configured AI provider, within the content limits (200 / 1000 characters) and "
        "checked like generated copy (plain text, no HTML or Markdown; one repair attempt). "
        "Nothing is saved: put the result in a campaign content's `translations`. Recorded "
        "in /ai/generations (`task` translate). Without an AI provider the text comes back "
        "unchanged with `translated` false and a `notice` saying so.\n\nMembers and above. "
        "Throttled like /ai/generate (THROTTLE_AI); the provider failing: 502 "
        "AI_PROVIDER_ERROR.",
        request=TranslateSerializer,
        responses={200: TranslationResultSerializer, 502: PROVIDER_ERROR},
        examples=[
            OpenApiExample(
                "Into German",
                value={"title": "Good morning", "subtitle": "Coffee's on us today",
                       "language": "de"},
                request_only=True,
            )
        ],
    )  # fmt: skip
    def post(self, request):
        serializer = TranslateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        generation = services.translate_content(
            workspace=self.workspace, user=request.user, **serializer.validated_data
        )
        (variant,) = generation.variants
        body = {"id": generation.pk, "language": generation.language, **variant,
                "translated": services.translated(generation), "provider": generation.provider,
                "model": generation.model, "notice": services.offline_notice(generation)}  # fmt: skip
        return Response(TranslationResultSerializer(body).data)


@extend_schema_view(
    list=extend_schema(
        summary="List AI generations",
        description="Every AI generation of the workspace, newest first: prompt, tone, "
        "provider and model, status, variants, attempts, latency and token usage — for "
        "auditing and cost. Filter by `status`, `provider`, `user` and creation time. "
        "Members and above.",
        parameters=[
            OpenApiParameter("created_from", str, description="ISO 8601; at or after"),
            OpenApiParameter("created_to", str, description="ISO 8601; before"),
        ],
    ),
    retrieve=extend_schema(
        summary="Get an AI generation",
        description="One AI generation of the workspace with its variants, or its error "
        "code and message if it failed. Members and above.",
    ),
)
class GenerationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, WorkspaceScopedViewSet):
    api_key_scopes = {"GET": "ai:read", "save_template": "templates:write"}
    queryset = AIGeneration.objects.all()
    serializer_class = AIGenerationSerializer
    filterset_class = GenerationFilter
    lookup_url_kwarg = "generation_id"

    def refine_queryset(self, queryset):
        return queryset.order_by("-created_at")

    @extend_schema(
        summary="Save a generated variant as a template",
        description="Keep one variant (0-based `variant_index`) of a successful generation "
        "as a template of the workspace, with a name and optional image, data and tags; the "
        "template's `source` is `ai`. Members and above. A failed generation (no variants): "
        "409 CONFLICT; an index out of range: 400 VALIDATION_ERROR; a template name already "
        "used in the workspace: 409 CONFLICT.",
        request=SaveVariantSerializer,
        responses={201: TemplateSerializer},
        examples=[
            OpenApiExample(
                "Keep the second variant",
                value={"variant_index": 1, "name": "Spring sale (AI)", "tags": ["promotion"]},
                request_only=True,
            )
        ],
    )
    def save_template(self, request, generation_id):
        generation = self.get_object()  # another workspace's generation is a 404
        serializer = SaveVariantSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        template = services.save_variant_as_template(
            generation=generation, actor=request.user, **serializer.validated_data
        )
        return Response(TemplateSerializer(template).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    list=extend_schema(
        summary="List templates",
        description="The workspace's reusable notification copy: written by hand, saved "
        "from an AI generation, or the examples every new account starts with. Filter with "
        "`search` (name, title or subtitle), `tag` and `source`; sort with `ordering`. "
        "Members and above.",
    ),
    create=extend_schema(
        summary="Create a template",
        description="Save notification copy for reuse: a name unique in the workspace, a "
        "title and a subtitle, optionally an image URL, a data payload (string keys and "
        "values, at most 4 KB, no keys reserved by FCM) and tags (stored lower-case). "
        "Members and above. A name already used: 409 CONFLICT.",
        request=TemplateWriteSerializer,
        responses={201: TemplateSerializer},
        examples=[
            OpenApiExample(
                "A template",
                value={
                    "name": "Weekend sale",
                    "title": "This weekend only: 20% off",
                    "subtitle": "Our favourites are on sale until Sunday midnight.",
                    "image_url": "https://cdn.example.com/push/weekend-sale.png",
                    "data": {"screen": "sale"},
                    "tags": ["promotion", "sale"],
                },
                request_only=True,
            )
        ],
    ),
    retrieve=extend_schema(
        summary="Get a template",
        description="One template of the workspace. Members and above.",
    ),
    partial_update=extend_schema(
        summary="Change a template",
        description="Change any of a template's name, title, subtitle, image URL, data and "
        "tags; fields not sent are kept. Members and above. A name already used by another "
        "template: 409 CONFLICT.",
        request=TemplateWriteSerializer(partial=True),
        responses=TemplateSerializer,
    ),
    destroy=extend_schema(
        summary="Delete a template",
        description="Delete a template: it leaves the list and its id answers 404. "
        "Campaigns are not affected (their contents are their own). Members and above.",
        responses={204: None},
    ),
)
class TemplateViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    WorkspaceScopedViewSet,
):
    api_key_scopes = {
        "GET": "templates:read",
        "POST": "templates:write",
        "PATCH": "templates:write",
        "DELETE": "templates:write",
    }
    queryset = Template.objects.all()
    serializer_class = TemplateSerializer
    filterset_class = TemplateFilter
    lookup_url_kwarg = "template_id"

    def create(self, request):
        serializer = TemplateWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        template = services.create_template(
            workspace=self.workspace, actor=request.user, **serializer.validated_data
        )
        return Response(TemplateSerializer(template).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request, template_id):
        template = self.get_object()  # a foreign id is a 404 before the body is looked at
        serializer = TemplateWriteSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        template = services.update_template(
            template=template, actor=request.user, **serializer.validated_data
        )
        return Response(TemplateSerializer(template).data)

    def destroy(self, request, template_id):
        services.delete_template(template=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
