from drf_spectacular.utils import (
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

    throttle_classes = [*api_settings.DEFAULT_THROTTLE_CLASSES, AIGenerateThrottle]
    serializer_class = GenerateSerializer

    @extend_schema(
        request=GenerateSerializer,
        responses={200: GenerationResultSerializer, 502: PROVIDER_ERROR},
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


@extend_schema_view(
    list=extend_schema(
        summary="AI generations of the workspace, newest first (audit and cost).",
        parameters=[
            OpenApiParameter("created_from", str, description="ISO 8601; at or after"),
            OpenApiParameter("created_to", str, description="ISO 8601; before"),
        ],
    ),
    retrieve=extend_schema(summary="One AI generation."),
)
class GenerationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, WorkspaceScopedViewSet):
    queryset = AIGeneration.objects.all()
    serializer_class = AIGenerationSerializer
    filterset_class = GenerationFilter
    lookup_url_kwarg = "generation_id"

    def refine_queryset(self, queryset):
        return queryset.order_by("-created_at")

    @extend_schema(
        summary="Save one variant of a generation as a template.",
        request=SaveVariantSerializer,
        responses={201: TemplateSerializer},
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
    list=extend_schema(summary="Templates of the workspace (search, tag, source, ordering)."),
    create=extend_schema(request=TemplateWriteSerializer, responses={201: TemplateSerializer}),
    retrieve=extend_schema(summary="One template."),
    partial_update=extend_schema(
        request=TemplateWriteSerializer(partial=True), responses=TemplateSerializer
    ),
    destroy=extend_schema(responses={204: None}),
)
class TemplateViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    WorkspaceScopedViewSet,
):
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
