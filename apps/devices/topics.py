"""The topics PushPilot keeps each device in, and the keyed hash that finds a device by its
token without storing the token in the clear.

Reserved names (an app's own topics may not start with `pushpilot-`):

    pushpilot-tz-<IANA zone, percent-encoded>   exactly one: the device's time zone
                                                (`pushpilot-tz-Europe%2FParis`)
    pushpilot-lang-<BCP 47 tag>                 exactly one: the best of the workspace's
                                                languages for the device, else its default
    pushpilot-bucket-<0..9>                     exactly one: a stable tenth of the audience,
                                                from the token's keyed hash (experiments)
"""

import hashlib
import hmac
from collections.abc import Iterable
from functools import lru_cache
from urllib.parse import quote, unquote

from django.conf import settings

RESERVED_PREFIX = "pushpilot-"
ZONE_PREFIX = RESERVED_PREFIX + "tz-"
LANGUAGE_PREFIX = RESERVED_PREFIX + "lang-"
BUCKET_PREFIX = RESERVED_PREFIX + "bucket-"
BUCKETS = 10


def zone_topic(zone: str) -> str:
    # IANA names carry "/" and "+", which topic names may not; "%" may (FCM's own escape).
    return ZONE_PREFIX + quote(zone, safe="-_.~")


def zone_of(topic: str) -> str:
    """The zone a zone topic stands for."""
    return unquote(topic.removeprefix(ZONE_PREFIX))


def narrowed(*, topic: str = "", condition: str = "", zones=(), language: str = "") -> str:
    """The condition "the target, and in one of these zones, and of this language" (FCM
    names at most 5 topics in a condition: the caller keeps the total within it)."""
    parts = [f"'{topic}' in topics" if topic else f"({condition})"]
    if zones:
        alternatives = " || ".join(f"'{zone_topic(zone)}' in topics" for zone in zones)
        parts.append(f"({alternatives})" if len(zones) > 1 else alternatives)
    if language:
        parts.append(f"'{language_topic(language)}' in topics")
    return " && ".join(parts)


@lru_cache(maxsize=1)
def longest_zone() -> str:
    from apps.common.timezones import known_timezones

    return max(known_timezones(), key=lambda zone: len(zone_topic(zone)))


def language_topic(tag: str) -> str:
    return LANGUAGE_PREFIX + tag


def bucket_topic(bucket: int) -> str:
    return f"{BUCKET_PREFIX}{bucket}"


KIND_PREFIXES = {"zone": ZONE_PREFIX, "language": LANGUAGE_PREFIX, "bucket": BUCKET_PREFIX}
KINDS = ("app", *KIND_PREFIXES)


def prefix_of(kind: str) -> str:
    return KIND_PREFIXES[kind]


def topic_kind(topic: str) -> str:
    """`zone`, `language`, `bucket` or `app`."""
    for kind, prefix in KIND_PREFIXES.items():
        if topic.startswith(prefix):
            return kind
    return "app"


def device_topics(*, app_topics: Iterable[str], zone: str, language: str, bucket: int) -> list:
    """Every topic a device belongs in, sorted (the order the registry stores)."""
    return sorted({*app_topics, zone_topic(zone), language_topic(language), bucket_topic(bucket)})


@lru_cache(maxsize=1)
def _hash_key() -> bytes:
    configured = settings.DEVICE_TOKEN_HASH_KEY
    if configured:
        return configured.encode()
    return hashlib.sha256(b"pushpilot-device-token:" + settings.SECRET_KEY.encode()).digest()


def token_digest(workspace_id, token: str) -> str:
    """HMAC-SHA256 of the token within its workspace: the lookup key of a device. Keyed, so
    the stored digests cannot be matched against tokens seen elsewhere; per workspace, so
    the same device in two workspaces is not linkable by its digest either."""
    message = f"{workspace_id}:{token}".encode()
    return hmac.new(_hash_key(), message, hashlib.sha256).hexdigest()


def bucket_of(digest: str) -> int:
    return int(digest[:8], 16) % BUCKETS
