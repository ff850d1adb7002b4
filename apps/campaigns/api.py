"""Campaign endpoints: HTTP in and out only; every rule is in services/selectors."""

from datetime import timedelta

from django.utils import timezone
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.campaigns import recurrence, selectors, services
from apps.campaigns.filters import CampaignFilter
from apps.campaigns.models import Campaign, CampaignStatus
from apps.campaigns.serializers import (
    CampaignDetailSerializer,
    CampaignSerializer,
    CampaignWriteSerializer,
    DeliveriesPreviewSerializer,
    DeliveriesQuerySerializer,
    DeliverySerializer,
    DryRunSerializer,
    OccurrencesQuerySerializer,
    OccurrencesSerializer,
    RejectSerializer,
    ScheduleSerializer,
)
from apps.common.compiled import CompiledPage
from apps.common.errors import NotFound, ValidationFailed
from apps.common.pagination import CursorPagination
from apps.common.representations import VersionedRepresentations
from apps.notifications import dry_run as dry_runs
from apps.notifications import selectors as notification_selectors
from apps.workspaces.models import Role, Workspace
from apps.workspaces.selectors import parse_uuid
from apps.workspaces.tenancy import WorkspaceScopedViewSet

# Request examples. Their times are far ahead so that they can be sent as they are.
CREATE_EXAMPLES = [
    OpenApiExample(
        "To a topic",
        summary="A draft for everyone subscribed to `news`; scheduled later with /schedule",
        value={
            "name": "Spring sale",
            "description": "Announce the spring sale to everyone.",
            "target": {"topic": "news"},
            "contents": [
                {
                    "title": "Spring is here 🌷",
                    "subtitle": "Everything is 20% off until Sunday.",
                    "image_url": "https://cdn.example.com/push/spring.png",
                    "data": {"screen": "sale"},
                    "link": "https://example.com/sale",
                    "analytics_label": "spring_sale",
                }
            ],
            "priority": "high",
            "ttl_seconds": 86400,
        },
        request_only=True,
    ),
    OpenApiExample(
        "To a condition on a schedule",
        summary="Weekly on Mondays at 09:00 Paris time, for 52 weeks (still a draft)",
        value={
            "name": "Weekly digest",
            "target": {"condition": "'digest' in topics && !('muted' in topics)"},
            "contents": [{"title": "Your week ahead", "subtitle": "Five things worth your time."}],
            "scheduled_at": "2035-03-05T09:00:00+01:00",
            "timezone": "Europe/Paris",
            "rrule": "FREQ=WEEKLY;BYDAY=MO;COUNT=52",
        },
        request_only=True,
    ),
]
SCHEDULE_EXAMPLES = [
    OpenApiExample(
        "Once",
        summary="One send at an instant (with an offset)",
        value={"scheduled_at": "2035-03-05T09:00:00+01:00"},
        request_only=True,
    ),
    OpenApiExample(
        "Recurring",
        summary="Mondays and Wednesdays at 09:00 Paris time, 10 runs, not on 14 March",
        value={
            "scheduled_at": "2035-03-05T09:00:00+01:00",
            "timezone": "Europe/Paris",
            "rrule": "FREQ=WEEKLY;BYDAY=MO,WE;COUNT=10",
            "exclusion_dates": ["2035-03-14"],
        },
        request_only=True,
    ),
    OpenApiExample(
        "As stored",
        summary="The schedule given when the campaign was created or changed",
        value={},
        request_only=True,
    ),
]

PREVIEW_DEFAULT_RANGE = timedelta(days=7)
PREVIEW_MAX_RANGE = timedelta(days=31)

# The list's campaigns, kept per row version: a page reads (id, row_version) pairs and
# serializes only the campaigns it has not shown as they are (README "Lists, per row
# version").
listed_campaigns = VersionedRepresentations(CampaignSerializer)

# A campaign's jobs: the campaign's check and the page in one statement, compiled once per
# connection and page shape.
_jobs_page = CompiledPage(
    notification_selectors.live_campaign_deliveries,
    workspace_id=Workspace._meta.pk,
    campaign_id=Campaign._meta.pk,
)

# States in which a campaign has no future runs to show.
NO_FUTURE_RUNS = {CampaignStatus.COMPLETED, CampaignStatus.CANCELLED, CampaignStatus.FAILED}


@extend_schema_view(
    list=extend_schema(
        summary="List campaigns",
        description="The workspace's campaigns, newest first unless `ordering` says "
        "otherwise, each with its contents, target, schedule and status. Filter by `status` "
        "(several allowed), `search` (name or description) and the first run's time "
        "(`scheduled_from`, `scheduled_to`). Members and above.",
    ),
    retrieve=extend_schema(
        summary="Get a campaign",
        description="One campaign: target, ordered contents, delivery options, schedule "
        "(`scheduled_at`, `timezone`, `rrule`, `exclusion_dates`), `next_run_at` / "
        "`last_run_at`, and its `status` with the `allowed_transitions` from it. Members "
        "and above.",
    ),
)
class CampaignViewSet(mixins.RetrieveModelMixin, WorkspaceScopedViewSet):
    """Campaigns of the workspace. Members read and write them."""

    api_key_scopes = {
        "GET": "campaigns:read",
        "POST": "campaigns:write",
        "PATCH": "campaigns:write",
        "DELETE": "campaigns:write",
        # An approval is an admin's decision (README "Send policies"), never a key's.
        "approve": None,
        "reject": None,
    }
    queryset = Campaign.objects.all()
    serializer_class = CampaignSerializer
    filterset_class = CampaignFilter
    cursor_field = "created_at"  # the cursor-paged actions (`jobs`) override it
    # `{campaign_id}` in every path that names a campaign (stats and notifications too).
    lookup_url_kwarg = "campaign_id"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def refine_queryset(self, queryset):
        return selectors.campaigns_for_listing(queryset)

    def list(self, request):
        listed = self.filter_queryset(self.get_queryset()).prefetch_related(None)
        page = self.paginate_queryset(listed.values_list("pk", "row_version"))
        return self.get_paginated_response(listed_campaigns.of(page, self.get_queryset()))

    def get_serializer_class(self):
        return CampaignSerializer if self.action == "list" else CampaignDetailSerializer

    def required_role(self) -> str:
        # Approving or rejecting a campaign over the approval threshold: admins and owners.
        return Role.ADMIN if self.action in ("approve", "reject") else super().required_role()

    def _campaign_response(self, campaign: Campaign, status_code: int = status.HTTP_200_OK):
        fresh = selectors.get_campaign(workspace=self.workspace, campaign_id=campaign.pk)
        return Response(CampaignDetailSerializer(fresh).data, status=status_code)

    @extend_schema(
        summary="Create a campaign",
        description="Create a campaign as a draft: a name, a target (exactly one FCM `topic` "
        "or `condition`), up to 20 ordered contents (title, subtitle sent as the body, "
        "optional image, data, link and analytics label), delivery options, and optionally "
        "its schedule (`scheduled_at`, `timezone` — default the workspace's — and an RFC "
        "5545 `rrule`). Nothing is sent until it is scheduled with /schedule. Each content is "
        "checked as FCM would check the message: a message FCM would refuse is a 400 "
        "VALIDATION_ERROR naming the content and field. Members and above.",
        request=CampaignWriteSerializer,
        responses={201: CampaignDetailSerializer},
        examples=CREATE_EXAMPLES,
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
        description="Change what is sent; fields not sent are kept. Name, description and "
        "the catch-up window change in any state; contents, target, delivery options and "
        "schedule only while the campaign is a draft (409 CAMPAIGN_LOCKED otherwise: "
        "/unschedule it first). `contents`, when given, replaces the list in that order: "
        "items with an `id` keep (and update) that content, the others are added. Members "
        "and above.",
        request=CampaignWriteSerializer(partial=True),
        responses=CampaignDetailSerializer,
        examples=[
            OpenApiExample(
                "Rename",
                summary="Allowed in any state",
                value={"name": "Spring sale — last days"},
                request_only=True,
            ),
            OpenApiExample(
                "Replace the contents",
                summary="A draft only: keep the first content (by id), add a second one",
                value={
                    "contents": [
                        {
                            "id": "7d9f3c2a-4b1e-4f6a-9c8d-2e5b7a1f0c3d",
                            "title": "Spring is here 🌷",
                            "subtitle": "Everything is 20% off until Sunday.",
                        },
                        {"title": "Last day of the sale", "subtitle": "Ends tonight."},
                    ]
                },
                request_only=True,
            ),
        ],
    )
    def partial_update(self, request, campaign_id=None):
        campaign = self.get_object()
        serializer = CampaignWriteSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        campaign = services.update_campaign(
            campaign=campaign, actor=request.user, **serializer.service_kwargs()
        )
        return self._campaign_response(campaign)

    @extend_schema(
        summary="Delete a campaign",
        description="Delete a draft, completed, cancelled or failed campaign: it leaves the "
        "lists and its id answers 404 from then on. A scheduled or running campaign cannot "
        "be deleted (409 CAMPAIGN_ACTIVE): cancel it first. Members and above.",
        responses={204: None},
    )
    def destroy(self, request, campaign_id=None):
        services.delete_campaign(campaign=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Schedule a campaign",
        description="Start sending a draft: once at `scheduled_at`, or on a recurring RFC "
        "5545 `rrule` (HOURLY at most) from `scheduled_at`, in `timezone` — wall-clock time, "
        "so 09:00 stays 09:00 local across DST changes; `exclusion_dates` skip local days. "
        'Fields not sent keep the values stored on the campaign; `rrule: ""` makes it a '
        "one-off. The campaign becomes `scheduled` and its first runs are planned; see them "
        "with /occurrences and /jobs.\n\n"
        "Members and above. Checked in this order: the state (not a draft: 409 "
        "INVALID_TRANSITION), a Firebase project connected (409 FIREBASE_NOT_CONNECTED), at "
        "least one content and each content's FCM message, then the schedule — a first run "
        "in the past, an invalid or unbounded rule (SECONDLY, MINUTELY, COUNT over 10,000...) "
        "or one with no future run is a 400 VALIDATION_ERROR naming the field — and the "
        "workspace's send policies: a plan that sends to a topic more often than its "
        "frequency cap is a 409 FREQUENCY_CAP_EXCEEDED naming the topic, the window, the "
        "counts and the occurrences; a campaign whose audience estimate is over the "
        "approval threshold, scheduled by a member, becomes `pending_approval` (with the "
        "schedule kept) until an admin approves or rejects it (an admin's own schedule "
        "needs no approval).",
        request=ScheduleSerializer,
        responses=CampaignDetailSerializer,
        examples=SCHEDULE_EXAMPLES,
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
        summary="Approve a campaign",
        description="Schedule a campaign that waits for approval (`pending_approval`: its "
        "audience estimate is over the workspace's `approval_threshold`) with the schedule "
        "given when it was submitted, checked again as /schedule checks it (a first run now "
        "in the past: 400; the frequency cap: 409 FREQUENCY_CAP_EXCEEDED). Records who "
        "approved and when (`approved_by`, `approved_at`); audited (`campaign.approved`). "
        "Admins and owners. Any other state: 409 INVALID_TRANSITION.",
        request=None,
        responses=CampaignDetailSerializer,
    )
    @action(detail=True, methods=["post"])
    def approve(self, request, campaign_id=None):
        campaign = services.approve_campaign(campaign=self.get_object(), actor=request.user)
        return self._campaign_response(campaign)

    @extend_schema(
        summary="Reject a campaign",
        description="Send a campaign that waits for approval back to draft, with a `reason` "
        "for its author (`rejection_reason`); audited (`campaign.rejected`). Admins and "
        "owners. Any other state: 409 INVALID_TRANSITION.",
        request=RejectSerializer,
        responses=CampaignDetailSerializer,
        examples=[
            OpenApiExample(
                "Too broad",
                value={"reason": "Target only the beta testers first."},
                request_only=True,
            )
        ],
    )
    @action(detail=True, methods=["post"])
    def reject(self, request, campaign_id=None):
        campaign = self.get_object()
        serializer = RejectSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        campaign = services.reject_campaign(
            campaign=campaign, actor=request.user, reason=serializer.validated_data["reason"]
        )
        return self._campaign_response(campaign)

    @extend_schema(
        summary="Unschedule a campaign",
        description="Take a scheduled campaign (or one waiting for approval) back to draft so "
        "that its contents, target or schedule can be edited; every planned run that has not "
        "started is withdrawn. "
        "Schedule it again when ready. Members and above. Any other state (a draft, a "
        "campaign running right now, a finished one): 409 INVALID_TRANSITION.",
        request=None,
        responses=CampaignDetailSerializer,
    )
    @action(detail=True, methods=["post"])
    def unschedule(self, request, campaign_id=None):
        campaign = services.unschedule_campaign(campaign=self.get_object(), actor=request.user)
        return self._campaign_response(campaign)

    @extend_schema(
        summary="Cancel a campaign",
        description="Stop a draft or scheduled campaign for good: every delivery not yet "
        "sent is cancelled in the same step, and the campaign becomes `cancelled` (final — "
        "/duplicate it to run it again). Members and above. A running, completed, cancelled "
        "or failed campaign: 409 INVALID_TRANSITION with the allowed transitions.",
        request=None,
        responses=CampaignDetailSerializer,
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, campaign_id=None):
        campaign = services.cancel_campaign(campaign=self.get_object(), actor=request.user)
        return self._campaign_response(campaign)

    @extend_schema(
        summary="Duplicate a campaign",
        description='Copy a campaign, in any state, into a new draft named "<name> '
        '(copy)": same target, contents, delivery options, time zone, rule and exclusion '
        "dates, but no start time (set it, then schedule) and no run history. The way to run "
        "a completed, cancelled or failed campaign again. Members and above.",
        request=None,
        responses={201: CampaignDetailSerializer},
    )
    @action(detail=True, methods=["post"])
    def duplicate(self, request, campaign_id=None):
        campaign = services.duplicate_campaign(campaign=self.get_object(), actor=request.user)
        return self._campaign_response(campaign, status.HTTP_201_CREATED)

    @extend_schema(
        summary="Preview a campaign's next runs",
        description="The next `count` (1 to 100, default 10) run times of the campaign's "
        "schedule from now, each in UTC and as local time with the zone's offset at that "
        "instant — to check a rule before or after scheduling it. Empty for a campaign with "
        "no schedule or one that is completed, cancelled or failed. Members and above.",
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
        summary="Preview a campaign's deliveries",
        description="Every delivery the campaign has or will have with its send time in "
        "[`from`, `to`) (default: the next 7 days; at most 31): the occurrence it belongs to, "
        "when it is sent in UTC and in its recipients' local time, which zones it is for "
        "(delivered by recipient time zone), its target condition and the audience estimate "
        "of that target — before anything is sent. Planned deliveries are listed as stored "
        "(what the engine will send); occurrences not planned yet are computed as the planner "
        "would plan them now (`status` `unplanned`). At most 500. Members and above.",
        parameters=[DeliveriesQuerySerializer],
        responses=DeliveriesPreviewSerializer,
    )
    @action(detail=True, methods=["get"], filterset_class=None, pagination_class=None)
    def deliveries(self, request, campaign_id=None):
        campaign = self.get_object()
        query = DeliveriesQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        now = timezone.now()
        start = query.validated_data.get("start") or now
        end = min(
            query.validated_data.get("to") or start + PREVIEW_DEFAULT_RANGE,
            start + PREVIEW_MAX_RANGE,
        )
        try:
            body = notification_selectors.preview_body(campaign, start=start, end=end, now=now)
        except recurrence.RuleInvalid as exc:  # stored before a rule tightened
            raise ValidationFailed.on(exc.field, exc.message) from None
        return Response(DeliveriesPreviewSerializer(body).data)

    @extend_schema(
        summary="Dry-run a campaign's next occurrence",
        description="Build every message of the campaign's next occurrence — each delivery "
        "(recipient zone, language, A/B variant) and each content it carries — exactly as the "
        "engine would, and have FCM validate each one (`validate_only`: nothing reaches a "
        "device). Nothing is recorded as sent. The next occurrence is the earliest with a "
        "delivery still waiting, else the schedule's next run (deliveries as the planner "
        "would make them now); a draft without a start time is checked as if sent now. "
        "Per delivery: its target, run time, `ok` or the first `error`, and each message's "
        "outcome. At most DRY_RUN_MAX_MESSAGES messages are checked. Members and above. "
        "No Firebase project: 409 FIREBASE_NOT_CONNECTED; no content: 400; a completed, "
        "cancelled or failed campaign: 409 CONFLICT.",
        request=None,
        responses=DryRunSerializer,
    )
    @action(detail=True, methods=["post"], url_path="dry-run")
    def dry_run(self, request, campaign_id=None):
        campaign = self.get_object()
        try:
            body = dry_runs.dry_run(campaign, actor=request.user, now=timezone.now())
        except recurrence.RuleInvalid as exc:  # stored before a rule tightened
            raise ValidationFailed.on(exc.field, exc.message) from None
        return Response(DryRunSerializer(body).data)

    @extend_schema(
        summary="List a campaign's deliveries",
        description="The campaign's deliveries — one send of one occurrence to its target — "
        "latest run first: planned (pending, queued), running and done (completed, failed, "
        "cancelled, skipped), with run and due times, attempts, claim/start/finish times and "
        "the last error. Paginated. Members and above.",
        responses=DeliverySerializer(many=True),
    )
    @action(
        detail=True,
        methods=["get"],
        serializer_class=DeliverySerializer,
        filterset_class=None,
        # Deliveries are keyed by their run time (immutable once planned), not created_at.
        pagination_class=CursorPagination,
        cursor_field="run_at",
    )
    def jobs(self, request, campaign_id=None):
        campaign_id = parse_uuid(campaign_id)
        if campaign_id is None:
            raise NotFound()
        page = self.paginator.compiled_page(
            request, self, _jobs_page, workspace_id=self.workspace.pk, campaign_id=campaign_id
        )
        if not page:  # a request with the deprecated `page`, none planned yet, or no campaign
            if selectors.live_campaign_id(self.workspace, campaign_id) is None:
                raise NotFound()
            if page is None:
                page = self.paginate_queryset(notification_selectors.deliveries_of(campaign_id))
        return self.get_paginated_response(DeliverySerializer(page, many=True).data)
