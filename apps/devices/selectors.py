"""Reads of the registry: audience counts and estimates (from the kept counts, never by
scanning devices), and the device list the team sees."""

from __future__ import annotations

from django.db.models import Lookup, Q, Sum, TextField

from apps.common.errors import ValidationFailed
from apps.devices import topics as reserved
from apps.devices.audience import topic_list
from apps.devices.models import AudienceProfile, Device, Platform, TopicAudience
from apps.integrations.firebase.validation import MessageInvalid, parse_condition, validate_topic


@TextField.register_lookup
class HasSegment(Lookup):
    """`topic_list__has_segment=",a,"`: a case-sensitive substring test (Django's `contains`
    is case-insensitive on SQLite, and topic names are case-sensitive)."""

    lookup_name = "has_segment"

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        function = "strpos" if connection.vendor == "postgresql" else "instr"
        return f"{function}({lhs}, {rhs}) > 0", [*lhs_params, *rhs_params]


def _matches(tree) -> Q:
    """The rows of AudienceProfile whose topic set satisfies the condition tree."""
    kind, value = tree
    if kind == "topic":
        return Q(topic_list__has_segment=topic_list([value]))
    if kind == "not":
        return ~_matches(value)
    combined = _matches(value[0])
    for node in value[1:]:
        combined = (combined & _matches(node)) if kind == "and" else (combined | _matches(node))
    return combined


def _by_platform(rows) -> dict:
    counts = {platform: 0 for platform in Platform.values}
    for platform, devices in rows:
        counts[platform] = devices or 0
    return {"devices": sum(counts.values()), "by_platform": counts}


def estimate(*, workspace_id, topic: str | None = None, condition: str | None = None) -> dict:
    """How many registered active devices a topic or condition reaches, per platform."""
    if bool(topic) == bool(condition):
        raise ValidationFailed.on("topic", "Give exactly one of topic and condition.")
    try:
        if topic:
            validate_topic(topic)
            rows = TopicAudience.objects.filter(workspace_id=workspace_id, topic=topic)
        else:
            tree, _ = parse_condition(condition)
            rows = AudienceProfile.objects.filter(_matches(tree), workspace_id=workspace_id)
    except MessageInvalid as exc:
        raise ValidationFailed.on("topic" if topic else "condition", exc.message) from None
    grouped = (
        rows.values("platform").annotate(total=Sum("devices")).values_list("platform", "total")
    )
    target = {"topic": topic} if topic else {"condition": condition}
    return {**target, **_by_platform(grouped)}


def audience_of(*, workspace_id, target: dict) -> dict:
    """{devices, by_platform} that a campaign-style target ({"topic"} or {"condition"})
    reaches."""
    found = estimate(workspace_id=workspace_id, **target)
    return {"devices": found["devices"], "by_platform": found["by_platform"]}


def topic_audiences(*, workspace_id, kind: str | None = None) -> list[dict]:
    """Every topic with devices in it, largest first, with its counts per platform."""
    rows = TopicAudience.objects.filter(workspace_id=workspace_id, devices__gt=0)
    if kind == "app":
        rows = rows.exclude(topic__startswith=reserved.RESERVED_PREFIX)
    elif kind:
        rows = rows.filter(topic__startswith=reserved.prefix_of(kind))
    topics: dict[str, dict] = {}
    for topic, platform, devices in rows.values_list("topic", "platform", "devices"):
        entry = topics.setdefault(
            topic, {"topic": topic, "kind": reserved.topic_kind(topic), "devices": 0,
                    "by_platform": {p: 0 for p in Platform.values}}
        )  # fmt: skip
        entry["devices"] += devices
        entry["by_platform"][platform] = devices
    return sorted(topics.values(), key=lambda entry: (-entry["devices"], entry["topic"]))


def zones_with_devices(workspace_id) -> list[str]:
    """The time zones (IANA names) that active registered devices of the workspace are in."""
    rows = TopicAudience.objects.filter(
        workspace_id=workspace_id, topic__startswith=reserved.ZONE_PREFIX, devices__gt=0
    ).values_list("topic", flat=True)
    return sorted({reserved.zone_of(topic) for topic in rows})


def has_devices(workspace_id) -> bool:
    """Whether the workspace has active registered devices (they sit in topics PushPilot
    can split a send by)."""
    return TopicAudience.objects.filter(
        workspace_id=workspace_id, topic__startswith=reserved.LANGUAGE_PREFIX, devices__gt=0
    ).exists()


def devices_of(workspace_id):
    return Device.objects.filter(workspace_id=workspace_id).order_by("-created_at", "id")
