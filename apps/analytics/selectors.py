"""Analytics reads. Every one of them reads `EventRollup` only, never the event log, so its
cost depends on campaigns x contents x hours, not on how many events apps sent.

Counts: `sent`/`failed` are notification outcomes (one per content per run: FCM topic sends
report nothing per device); `delivered`, `opened`, `clicked`, `dismissed` and conversions
come from the apps (one per device). Rates therefore divide device events by device events:

    open_rate = opened / delivered         click_rate = clicked / delivered
    click_through_rate = clicked / opened  conversion_rate = conversions / delivered
    dismiss_rate = dismissed / delivered   failure_rate = failed / (sent + failed)

and are null when the denominator is 0 (opened / sent would be "opens per topic message").

Dashboard answers are cached for ANALYTICS_CACHE_SECONDS (default 30 s) under a key made of
the workspace and every parameter; new events show up within that time.
"""

from __future__ import annotations

import hashlib
import json
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.cache import cache
from django.db.models import Sum
from django.utils import timezone

from apps.analytics.models import NIL_UUID, EventRollup
from apps.campaigns import selectors as campaign_selectors
from apps.campaigns.models import Campaign, CampaignContent
from apps.common.errors import NotFound, ValidationFailed
from apps.common.timezones import get_zone, is_known_timezone

COUNTS = ("sent", "failed", "delivered", "opened", "clicked", "dismissed")
CONVERSION_PREFIX = "conversion:"
MAX_BUCKETS = 1000
DEFAULT_SPAN = {"hour": timedelta(hours=24), "day": timedelta(days=7)}
# The shortest a bucket can be (a DST day is 23 hours), for the size check before building.
BUCKET_SPAN = {"hour": timedelta(hours=1), "day": timedelta(hours=23)}


# --- counting ---------------------------------------------------------------------------------
class Tally:
    """Counts of one campaign, content, or time bucket."""

    __slots__ = ("conversions_by_name", "counts")

    def __init__(self) -> None:
        self.counts = dict.fromkeys(COUNTS, 0)
        self.counts["conversions"] = 0
        self.conversions_by_name: dict[str, int] = defaultdict(int)

    def add(self, event_type: str, n: int) -> None:
        if event_type.startswith(CONVERSION_PREFIX):
            self.counts["conversions"] += n
            self.conversions_by_name[event_type.removeprefix(CONVERSION_PREFIX)] += n
        elif event_type in self.counts:
            self.counts[event_type] += n

    def as_dict(self, *, names: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = dict(self.counts)
        if names:
            body["conversions_by_name"] = dict(sorted(self.conversions_by_name.items()))
        body["rates"] = rates(self.counts)
        return body


def _ratio(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def rates(c: dict[str, int]) -> dict[str, float | None]:
    return {
        "failure_rate": _ratio(c["failed"], c["sent"] + c["failed"]),
        "open_rate": _ratio(c["opened"], c["delivered"]),
        "click_rate": _ratio(c["clicked"], c["delivered"]),
        "click_through_rate": _ratio(c["clicked"], c["opened"]),
        "dismiss_rate": _ratio(c["dismissed"], c["delivered"]),
        "conversion_rate": _ratio(c["conversions"], c["delivered"]),
    }


# --- caching ----------------------------------------------------------------------------------
def cached(name: str, workspace_id, params: dict[str, Any], compute: Callable[[], Any]) -> Any:
    """`compute()` once per ANALYTICS_CACHE_SECONDS for this workspace and these params."""
    digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()
    key = f"analytics:v1:{name}:{workspace_id}:{digest[:32]}"
    value = cache.get(key)
    if value is None:
        value = compute()
        cache.set(key, value, settings.ANALYTICS_CACHE_SECONDS)
    return value


# --- campaign stats ---------------------------------------------------------------------------
def campaign_stats(*, workspace, campaign_id) -> dict[str, Any]:
    """Totals and per-content counts of one campaign of `workspace` (404 otherwise)."""
    campaign = campaign_selectors.campaign_of(workspace, campaign_id)
    if campaign is None:
        raise NotFound("No such campaign.")
    return cached(
        "campaign-stats", workspace.pk, {"campaign": str(campaign.pk)}, lambda: _stats(campaign)
    )


def _stats(campaign: Campaign) -> dict[str, Any]:
    rows = (
        EventRollup.objects.filter(workspace_id=campaign.workspace_id, campaign_id=campaign.pk)
        .values_list("content_id", "event_type")
        .annotate(n=Sum("count"))
        .order_by()
    )
    totals, by_content = Tally(), defaultdict(Tally)
    for content_id, event_type, n in rows:
        totals.add(event_type, n)
        by_content[content_id].add(event_type, n)
    contents = []
    for content in CampaignContent.objects.filter(campaign=campaign).order_by("position"):
        tally = by_content.pop(content.pk, Tally())
        contents.append(
            {"content_id": content.pk, "position": content.position, "title": content.title,
             "deleted": False, **tally.as_dict()}
        )  # fmt: skip
    # Contents deleted since they were sent keep their counts (no title to show any more).
    # Events that named only the campaign (no notification) count in the totals alone.
    by_content.pop(NIL_UUID, None)
    for content_id, tally in sorted(by_content.items()):
        contents.append(
            {"content_id": content_id, "position": None, "title": None, "deleted": True,
             **tally.as_dict()}
        )  # fmt: skip
    return {
        "campaign_id": campaign.pk,
        "name": campaign.name,
        "status": campaign.status,
        "totals": totals.as_dict(),
        "contents": contents,
        "experiment": campaign.experiment_result,
        "generated_at": timezone.now(),
    }


def counts_by_content(campaign: Campaign) -> dict[Any, dict[str, int]]:
    """content id -> event type (and sent/failed) -> count, uncached (decisions read it)."""
    counts: dict[Any, dict[str, int]] = defaultdict(dict)
    rows = (
        EventRollup.objects.filter(workspace_id=campaign.workspace_id, campaign_id=campaign.pk)
        .values_list("content_id", "event_type")
        .annotate(n=Sum("count"))
        .order_by()
    )
    for content_id, event_type, n in rows:
        counts[content_id][event_type] = n
    return counts


# --- campaigns with their counts --------------------------------------------------------------
def counts_for_campaigns(*, workspace, campaign_ids: Iterable) -> dict[Any, dict[str, Any]]:
    """campaign id -> counts and rates, for one page of the campaign list (one query)."""
    ids = list(campaign_ids)
    tallies: dict[Any, Tally] = {pk: Tally() for pk in ids}
    rows = (
        EventRollup.objects.filter(workspace=workspace, campaign_id__in=ids)
        .values_list("campaign_id", "event_type")
        .annotate(n=Sum("count"))
        .order_by()
    )
    for campaign_id, event_type, n in rows:
        tallies[campaign_id].add(event_type, n)
    return {pk: tally.as_dict(names=False) for pk, tally in tallies.items()}


# --- overview ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Window:
    """The local-time buckets of an overview, as UTC instants: bucket i is
    [boundaries[i], boundaries[i + 1])."""

    zone_name: str
    interval: str
    boundaries: list[datetime]


def overview_window(
    *, zone_name: str, interval: str, start: str | None, end: str | None, now: datetime
) -> Window:
    """Bucket boundaries in `zone_name` local time, zero-fill ready.

    `start`/`end` are ISO 8601 dates (local calendar days; `end` inclusive) or times (with
    or without an offset; without one they are local). The window is widened to whole
    buckets. A day is local midnight to local midnight: 23 or 25 hours across a DST change.
    Hour buckets step through real hours (a fall-back day shows both 01:00s).
    Rollups are UTC hours, so in the rare zones whose offset is not a whole number of hours
    (Asia/Kolkata, ...) a rollup hour is counted in the local bucket its start falls in.
    """
    if interval not in DEFAULT_SPAN:
        raise ValidationFailed.on("interval", "One of hour, day.")
    if not is_known_timezone(zone_name):
        raise ValidationFailed.on("timezone", f"Unknown time zone '{zone_name}'; use an IANA name.")
    zone = get_zone(zone_name)
    end_at = _parse_bound("to", end, zone, is_end=True) if end else now
    start_at = (
        _parse_bound("from", start, zone, is_end=False)
        if start
        else end_at - DEFAULT_SPAN[interval]
    )
    if start_at >= end_at:
        raise ValidationFailed.on("from", "Must be before `to`.")
    # Refuse before building the buckets: a range of centuries must cost nothing.
    if end_at - start_at > BUCKET_SPAN[interval] * (MAX_BUCKETS + 1):
        raise ValidationFailed.on(
            "from", f"At most {MAX_BUCKETS} {interval} buckets per request; narrow the range."
        )
    boundaries = (
        _day_boundaries(start_at, end_at, zone)
        if interval == "day"
        else _hour_boundaries(start_at, end_at, zone)
    )
    if len(boundaries) - 1 > MAX_BUCKETS:
        raise ValidationFailed.on(
            "from", f"At most {MAX_BUCKETS} {interval} buckets per request; narrow the range."
        )
    return Window(zone_name, interval, boundaries)


def _parse_bound(name: str, value: str, zone: ZoneInfo, *, is_end: bool) -> datetime:
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return _local_midnight(day + timedelta(days=1) if is_end else day, zone)
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=zone)
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise ValidationFailed.on(name, "An ISO 8601 date or time (years 2 to 9998).") from None


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def _day_boundaries(start: datetime, end: datetime, zone: ZoneInfo) -> list[datetime]:
    day = start.astimezone(zone).date()
    boundaries = [_local_midnight(day, zone)]
    while boundaries[-1] < end:
        day += timedelta(days=1)
        boundaries.append(_local_midnight(day, zone))
    return boundaries


def _hour_boundaries(start: datetime, end: datetime, zone: ZoneInfo) -> list[datetime]:
    local = start.astimezone(zone)
    # The local hour's start, as a real instant (minutes off an hour-aligned UTC instant
    # differ only in zones with a fractional offset).
    first = start - timedelta(
        minutes=local.minute, seconds=local.second, microseconds=local.microsecond
    )
    boundaries = [first]
    while boundaries[-1] < end:
        boundaries.append(boundaries[-1] + timedelta(hours=1))
    return boundaries


def overview(*, workspace, window: Window) -> dict[str, Any]:
    params = {"tz": window.zone_name, "interval": window.interval,
              "from": window.boundaries[0], "to": window.boundaries[-1]}  # fmt: skip
    return cached("overview", workspace.pk, params, lambda: _overview(workspace, window))


def _overview(workspace, window: Window) -> dict[str, Any]:
    bounds = window.boundaries
    rows = (
        EventRollup.objects.filter(
            workspace=workspace, bucket__gte=bounds[0], bucket__lt=bounds[-1]
        )
        .values_list("bucket", "event_type")
        .annotate(n=Sum("count"))
        .order_by()
    )
    totals = Tally()
    series = [Tally() for _ in range(len(bounds) - 1)]
    for bucket, event_type, n in rows:
        totals.add(event_type, n)
        series[bisect_right(bounds, bucket) - 1].add(event_type, n)
    zone = get_zone(window.zone_name)
    return {
        "from": bounds[0],
        "to": bounds[-1],
        "interval": window.interval,
        "timezone": window.zone_name,
        "totals": totals.as_dict(),
        "series": [
            {
                "start": bounds[i],
                "local_start": bounds[i].astimezone(zone).isoformat(),
                **tally.counts,
            }
            for i, tally in enumerate(series)
        ],
    }
