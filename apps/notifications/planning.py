"""The plan: which occurrences a campaign's schedule has, and which deliveries send each one.

A campaign's future is planned ahead, not chained on completion: `plan` creates the
occurrences from the last planned one up to PLAN_HORIZON_SECONDS ahead (always at least one
beyond it, so a weekly or yearly rule has its next run planned too), each with its
deliveries. The schedule call plans the first stretch in its own transaction; the
dispatcher loop's `refill` keeps every active recurring campaign planned ahead.

Idempotent by construction: an occurrence is unique per (campaign, instant) and a delivery
per (occurrence, slice), inserts ignore what exists, and each stretch commits with its
campaign row locked — so a planner that crashes anywhere, or two that race, leave exactly
one delivery per instant and slice. The schedule's final instant is marked `is_last`: the
plan is then complete.

Instants already further in the past than the campaign's catch-up window when they are
planned (the planner was down for longer than that) are not planned: they could only be
skipped.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, Max, OuterRef, Q
from django.utils import timezone

from apps.campaigns import experiments, policies, recurrence
from apps.campaigns import selectors as campaign_selectors
from apps.campaigns.models import (
    Campaign,
    CampaignContent,
    CampaignStatus,
    QuietHours,
    QuietHoursMode,
)
from apps.campaigns.services import messages as campaign_messages
from apps.common.logging import get_logger
from apps.devices import selectors as devices
from apps.devices import topics
from apps.integrations.firebase import validation as fcm_validation
from apps.notifications.models import (
    WAITING_STATUSES,
    Delivery,
    DeliveryStatus,
    Notification,
    NotificationStatus,
    Occurrence,
    fcm_target,
)

logger = get_logger("pushpilot.planning")

ACTIVE_CAMPAIGN_STATUSES = (CampaignStatus.SCHEDULED, CampaignStatus.RUNNING)
# From the earliest zone (UTC+14) to the latest (UTC-12): an occurrence's deliveries by
# recipient zone spread over this much around its own instant.
ZONE_SPREAD = timedelta(hours=26)
# Quiet hours move a delivery by at most a day.
QUIET_SPREAD = timedelta(hours=24)


@dataclass(frozen=True)
class PlannedDelivery:
    slice: str
    topic: str
    condition: str
    run_at: datetime
    language: str = ""
    variant: str = ""
    # Why it is planned as already skipped (quiet hours, the campaign skips such sends).
    skipped: str = ""

    @property
    def target(self) -> dict[str, str]:
        return fcm_target(self.topic, self.condition)

    def row(self, occurrence: Occurrence) -> Delivery:
        """The (unsaved) delivery of `occurrence` this plans."""
        return Delivery(
            workspace_id=occurrence.workspace_id,
            campaign_id=occurrence.campaign_id,
            occurrence=occurrence,
            slice=self.slice,
            topic=self.topic,
            condition=self.condition,
            run_at=self.run_at,
            due_at=self.run_at,
            language=self.language,
            variant=self.variant,
            status=DeliveryStatus.SKIPPED if self.skipped else DeliveryStatus.PENDING,
            last_error=self.skipped,
            finished_at=self.run_at if self.skipped else None,
        )


@dataclass(frozen=True)
class Slot:
    """One send time of an occurrence: for `zones` (empty: everyone, less `excluded`)."""

    name: str
    run_at: datetime
    zones: list[str] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    skipped: str = ""


def deliveries_for(
    campaign: Campaign,
    occurrence: Occurrence,
    *,
    zones: list[str],
    now: datetime,
    languages: list[str] = (),
) -> list[PlannedDelivery]:
    """How one occurrence is sent: once, to the campaign's whole target, at its instant —
    split by recipient zone and/or by language when the campaign asks for it, and moved or
    skipped where the workspace's quiet hours say (README "Send policies").

    By recipient time zone: once per zone with registered devices (`zones`) at the
    occurrence's wall-clock time there, to `target && <zone topic>`. Zones whose local time
    is the same instant share a delivery (as many as the target leaves room for in FCM's 5
    topics: `target && ('a' in topics || 'b' in topics)`). A zone's time is resolved like the
    campaign's own: a time inside a DST gap is sent the gap's length later, a time that
    happens twice at its first instant. A zone whose time is already further in the past
    than the catch-up window when the occurrence is planned gets no delivery of it.

    Quiet hours in the workspace's zone move (or skip) each delivery whose time falls inside
    them. In each recipient's zone: a zone delivery is judged in its zone; an occurrence sent
    at one instant keeps one delivery for everyone outside quiet hours, `target && !(<quiet
    zones>)`, and the zones inside get their own deliveries, moved or skipped (when more
    zones are quiet than the target leaves room for, every zone gets its own delivery).

    By language (`languages`: the workspace's, when the contents are translated): each
    delivery once per language, to `... && <language topic>`, carrying that language's copy
    (the contents' own text for the default language and untranslated contents).

    Without registered devices there are no zones or languages to split by: the occurrence
    is sent whole, at its own instant, in the contents' own text. An experiment's occurrence
    is split by variant instead (_experiment_deliveries).
    """
    quiet = policies.quiet_rule(campaign, campaign_selectors.send_policy_of(campaign))
    if campaign.experiment:
        return _experiment_deliveries(campaign, occurrence, quiet)
    localized = bool(languages)
    if campaign.recipient_time_zone and zones:
        slots = _zone_slots(campaign, occurrence, zones, now, localized=localized, quiet=quiet)
    else:
        slots = _instant_slots(campaign, occurrence, zones, localized=localized, quiet=quiet)
    planned = []
    for slot in slots:
        for language in languages or [""]:
            if not slot.zones and not slot.excluded and not language:
                planned.append(PlannedDelivery("", campaign.topic, campaign.condition,
                                               slot.run_at, skipped=slot.skipped))  # fmt: skip
                continue
            condition = topics.narrowed(
                topic=campaign.topic, condition=campaign.condition, zones=slot.zones,
                language=language,
            )  # fmt: skip
            if slot.excluded:
                condition += " && !" + _any_of([topics.zone_topic(z) for z in slot.excluded])
            label = "|".join(part for part in (slot.name, language and f"lang:{language}") if part)
            planned.append(
                PlannedDelivery(label, "", condition, slot.run_at, language, skipped=slot.skipped)
            )
    return planned


def _experiment_deliveries(campaign: Campaign, occurrence: Occurrence, quiet) -> list:
    """An A/B test (apps.campaigns.experiments): each content to its own bucket topics at the
    occurrence's time, then — after the test window — the chosen one to everyone else.
    Quiet hours judge the occurrence's instant in the workspace's zone (the variants are
    sent at one instant, whatever the mode) and move or skip the test as a whole."""
    config = campaign.experiment
    per = config["buckets_per_variant"]
    target = topics.narrowed(topic=campaign.topic, condition=campaign.condition)
    at, skipped = occurrence.at, ""
    ends = quiet.until(at) if quiet is not None else None
    if ends is not None:
        if quiet.action == QuietHours.SKIP:
            skipped = quiet.reason()
        else:
            at = ends
    planned, tested = [], []
    for variant in range(campaign.contents.count()):
        names = [topics.bucket_topic(b) for b in experiments.buckets_of(variant, per)]
        tested += names
        planned.append(
            PlannedDelivery(f"ab:{variant}", "", f"{target} && {_any_of(names)}",
                            at, variant=str(variant), skipped=skipped)
        )  # fmt: skip
    winner_at = at + timedelta(seconds=config["window_seconds"])
    planned.append(
        PlannedDelivery("ab:winner", "", f"{target} && !{_any_of(tested)}", winner_at,
                        variant="winner", skipped=skipped)
    )  # fmt: skip
    return planned


def _any_of(names: list[str]) -> str:
    return "(" + " || ".join(f"'{name}' in topics" for name in names) + ")"


def _zone_slots(campaign, occurrence, zones, now, *, localized: bool, quiet) -> list[Slot]:
    """The slots of a campaign sent in each recipient's zone (see deliveries_for)."""
    # The occurrence's wall-clock time as stored: already resolved in the campaign's zone, so
    # a time inside a DST gap there (rare) moves every zone's time by that gap too.
    wall = datetime.fromisoformat(occurrence.local).replace(tzinfo=None)
    window = campaign.catch_up_window_seconds
    too_late = now - timedelta(seconds=window) if window is not None else None
    instants = {}
    for zone in zones:
        instant = recurrence.to_utc(wall, recurrence.zone_for(zone))
        if too_late is None or instant >= too_late:
            instants[zone] = instant
    return _grouped(campaign, _quieted(instants, quiet), localized)


def _instant_slots(campaign, occurrence, zones, *, localized: bool, quiet) -> list[Slot]:
    """The slots of an occurrence sent at one instant (see deliveries_for)."""
    at = occurrence.at
    if quiet is None:
        return [Slot("", at)]
    room = campaign_messages.zone_room(campaign.topic, campaign.condition, localized=localized)
    if quiet.mode != QuietHoursMode.RECIPIENT or not zones or room < 1:
        # Judged in the workspace's zone: also for a target that names FCM's 5 topics
        # already, which leaves no room to split it by zone.
        ends = quiet.until(at)
        if ends is None:
            return [Slot("", at)]
        if quiet.action == QuietHours.SKIP:
            return [Slot("", at, skipped=quiet.reason())]
        return [Slot("", ends)]
    inside = [zone for zone in zones if quiet.until(at, zone) is not None]
    if not inside:
        return [Slot("", at)]
    quieted = _quieted({zone: at for zone in zones}, quiet)
    if len(inside) > room:
        return _grouped(campaign, quieted, localized)
    # Everyone outside quiet hours (installs not registered with PushPilot too) at the
    # instant; each quiet zone on its own.
    rest = Slot("", at, excluded=sorted(inside))
    return [rest, *_grouped(campaign, {z: quieted[z] for z in inside}, localized)]


def _quieted(instants: dict, quiet) -> dict:
    """zone -> (send instant, skip reason) under the quiet hours, judged in each zone (in
    recipient mode) or in the workspace's."""
    result = {}
    for zone, instant in instants.items():
        judged_in = zone if quiet is not None and quiet.mode == QuietHoursMode.RECIPIENT else None
        ends = quiet.until(instant, judged_in) if quiet is not None else None
        if ends is None:
            result[zone] = (instant, "")
        elif quiet.action == QuietHours.SKIP:
            result[zone] = (instant, quiet.reason(judged_in))
        else:
            result[zone] = (ends, "")
    return result


def _grouped(campaign, quieted: dict, localized: bool) -> list[Slot]:
    """Zones sharing a send instant (and outcome) share a slot, as many as FCM's 5 topics
    leave room for."""
    room = campaign_messages.zone_room(campaign.topic, campaign.condition, localized=localized)
    by_instant: dict[tuple, list[str]] = defaultdict(list)
    for zone, key in quieted.items():
        by_instant[key].append(zone)
    slots = []
    for (instant, skipped), group in sorted(by_instant.items()):
        group.sort()
        for start in range(0, len(group), room):
            chunk = group[start : start + room]
            slots.append(Slot(f"tz:{chunk[0]}", instant, chunk, skipped=skipped))
    return slots


def split_for(campaign: Campaign) -> tuple[list[str], list[str]]:
    """The zones and languages the campaign's occurrences are split by now: those of its
    workspace's registered devices, where the campaign asks for each (zones also where
    quiet hours are judged in each recipient's zone)."""
    quiet = policies.quiet_rule(campaign, campaign_selectors.send_policy_of(campaign))
    by_zone = campaign.recipient_time_zone or (
        quiet is not None and quiet.mode == QuietHoursMode.RECIPIENT and not campaign.experiment
    )
    zones = devices.zones_with_devices(campaign.workspace_id) if by_zone else []
    languages = []
    if campaign_messages.is_localized(
        [{"translations": t} for t in campaign.contents.values_list("translations", flat=True)]
    ) and devices.has_devices(campaign.workspace_id):
        languages = list(campaign.workspace.languages)
    return zones, languages


def plan(campaign: Campaign, *, now: datetime | None = None) -> list[Occurrence]:
    """Plan the campaign's next stretch (at most PLAN_BATCH_SIZE occurrences) in the caller's
    transaction, which must hold the campaign's row lock. Returns the new occurrences."""
    now = now or timezone.now()
    existing = Occurrence.objects.filter(campaign=campaign)
    if existing.filter(is_last=True).exists():
        return []
    schedule = campaign_selectors.schedule_of(campaign)
    if schedule is None:
        return []
    after = existing.aggregate(last=Max("at"))["last"]
    window = campaign.catch_up_window_seconds
    if after is not None and window is not None:
        after = max(after, now - timedelta(seconds=window))
    horizon = now + timedelta(seconds=settings.PLAN_HORIZON_SECONDS)

    instants = schedule.occurrences(after)
    stretch = []
    for occurrence in instants:
        stretch.append(occurrence)
        if occurrence.utc >= horizon or len(stretch) >= settings.PLAN_BATCH_SIZE:
            break
    complete = next(instants, None) is None
    if not stretch:
        # Nothing after what is planned: the latest planned instant was the last one.
        latest = existing.order_by("-at").first()
        if latest is not None:
            Occurrence.objects.filter(pk=latest.pk).update(is_last=True, updated_at=now)
        return []

    Occurrence.objects.bulk_create(
        [
            Occurrence(
                workspace_id=campaign.workspace_id,
                campaign=campaign,
                at=item.utc,
                local=item.local.isoformat(),
                is_last=complete and item is stretch[-1],
            )
            for item in stretch
        ],
        ignore_conflicts=True,  # planned already by a run that crashed or raced this one
    )
    occurrences = list(existing.filter(at__in=[item.utc for item in stretch]))
    planned_already = set(
        Delivery.objects.filter(occurrence__in=occurrences).values_list("occurrence_id", flat=True)
    )
    unplanned = [occurrence for occurrence in occurrences if occurrence.pk not in planned_already]
    zones, languages = split_for(campaign)
    Delivery.objects.bulk_create(
        [
            planned.row(occurrence)
            for occurrence in unplanned
            for planned in deliveries_for(
                campaign, occurrence, zones=zones, languages=languages, now=now
            )
        ],
        ignore_conflicts=True,
    )
    return occurrences


def cover_new_recipients(campaign: Campaign, *, now: datetime) -> int:
    """A campaign split by recipient zone or language, planned before devices of some zone
    registered (or before the workspace added a language): give its occurrences still to
    come a delivery for each (zone, language) they do not cover yet; what is covered keeps
    its delivery. The caller holds the campaign's row lock; returns how many were added."""
    zones, languages = split_for(campaign)
    if not campaign.recipient_time_zone:
        # Zones of quiet hours only: the occurrence is sent whole (less the quiet zones); a
        # zone that registered since is in the whole.
        zones = []
    if not zones and not languages:
        return 0
    added = 0
    # An occurrence's zones spread over about a day around its own instant.
    for occurrence in Occurrence.objects.filter(campaign=campaign, at__gte=now - ZONE_SPREAD):
        existing = list(Delivery.objects.filter(occurrence=occurrence))
        if not existing or any(delivery.slice == "" for delivery in existing):
            continue  # planned whole, at its own instant: it reaches everyone already
        covered = {
            (zone, delivery.language)
            for delivery in existing
            for zone in zones_of(delivery) or [""]
        }
        missing: dict[str, list[str]] = defaultdict(list)
        for language in languages or [""]:
            for zone in zones or [""]:
                if (zone, language) not in covered:
                    missing[language].append(zone)
        planned = [
            item
            for language, missing_zones in missing.items()
            for item in deliveries_for(
                campaign, occurrence, zones=[zone for zone in missing_zones if zone],
                languages=[language] if language else [], now=now,
            )
        ]  # fmt: skip
        Delivery.objects.bulk_create(
            [item.row(occurrence) for item in planned], ignore_conflicts=True
        )
        added += len(planned)
    return added


def zones_of(delivery) -> list[str]:
    """The recipient zones a delivery (stored or planned) is for; empty: every zone."""
    if not delivery.slice.startswith("tz:"):
        return []
    return [
        topics.zone_of(topic)
        for topic in fcm_validation.validate_condition(delivery.condition)
        if topics.topic_kind(topic) == "zone"
    ]


def refill(*, now: datetime | None = None, limit: int = 500) -> list:
    """Plan ahead for every active recurring campaign whose plan falls short of the horizon;
    each campaign in its own transaction. Returns the ids of the campaigns planned."""
    now = now or timezone.now()
    horizon = now + timedelta(seconds=settings.PLAN_HORIZON_SECONDS)
    planned_far_enough = Occurrence.objects.filter(campaign=OuterRef("pk")).filter(
        Q(is_last=True) | Q(at__gte=horizon)
    )
    short = (
        Campaign.objects.filter(status__in=ACTIVE_CAMPAIGN_STATUSES, workspace__is_deleted=False)
        .exclude(rrule="")
        .exclude(Exists(planned_far_enough))
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )
    refilled = []
    for campaign_id in list(short):
        with transaction.atomic():
            campaign = (
                Campaign.objects.select_for_update()
                .filter(pk=campaign_id, status__in=ACTIVE_CAMPAIGN_STATUSES)
                .first()
            )
            if campaign is not None and plan(campaign, now=now):
                refilled.append(campaign_id)
    if refilled:
        logger.info("plans_refilled", campaigns=len(refilled))
    _cover_new_recipients_everywhere(now, limit)
    return refilled


def _cover_new_recipients_everywhere(now: datetime, limit: int) -> None:
    split = Campaign.objects.filter(
        status__in=ACTIVE_CAMPAIGN_STATUSES, workspace__is_deleted=False
    ).filter(
        Q(recipient_time_zone=True)
        | Exists(CampaignContent.objects.filter(campaign=OuterRef("pk")).exclude(translations={}))
    )
    for campaign_id in list(split.order_by("pk").values_list("pk", flat=True)[:limit]):
        with transaction.atomic():
            campaign = (
                Campaign.objects.select_for_update()
                .filter(pk=campaign_id, status__in=ACTIVE_CAMPAIGN_STATUSES)
                .first()
            )
            if campaign is not None and cover_new_recipients(campaign, now=now):
                logger.info("recipients_added", campaign_id=str(campaign_id))


def drop_unstarted(campaign: Campaign, *, now: datetime | None = None) -> int:
    """Unschedule: the plan is withdrawn. Deliveries that never started are deleted with
    their occurrences; one that started before (a retry waiting) is cancelled, keeping what
    it sent. A queued delivery's worker then finds nothing to start. Returns how many were
    withdrawn. The caller holds the campaign's row lock."""
    now = now or timezone.now()
    waiting = Delivery.objects.filter(campaign=campaign, status__in=WAITING_STATUSES)
    deleted, _ = waiting.filter(attempts=0).delete()
    cancelled = _cancel(waiting, now, "The campaign was unscheduled.")
    Occurrence.objects.filter(campaign=campaign).exclude(
        Exists(Delivery.objects.filter(occurrence=OuterRef("pk")))
    ).delete()
    # A new schedule is a new plan: what remains of this one no longer ends it.
    Occurrence.objects.filter(campaign=campaign, is_last=True).update(is_last=False, updated_at=now)
    return deleted + cancelled


def cancel_unstarted(campaign: Campaign, *, now: datetime | None = None) -> int:
    """Cancel: every delivery that has not run is cancelled (kept, as history)."""
    now = now or timezone.now()
    waiting = Delivery.objects.filter(campaign=campaign, status__in=WAITING_STATUSES)
    return _cancel(waiting, now, "The campaign was cancelled.")


def _cancel(deliveries, now: datetime, reason: str) -> int:
    ids = list(deliveries.values_list("pk", flat=True))
    if not ids:
        return 0
    Notification.objects.filter(delivery_id__in=ids).exclude(
        status__in=(NotificationStatus.SENT, NotificationStatus.FAILED)
    ).update(
        status=NotificationStatus.FAILED,
        error_code="CANCELLED",
        error_message=reason,
        updated_at=now,
    )
    return Delivery.objects.filter(pk__in=ids, status__in=WAITING_STATUSES).update(
        status=DeliveryStatus.CANCELLED,
        finished_at=now,
        lease_expires_at=None,
        last_error=reason,
        updated_at=now,
    )
