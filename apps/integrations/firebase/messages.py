"""Our content and delivery options -> an FCM HTTP v1 `message` object, validated."""

import time
from dataclasses import dataclass, field

from apps.integrations.firebase.validation import (
    MessageInvalid,
    validate_analytics_label,
    validate_data,
    validate_message,
    validate_ttl,
)


@dataclass(frozen=True)
class PushContent:
    title: str
    body: str
    image_url: str | None = None
    data: dict[str, str] | None = None
    link: str | None = None
    analytics_label: str | None = None


@dataclass(frozen=True)
class DeliveryOptions:
    priority: str = "high"  # "high" | "normal"
    ttl_seconds: int | None = None
    collapse_key: str | None = None
    android_channel_id: str | None = None
    sound: str | None = None
    badge: int | None = None
    extra_data: dict[str, str] = field(default_factory=dict)


PRIORITIES = {"high": ("HIGH", "10"), "normal": ("NORMAL", "5")}


def build_message(
    *,
    content: PushContent,
    options: DeliveryOptions = DeliveryOptions(),
    topic: str | None = None,
    condition: str | None = None,
    token: str | None = None,
    collapse_id: str | None = None,
    now_epoch: int | None = None,
) -> dict:
    """Build and validate the message (raises MessageInvalid).

    `collapse_id` (our notification id) makes a resend show once on a device: it becomes the
    Android notification tag, the apns-collapse-id and the web-push Topic. `now_epoch` anchors
    apns-expiration when a TTL is set (defaults to the current time).
    """
    targets = {"topic": topic, "condition": condition, "token": token}
    chosen = {name: value for name, value in targets.items() if value}
    if len(chosen) != 1:
        raise MessageInvalid("target", "A message has exactly one of token, topic or condition.")
    if options.priority not in PRIORITIES:
        raise MessageInvalid("priority", "'high' or 'normal'.")
    if not content.title:
        raise MessageInvalid("title", "A title is required.")

    message: dict = dict(chosen)
    notification = {"title": content.title, "body": content.body}
    if content.image_url:
        notification["image"] = content.image_url
    message["notification"] = notification
    # System data (extra_data: ids apps report events with) wins over the content's own keys.
    data = {**(content.data or {}), **options.extra_data}
    if content.link:
        data.setdefault("link", content.link)  # mobile apps open deep links from data
    if data:
        message["data"] = validate_data(data)

    android_priority, apns_priority = PRIORITIES[options.priority]
    android: dict = {"priority": android_priority}
    android_notification: dict = {}
    apns_headers: dict = {"apns-priority": apns_priority}
    webpush_headers: dict = {}
    if options.ttl_seconds is not None:
        ttl = validate_ttl(options.ttl_seconds)
        android["ttl"] = f"{ttl}s"
        webpush_headers["TTL"] = str(ttl)
        if now_epoch is None:
            now_epoch = int(time.time())
        # APNs: 0 means "deliver once or drop"; otherwise an absolute expiry time.
        apns_headers["apns-expiration"] = "0" if ttl == 0 else str(now_epoch + ttl)
    if options.collapse_key:
        android["collapse_key"] = options.collapse_key
    if collapse_id:
        compact = collapse_id.replace("-", "")
        android_notification["tag"] = compact
        apns_headers["apns-collapse-id"] = compact
        webpush_headers["Topic"] = compact[:32]
    if options.android_channel_id:
        android_notification["channel_id"] = options.android_channel_id
    if options.sound:
        android_notification["sound"] = options.sound
    if android_notification:
        android["notification"] = android_notification
    message["android"] = android

    aps: dict = {}
    if options.sound:
        aps["sound"] = options.sound
    if options.badge is not None:
        aps["badge"] = options.badge
    if content.image_url:
        aps["mutable-content"] = 1  # lets the app's service extension fetch the image
    apns: dict = {"headers": apns_headers}
    if aps:
        apns["payload"] = {"aps": aps}
    if content.image_url:
        apns["fcm_options"] = {"image": content.image_url}
    message["apns"] = apns

    webpush: dict = {}
    if webpush_headers:
        webpush["headers"] = webpush_headers
    if content.link:
        webpush["fcm_options"] = {"link": content.link}
    if webpush:
        message["webpush"] = webpush

    if content.analytics_label:
        message["fcm_options"] = {
            "analytics_label": validate_analytics_label(content.analytics_label)
        }
    validate_message(message)
    return message
