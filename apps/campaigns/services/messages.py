"""What a campaign sends: its target, delivery options and contents made into FCM
messages, with FCM's rules (apps.integrations.firebase, never copied)."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from apps.campaigns import experiments
from apps.campaigns.models import DELIVERY_OPTION_FIELDS as OPTION_FIELDS
from apps.campaigns.models import Campaign, CampaignContent
from apps.common.errors import ValidationFailed
from apps.devices import topics
from apps.integrations.firebase import validation as fcm
from apps.integrations.firebase.messages import DeliveryOptions, PushContent, build_message

MAX_CONTENTS = 20

NULLABLE_OPTIONS = frozenset({"ttl_seconds", "badge"})

CONTENT_FIELDS = (
    "title", "subtitle", "image_url", "data", "link", "analytics_label", "translations",
)  # fmt: skip


def validate_target(
    topic: str, condition: str, *, recipient_time_zone: bool = False, localized: bool = False
) -> tuple[str, str]:
    topic, condition = (topic or "").strip(), (condition or "").strip()
    if bool(topic) == bool(condition):
        raise ValidationFailed.on("target", "Give exactly one of 'topic' or 'condition'.")
    try:
        named = [fcm.validate_topic(topic)] if topic else fcm.validate_condition(condition)
    except fcm.MessageInvalid as exc:
        raise ValidationFailed(details={"target": [exc.message]}) from None
    added = {"recipient_time_zone": recipient_time_zone, "contents": localized}
    if any(added.values()) and len(named) + sum(added.values()) > fcm.MAX_CONDITION_TOPICS:
        field = "recipient_time_zone" if recipient_time_zone else "contents"
        raise ValidationFailed.on(
            field,
            "Delivering in each recipient's time zone adds a zone topic and translated "
            f"contents a language topic to the target's condition, and FCM allows "
            f"{fcm.MAX_CONDITION_TOPICS} topics in one: this target may name at most "
            f"{fcm.MAX_CONDITION_TOPICS - sum(added.values())} (it names {len(named)}).",
        )
    if localized and any(name.startswith(topics.LANGUAGE_PREFIX) for name in named):
        raise ValidationFailed.on(
            "contents",
            f"The target already picks a language ({topics.LANGUAGE_PREFIX}... topic): send "
            "it without translations.",
        )
    if recipient_time_zone and any(name.startswith(topics.ZONE_PREFIX) for name in named):
        raise ValidationFailed.on(
            "recipient_time_zone",
            f"The target already picks a time zone ({topics.ZONE_PREFIX}... topic): deliver "
            "it at one instant instead.",
        )
    return topic, condition


def validate_experiment(
    experiment: Mapping[str, Any] | None,
    *,
    contents: Sequence[Mapping[str, Any]],
    topic: str,
    condition: str,
    rrule: str,
    recipient_time_zone: bool,
) -> dict | None:
    """The experiment with its defaults, or a 400 saying why this campaign cannot run it."""
    if not experiment:
        return None
    config = {**experiments.DEFAULTS, **experiment}
    unknown = set(experiment) - set(experiments.DEFAULTS)
    if unknown:
        raise ValidationFailed.on("experiment", f"Unknown field(s): {', '.join(sorted(unknown))}.")
    refused = [
        (bool(rrule), "A recurring campaign cannot run an experiment: make it a one-off."),
        (recipient_time_zone, "An experiment is sent at one instant: not by recipient time zone."),
        (is_localized(contents), "An experiment compares untranslated contents."),
    ]
    for applies, message in refused:
        if applies:
            raise ValidationFailed.on("experiment", message)
    named = 1 if topic else len(fcm.validate_condition(condition))
    errors = experiments.problems(config, contents=len(contents), target_topics=named)
    if errors:
        raise ValidationFailed(details=errors)
    return config


def zone_room(topic: str, condition: str, *, localized: bool = False) -> int:
    """How many zone topics one delivery of this target can add (besides a language topic,
    when its contents are translated)."""
    named = 1 if topic else len(fcm.validate_condition(condition))
    return fcm.MAX_CONDITION_TOPICS - named - localized


def is_localized(contents: Sequence[Mapping[str, Any]]) -> bool:
    return any(content.get("translations") for content in contents)


def localized_text(content: CampaignContent, language: str) -> tuple[str, str]:
    """(title, subtitle) of a content in `language` (see localized)."""
    values = localized({"title": content.title, "subtitle": content.subtitle,
                        "translations": content.translations}, language)  # fmt: skip
    return values["title"], values["subtitle"]


def localized(values: Mapping[str, Any], language: str) -> Mapping[str, Any]:
    """A content's values in `language`: its translation's title and subtitle, or its own
    text when it has none."""
    translation = (values.get("translations") or {}).get(language) if language else None
    if not translation:
        return values
    return {**values, "title": translation["title"], "subtitle": translation.get("subtitle", "")}


def validate_options(options: Mapping[str, Any]) -> None:
    if options.get("ttl_seconds") is not None:
        try:
            fcm.validate_ttl(options["ttl_seconds"])
        except fcm.MessageInvalid as exc:
            raise ValidationFailed.on("ttl_seconds", exc.message) from None


def option_values(options: Mapping[str, Any]) -> dict[str, Any]:
    """Model values for delivery options: an empty text option is "", never None."""
    return {
        name: value if value is not None or name in NULLABLE_OPTIONS else ""
        for name, value in options.items()
    }


# Where the FCM message builder names a field, which content field that is.
_MESSAGE_FIELD_TO_CONTENT = {
    "title": "title",
    "body": "subtitle",
    "image": "image_url",
    "image_url": "image_url",
    "data": "data",
    "link": "link",
    "analytics_label": "analytics_label",
}


def _content_error_field(field: str) -> str:
    last = (field or "").rsplit(".", 1)[-1]
    return _MESSAGE_FIELD_TO_CONTENT.get(last, "non_field_errors")


def _push_content(content: Mapping[str, Any]) -> PushContent:
    return PushContent(
        title=content.get("title") or "",
        body=content.get("subtitle") or "",
        image_url=content.get("image_url") or None,
        data=dict(content.get("data") or {}) or None,
        link=content.get("link") or None,
        analytics_label=content.get("analytics_label") or None,
    )


def delivery_options_of(values: Mapping[str, Any]) -> DeliveryOptions:
    return DeliveryOptions(
        priority=values.get("priority") or "high",
        ttl_seconds=values.get("ttl_seconds"),
        collapse_key=values.get("collapse_key") or None,
        android_channel_id=values.get("android_channel_id") or None,
        sound=values.get("sound") or None,
        badge=values.get("badge"),
    )


# Every message carries these in its data so the app can report events about it (POST
# /events with notification_id). Validation builds messages with a same-length placeholder,
# so a campaign that schedules is never refused for size when it is sent.
NOTIFICATION_ID_KEY = "pushpilot_notification_id"

CAMPAIGN_ID_KEY = "pushpilot_campaign_id"

_PLACEHOLDER_ID = uuid.UUID(int=0)


def _build(
    content: Mapping[str, Any],
    *,
    topic: str,
    condition: str,
    options: Mapping[str, Any],
    notification_id: uuid.UUID,
    campaign_id: uuid.UUID,
) -> dict:
    delivery = dataclasses.replace(
        delivery_options_of(options),
        extra_data={NOTIFICATION_ID_KEY: str(notification_id), CAMPAIGN_ID_KEY: str(campaign_id)},
    )
    return build_message(
        content=_push_content(content),
        options=delivery,
        topic=topic or None,
        condition=condition or None,
        collapse_id=str(notification_id),  # a resend shows once on the device
    )


def message_for(
    campaign: Campaign,
    content: CampaignContent,
    *,
    target: Mapping[str, str],
    notification_id: uuid.UUID,
    language: str = "",
) -> dict:
    """The FCM message one content of this campaign is sent as, to one delivery's target
    ({"topic": ...} or {"condition": ...}) in its language, validated by the builder."""
    return _build(
        localized(content_values(content), language),
        topic=target.get("topic", ""),
        condition=target.get("condition", ""),
        options={name: getattr(campaign, name) for name in OPTION_FIELDS},
        notification_id=notification_id,
        campaign_id=campaign.pk,
    )


def validate_contents(
    contents: Sequence[Mapping[str, Any]],
    *,
    topic: str,
    condition: str,
    options: Mapping[str, Any],
    recipient_time_zone: bool = False,
    languages: Sequence[str] = (),
    default_language: str = "",
) -> None:
    """Every content, in each of its languages, must make a valid FCM message for this
    target and these options, size included — with the longest condition a delivery can get
    (by recipient zone, by language). Translations are for the workspace's `languages` other
    than the default (the content's own text). Errors come back like DRF's nested ones:
    {"contents": [{}, {field: [..]}]}, a translation's as `translations.<tag>.<field>`."""
    if len(contents) > MAX_CONTENTS:
        raise ValidationFailed.on("contents", f"At most {MAX_CONTENTS} contents per campaign.")
    by_language = is_localized(contents)
    zones = [topics.longest_zone()] * zone_room(topic, condition, localized=by_language)
    longest_tag = max(languages, key=len, default="")
    if recipient_time_zone or by_language:
        topic, condition = "", topics.narrowed(
            topic=topic, condition=condition, zones=zones if recipient_time_zone else (),
            language=longest_tag if by_language else "",
        )  # fmt: skip
    errors: list[dict[str, list[str]]] = []
    for content in contents:
        item: dict[str, list[str]] = {}
        for tag in content.get("translations") or {}:
            if tag == default_language:
                item.setdefault(f"translations.{tag}", []).append(
                    "The content's own title and subtitle are in the default language."
                )
            elif tag not in languages:
                item.setdefault(f"translations.{tag}", []).append(
                    f"Not a language of the workspace ({', '.join(languages)}): add it first."
                )
        try:  # the same in every language
            if content.get("data"):
                fcm.validate_data(dict(content["data"]))
            if content.get("analytics_label"):
                fcm.validate_analytics_label(content["analytics_label"])
        except fcm.MessageInvalid as exc:
            item.setdefault(_content_error_field(exc.field), []).append(exc.message)
            errors.append(item)
            continue
        for tag in ["", *(content.get("translations") or {})]:
            try:
                _build(
                    localized(content, tag),
                    topic=topic,
                    condition=condition,
                    options=options,
                    notification_id=_PLACEHOLDER_ID,
                    campaign_id=_PLACEHOLDER_ID,
                )
            except fcm.MessageInvalid as exc:
                field = _error_key(tag, _content_error_field(exc.field))
                item.setdefault(field, []).append(exc.message)
        errors.append(item)
    if any(errors):
        raise ValidationFailed(details={"contents": errors})


def _error_key(language: str, field: str) -> str:
    """Where a content's error goes: its field, or — in a translation — the translation's
    field, or the translation itself (its message is too large, say)."""
    if not language:
        return field
    return f"translations.{language}" + (f".{field}" if field in ("title", "subtitle") else "")


def content_values(content: CampaignContent) -> dict[str, Any]:
    return {name: getattr(content, name) for name in CONTENT_FIELDS}


def clean_content(values: Mapping[str, Any]) -> dict[str, Any]:
    cleaned = {name: values.get(name) for name in CONTENT_FIELDS}
    for name in ("subtitle", "image_url", "link", "analytics_label"):
        cleaned[name] = cleaned[name] or ""
    cleaned["data"] = dict(cleaned["data"] or {})
    cleaned["translations"] = {
        tag: {"title": text["title"], "subtitle": text.get("subtitle") or ""}
        for tag, text in (cleaned["translations"] or {}).items()
    }
    return cleaned
