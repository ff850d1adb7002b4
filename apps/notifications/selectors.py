"""Reads of the engine's tables that other apps and the API share."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Max, Min, Q, QuerySet

from apps.notifications.models import (
    WAITING_STATUSES,
    Delivery,
    DeliveryStatus,
    DispatcherHeartbeat,
    Occurrence,
)


@dataclass(frozen=True)
class DeliveryProgress:
    """Where a campaign's deliveries stand: what its status follows from."""

    running: int = 0
    waiting: int = 0  # pending or queued
    completed: int = 0
    next_run_at: datetime | None = None
    last_run_at: datetime | None = None
    plan_complete: bool = False


def progress_of(campaign_ids) -> dict:
    """DeliveryProgress per campaign id (every id given gets one), in two queries."""
    rows = (
        Delivery.objects.filter(campaign_id__in=campaign_ids)
        .values("campaign_id")
        .annotate(
            running=Count("pk", filter=Q(status=DeliveryStatus.RUNNING)),
            waiting=Count("pk", filter=Q(status__in=WAITING_STATUSES)),
            completed=Count("pk", filter=Q(status=DeliveryStatus.COMPLETED)),
            next_run_at=Min("run_at", filter=Q(status__in=WAITING_STATUSES)),
            last_run_at=Max(
                "run_at", filter=Q(status__in=(DeliveryStatus.COMPLETED, DeliveryStatus.FAILED))
            ),
        )
    )
    complete = set(
        Occurrence.objects.filter(campaign_id__in=campaign_ids, is_last=True).values_list(
            "campaign_id", flat=True
        )
    )
    found = {row.pop("campaign_id"): row for row in rows}
    return {
        pk: DeliveryProgress(**found.get(pk, {}), plan_complete=pk in complete)
        for pk in campaign_ids
    }


def deliveries_of(campaign) -> QuerySet[Delivery]:
    return (
        Delivery.objects.filter(campaign=campaign)
        .select_related("occurrence")
        .order_by("-run_at", "slice")
    )


def last_heartbeat(host: str | None = None) -> datetime | None:
    """When a dispatcher (on `host` only, if given: names are "host:pid") last completed a
    round."""
    beats = DispatcherHeartbeat.objects.all()
    if host is not None:
        beats = beats.filter(name__startswith=f"{host}:")
    return beats.aggregate(last=Max("beat_at"))["last"]
