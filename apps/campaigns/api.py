"""Campaign endpoints: HTTP in and out only; every rule is in services/selectors."""

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.campaigns import recurrence, selectors, services
from apps.campaigns.filters import CampaignFilter
from apps.campaigns.models import Campaign, CampaignStatus
from apps.campaigns.serializers import (
    CampaignSerializer,
    CampaignWriteSerializer,
    DeliverySerializer,
    OccurrencesQuerySerializer,
    OccurrencesSerializer,
    ScheduleSerializer,
)
from apps.common.errors import ValidationFailed
from apps.common.tenancy import WorkspaceScopedViewSet
from apps.notifications import selectors as notification_selectors

# States in which a campaign has no future runs to show.
NO_FUTURE_RUNS = {CampaignStatus.COMPLETED, CampaignStatus.CANCELLED, CampaignStatus.FAILED}


@extend_schema_view(
    list=extend_schema(summary="List campaigns"),
    retrieve=extend_schema(summary="Get a campaign"),
)
class CampaignViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, WorkspaceScopedViewSet):
    """Campaigns of the workspace. Members read and write them."""

    queryset = Campaign.objects.all()
    serializer_class = CampaignSerializer
    filterset_class = CampaignFilter
    # `{campaign_id}` in every path that names a campaign (stats and notifications too).
    lookup_url_kwarg = "campaign_id"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def refine_queryset(self, queryset):
        return selectors.campaigns_for_listing(queryset)

    def _campaign_response(self, campaign: Campaign, status_code: int = status.HTTP_200_OK):
        fresh = selectors.get_campaign(workspace=self.workspace, campaign_id=campaign.pk)
        return Response(CampaignSerializer(fresh).data, status=status_code)

    @extend_schema(
        summary="Create a draft campaign",
        request=CampaignWriteSerializer,
        responses={201: CampaignSerializer},
    )
    def create(self, request):
        serializer = CampaignWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.service_kwargs()
        timezone_name = data.pop("timezone", None)
        campaign = services.create_campaign(
            workspace=self.workspace, actor=request.user, timezone_name=timezone_name, **data
        )
        return self._campaign_response(campaign, status.HTTP_201_CREATED)

    @extend_schema(
        summary="Change a campaign",
        description="Name and description change in any state; contents, target, delivery "
        "options and schedule only while draft (409 CAMPAIGN_LOCKED otherwise). `contents`, "
        "when given, replaces the list: items with an `id` keep it.",
        request=CampaignWriteSerializer(partial=True),
        responses=CampaignSerializer,
    )
    def partial_update(self, request, campaign_id=None):
        campaign = self.get_object()
        serializer = CampaignWriteSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        campaign = services.update_campaign(
            campaign=campaign, actor=request.user, **serializer.service_kwargs()
        )
        return self._campaign_response(campaign)

    @extend_schema(summary="Delete a campaign (not while scheduled or running)")
    def destroy(self, request, campaign_id=None):
        services.delete_campaign(campaign=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Schedule a draft",
        description="Checks, in order: the state (409 INVALID_TRANSITION), Firebase connected "
        "(409 FIREBASE_NOT_CONNECTED), at least one content and each content's FCM message, "
        "then the schedule (400 VALIDATION_ERROR). Creates the first job.",
        request=ScheduleSerializer,
        responses=CampaignSerializer,
    )
    @action(detail=True, methods=["post"])
    def schedule(self, request, campaign_id=None):
        campaign = self.get_object()
        serializer = ScheduleSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        kwargs = {
            "timezone_name": data.get("timezone"),
            "rrule": data.get("rrule"),
            "exclusion_dates": data.get("exclusion_dates"),
        }
        if "scheduled_at" in data:
            kwargs["scheduled_at"] = data["scheduled_at"]
        campaign = services.schedule_campaign(campaign=campaign, actor=request.user, **kwargs)
        return self._campaign_response(campaign)

    @extend_schema(
        summary="Take a scheduled campaign back to draft, to edit it",
        request=None,
        responses=CampaignSerializer,
    )
    @action(detail=True, methods=["post"])
    def unschedule(self, request, campaign_id=None):
        campaign = services.unschedule_campaign(campaign=self.get_object(), actor=request.user)
        return self._campaign_response(campaign)

    @extend_schema(
        summary="Cancel a draft or scheduled campaign (its pending jobs too)",
        request=None,
        responses=CampaignSerializer,
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, campaign_id=None):
        campaign = services.cancel_campaign(campaign=self.get_object(), actor=request.user)
        return self._campaign_response(campaign)

    @extend_schema(
        summary="Copy a campaign into a new draft",
        request=None,
        responses={201: CampaignSerializer},
    )
    @action(detail=True, methods=["post"])
    def duplicate(self, request, campaign_id=None):
        campaign = services.duplicate_campaign(campaign=self.get_object(), actor=request.user)
        return self._campaign_response(campaign, status.HTTP_201_CREATED)

    @extend_schema(
        summary="The next runs, in UTC and local time",
        parameters=[OpenApiParameter("count", int, description="How many (1..100, default 10).")],
        responses=OccurrencesSerializer,
    )
    @action(detail=True, methods=["get"], filterset_class=None, pagination_class=None)
    def occurrences(self, request, campaign_id=None):
        campaign = self.get_object()
        query = OccurrencesQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        occurrences = []
        if campaign.status not in NO_FUTURE_RUNS:
            try:
                schedule = selectors.schedule_of(campaign)
            except recurrence.RuleInvalid as exc:  # stored before a rule tightened
                raise ValidationFailed.on(exc.field, exc.message) from None
            if schedule is not None:
                occurrences = schedule.upcoming(timezone.now(), query.validated_data["count"])
        body = {
            "timezone": campaign.timezone,
            "rrule": campaign.rrule,
            "occurrences": [
                {"utc": item.utc, "local": item.local.isoformat()} for item in occurrences
            ],
        }
        return Response(OccurrencesSerializer(body).data)

    @extend_schema(
        summary="The campaign's deliveries (planned, running and done), latest run first",
        responses=DeliverySerializer(many=True),
    )
    @action(
        detail=True,
        methods=["get"],
        serializer_class=DeliverySerializer,
        filterset_class=None,
    )
    def jobs(self, request, campaign_id=None):
        campaign = self.get_object()
        page = self.paginate_queryset(notification_selectors.deliveries_of(campaign))
        return self.get_paginated_response(DeliverySerializer(page, many=True).data)
