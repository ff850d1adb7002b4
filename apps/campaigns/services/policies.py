"""A workspace's send policies: edited by admins (`GET|PUT /send-policy`), checked when a
campaign is scheduled (the frequency cap's plan, the approval threshold). The rules
themselves are in apps.campaigns.policies; the engine's side (the cap again at send time,
the send-rate cap) in apps.notifications.policies."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q

from apps.campaigns import policies, selectors
from apps.campaigns.errors import FrequencyCapExceeded
from apps.campaigns.models import Campaign, CampaignStatus, SendPolicy
from apps.common import audit
from apps.common.actors import user_or_none
from apps.common.errors import ValidationFailed
from apps.devices import selectors as devices
from apps.notifications import selectors as engine  # the engine's records (reads only)
from apps.workspaces.models import Role, role_at_least
from apps.workspaces.selectors import active_membership

POLICY_FIELDS = (
    "quiet_hours_start",
    "quiet_hours_end",
    "quiet_hours_mode",
    "frequency_cap_max_sends",
    "frequency_cap_window_hours",
    "rate_limit_per_minute",
    "approval_threshold",
)
# Pairs that are set together or not at all.
PAIRS = (
    ("quiet_hours_start", "quiet_hours_end"),
    ("frequency_cap_max_sends", "frequency_cap_window_hours"),
)
# The most of this campaign's own occurrences one schedule check looks at.
MAX_CHECKED_OCCURRENCES = 10_000


def is_admin(actor, workspace) -> bool:
    """Whether `actor` is an admin or owner of `workspace` (who may approve campaigns and
    send them through quiet hours)."""
    user = user_or_none(actor)
    if user is None:
        return False
    membership = active_membership(user, workspace.pk)
    return membership is not None and role_at_least(membership.role, Role.ADMIN)


def policy_values(policy: SendPolicy | None) -> dict[str, Any]:
    """Every policy field, None where the workspace has no policy."""
    return {name: getattr(policy, name) if policy else None for name in POLICY_FIELDS} | {
        "quiet_hours_mode": policy.quiet_hours_mode if policy else "workspace"
    }


@transaction.atomic
def update_policy(*, workspace, actor, **values: Any) -> SendPolicy:
    """Replace the workspace's send policies (PUT: a field not given is cleared), audited
    with the values before and after."""
    unknown = set(values) - set(POLICY_FIELDS)
    if unknown:
        raise TypeError(f"unknown policy fields: {sorted(unknown)}")
    values = {name: values.get(name) for name in POLICY_FIELDS}
    values["quiet_hours_mode"] = values["quiet_hours_mode"] or "workspace"
    for first, second in PAIRS:
        if (values[first] is None) != (values[second] is None):
            missing = second if values[second] is None else first
            raise ValidationFailed.on(missing, f"Set {first} and {second} together, or neither.")
    start, end = values["quiet_hours_start"], values["quiet_hours_end"]
    if start is not None and start == end:
        raise ValidationFailed.on("quiet_hours_end", "The quiet hours end when they start.")
    # One lock per workspace: two admins saving at once end with one of their policies.
    policy, _ = SendPolicy.objects.select_for_update().get_or_create(workspace=workspace)
    before = policy_values(policy)
    for name, value in values.items():
        setattr(policy, name, value)
    policy.updated_by = user_or_none(actor)
    policy.save()
    after = policy_values(policy)
    audit.record(
        "send_policy.updated",
        actor=actor,
        workspace=workspace,
        target=policy,
        metadata={
            "before": _jsonable(before),
            "after": _jsonable(after),
            "changed": sorted(name for name in POLICY_FIELDS if before[name] != after[name]),
        },
    )
    return policy


def _jsonable(values: dict) -> dict:
    return {k: v.isoformat(timespec="minutes") if hasattr(v, "isoformat") else v
            for k, v in values.items()}  # fmt: skip


def needs_approval(campaign: Campaign) -> dict | None:
    """{"audience", "threshold"} when the campaign's audience estimate is over the
    workspace's approval threshold, else None."""
    policy = selectors.send_policy_of(campaign)
    if policy is None or policy.approval_threshold is None:
        return None
    audience = devices.audience_of(workspace_id=campaign.workspace_id, target=campaign.target)
    if audience["devices"] <= policy.approval_threshold:
        return None
    return {"audience": audience["devices"], "threshold": policy.approval_threshold}


def check_frequency_cap(campaign: Campaign, schedule, *, first: datetime) -> None:
    """409 FREQUENCY_CAP_EXCEEDED when this campaign's occurrences within the cap's window
    of its first run, with what was sent and what other scheduled campaigns have planned,
    put more than the cap's sends to one of its topics into one rolling window."""
    policy = selectors.send_policy_of(campaign)
    if policy is None or not policy.has_frequency_cap:
        return
    names = policies.capped_topics(topic=campaign.topic, condition=campaign.condition)
    if not names:
        return
    window = timedelta(hours=policy.frequency_cap_window_hours)
    limit = policy.frequency_cap_max_sends
    mine = []
    for item in schedule.occurrences(first - timedelta(microseconds=1)):
        if item.utc >= first + window or len(mine) >= MAX_CHECKED_OCCURRENCES:
            break
        mine.append((item.utc, ("this", item.utc)))
    if not mine:
        return
    low, high = mine[0][0] - window, mine[-1][0] + window
    others = _other_campaigns_by_topic(campaign, names)
    for topic in names:
        known = engine.topic_sends(
            workspace_id=campaign.workspace_id, topic=topic, start=low, end=high,
            campaign_ids=others.get(topic, []),
        )  # fmt: skip
        keys = {key for _, key in mine}
        breach = policies.first_breach(
            [*mine, *known["sent"], *known["planned"]], mine=keys, max_sends=limit, window=window
        )
        if breach:
            sent = {key for _, key in known["sent"]}
            raise FrequencyCapExceeded(
                f"'{topic}' would get {len(breach)} sends within {policy.frequency_cap_window_hours}"
                f" h; the workspace allows {limit}.",
                details={
                    "topic": topic,
                    "max_sends": limit,
                    "window_hours": policy.frequency_cap_window_hours,
                    "count": len(breach),
                    "sent": sum(1 for _, key in breach if key in sent),
                    "planned": sum(1 for _, key in breach if key not in sent and key not in keys),
                    "this_campaign": sum(1 for _, key in breach if key in keys),
                    "occurrences": [at.isoformat() for at, _ in breach],
                },
            )


def _other_campaigns_by_topic(campaign: Campaign, names: list[str]) -> dict[str, list]:
    """topic -> ids of the workspace's other active campaigns that send to it."""
    active = (
        Campaign.objects.filter(
            workspace_id=campaign.workspace_id,
            status__in=(CampaignStatus.SCHEDULED, CampaignStatus.RUNNING),
        )
        .exclude(pk=campaign.pk)
        .filter(Q(topic__in=names) | ~Q(condition=""))
    )
    found: dict[str, list] = {}
    for pk, topic, condition in active.values_list("pk", "topic", "condition"):
        for name in policies.capped_topics(topic=topic, condition=condition):
            if name in names:
                found.setdefault(name, []).append(pk)
    return found
