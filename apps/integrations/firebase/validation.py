"""FCM HTTP v1 message rules, checked before any request (reference/fcm-v1.md).

Campaigns validate their target and content with the same functions the sender uses, so a
campaign that schedules is a campaign FCM will accept.
"""

import json
import re
from typing import Any

TOPIC_PATTERN = re.compile(r"^[a-zA-Z0-9\-_.~%]+$")
TOPIC_MAX_LENGTH = 900  # the client SDKs' cap
ANALYTICS_LABEL_PATTERN = re.compile(r"^[a-zA-Z0-9\-_.~%]{1,50}$")
MAX_CONDITION_TOPICS = 5
MAX_TTL_SECONDS = 2_419_200  # 4 weeks, also FCM's default
TOPIC_MESSAGE_MAX_BYTES = 2048
MESSAGE_MAX_BYTES = 4096
APNS_COLLAPSE_ID_MAX_BYTES = 64
RESERVED_DATA_KEYS = {"from", "message_type"}
RESERVED_DATA_PREFIXES = ("google", "gcm")
TARGETS = ("token", "topic", "condition")


class MessageInvalid(ValueError):
    """A message FCM would refuse; `field` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def validate_topic(topic: str) -> str:
    if not isinstance(topic, str) or not topic:
        raise MessageInvalid("topic", "A topic name is required.")
    if topic.startswith("/topics/"):
        raise MessageInvalid("topic", "Give the topic name without the '/topics/' prefix.")
    if len(topic) > TOPIC_MAX_LENGTH:
        raise MessageInvalid("topic", f"Topic names are at most {TOPIC_MAX_LENGTH} characters.")
    if not TOPIC_PATTERN.match(topic):
        raise MessageInvalid("topic", "Topic names may contain only letters, digits and - _ . ~ %.")
    return topic


# --- conditions ---------------------------------------------------------------------------------
# Grammar:  expr := term ('||' term)* ; term := factor ('&&' factor)* ;
#           factor := '!' factor | '(' expr ')' | "'topic' in topics"
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<topic>'(?P<single>[^']*)'|"(?P<double>[^"]*)")\s+in\s+topics\b
      | (?P<op>&&|\|\||!|\(|\))
    )""",
    re.VERBOSE,
)


def _tokenize(condition: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    stripped = condition.rstrip()
    while position < len(stripped):
        match = _TOKEN.match(stripped, position)
        if match is None:
            raise MessageInvalid(
                "condition",
                f"Unexpected text at character {position + 1}: expected \"'topic' in topics\", "
                "&&, ||, ! or parentheses.",
            )
        if match.group("topic"):
            name = (
                match.group("single")
                if match.group("single") is not None
                else match.group("double")
            )
            tokens.append(("topic", name))
        else:
            tokens.append(("op", match.group("op")))
        position = match.end()
    return tokens


# A parsed condition: ("topic", name) | ("not", node) | ("and", [nodes]) | ("or", [nodes]).
Condition = tuple


class _ConditionParser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.index = 0
        self.topics: list[str] = []

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise MessageInvalid("condition", "The condition ends too early.")
        self.index += 1
        return token

    def expression(self) -> Condition:
        terms = [self.term()]
        while self.peek() == ("op", "||"):
            self.take()
            terms.append(self.term())
        return terms[0] if len(terms) == 1 else ("or", terms)

    def term(self) -> Condition:
        factors = [self.factor()]
        while self.peek() == ("op", "&&"):
            self.take()
            factors.append(self.factor())
        return factors[0] if len(factors) == 1 else ("and", factors)

    def factor(self) -> Condition:
        kind, value = self.take()
        if (kind, value) == ("op", "!"):
            return ("not", self.factor())
        if (kind, value) == ("op", "("):
            inner = self.expression()
            if self.take() != ("op", ")"):
                raise MessageInvalid("condition", "A parenthesis is not closed.")
            return inner
        if kind == "topic":
            try:
                validate_topic(value)
            except MessageInvalid as exc:
                raise MessageInvalid("condition", f"Topic '{value}': {exc.message}") from None
            self.topics.append(value)
            return ("topic", value)
        raise MessageInvalid("condition", f"Unexpected '{value}'.")


def parse_condition(condition: str) -> tuple[Condition, list[str]]:
    """Check a topic condition's syntax and size; return its tree and the topics it names,
    in order."""
    if not isinstance(condition, str) or not condition.strip():
        raise MessageInvalid("condition", "A condition is required.")
    parser = _ConditionParser(_tokenize(condition))
    tree = parser.expression()
    if parser.peek() is not None:
        raise MessageInvalid("condition", f"Unexpected '{parser.peek()[1]}' after the condition.")
    if len(parser.topics) > MAX_CONDITION_TOPICS:
        raise MessageInvalid(
            "condition", f"A condition may name at most {MAX_CONDITION_TOPICS} topics."
        )
    return tree, parser.topics


def validate_condition(condition: str) -> list[str]:
    """Check a topic condition's syntax and size; return the topics it names, in order."""
    return parse_condition(condition)[1]


# --- fields -------------------------------------------------------------------------------------
def validate_analytics_label(label: str) -> str:
    if not isinstance(label, str) or not ANALYTICS_LABEL_PATTERN.match(label):
        raise MessageInvalid(
            "analytics_label", "1 to 50 characters: letters, digits and - _ . ~ % only."
        )
    return label


def validate_ttl(seconds: int) -> int:
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        raise MessageInvalid("ttl", "The time to live is a whole number of seconds.")
    if not 0 <= seconds <= MAX_TTL_SECONDS:
        raise MessageInvalid(
            "ttl", f"The time to live is 0 to {MAX_TTL_SECONDS} seconds (4 weeks)."
        )
    return seconds


def validate_data(data: dict) -> dict[str, str]:
    if not isinstance(data, dict):
        raise MessageInvalid("data", "Data is an object of string keys to string values.")
    for key, value in data.items():
        if not isinstance(key, str) or not key:
            raise MessageInvalid("data", "Data keys are non-empty strings.")
        lowered = key.lower()
        if lowered in RESERVED_DATA_KEYS or lowered.startswith(RESERVED_DATA_PREFIXES):
            raise MessageInvalid(
                "data",
                f"'{key}' is reserved by FCM (from, message_type and keys "
                "starting with google or gcm cannot be used).",
            )
        if not isinstance(value, str):
            raise MessageInvalid("data", f"The value of '{key}' must be a string.")
    # The whole message must fit in MESSAGE_MAX_BYTES; data alone that does not never will.
    size = sum(len(key.encode()) + len(value.encode()) for key, value in data.items())
    if size > MESSAGE_MAX_BYTES:
        raise MessageInvalid(
            "data", f"The data payload is {size} bytes; a message is at most {MESSAGE_MAX_BYTES}."
        )
    return data


def message_size(message: dict[str, Any]) -> int:
    """The payload size as FCM counts it: the serialized message, keys and values."""
    return len(json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def _get(mapping: dict, *names: str) -> Any:
    """Proto3 JSON: FCM accepts snake_case and camelCase field names alike."""
    for name in names:
        if name in mapping:
            return mapping[name]
    return None


def validate_message(message: dict[str, Any]) -> int:
    """Validate a full FCM v1 `message` object; return its size in bytes."""
    if not isinstance(message, dict):
        raise MessageInvalid("message", "The message must be an object.")
    targets = [target for target in TARGETS if message.get(target)]
    if len(targets) != 1:
        raise MessageInvalid("target", "A message has exactly one of token, topic or condition.")
    (target,) = targets
    if target == "topic":
        validate_topic(message["topic"])
    elif target == "condition":
        validate_condition(message["condition"])
    elif not isinstance(message["token"], str):
        raise MessageInvalid("token", "The registration token must be a string.")
    if "data" in message:
        validate_data(message["data"])
    _validate_android(message.get("android") or {})
    _validate_apns(message.get("apns") or {})
    _validate_webpush(message.get("webpush") or {})
    options = _get(message, "fcm_options", "fcmOptions") or {}
    label = _get(options, "analytics_label", "analyticsLabel")
    if label is not None:
        validate_analytics_label(label)
    size = message_size(message)
    limit = MESSAGE_MAX_BYTES if target == "token" else TOPIC_MESSAGE_MAX_BYTES
    if size > limit:
        raise MessageInvalid(
            "message",
            f"The message is {size} bytes; FCM allows {limit} bytes for "
            f"{'a device' if target == 'token' else 'topic and condition'} messages.",
        )
    return size


def _ttl_seconds(raw: Any, field: str) -> int:
    match = re.fullmatch(r"(\d+)(?:\.\d{1,9})?s", raw) if isinstance(raw, str) else None
    if match is None:
        raise MessageInvalid(field, "A duration such as '3600s'.")
    return validate_ttl(int(match.group(1)))


def _validate_android(android: dict) -> None:
    priority = android.get("priority")
    if priority is not None and str(priority).upper() not in {"NORMAL", "HIGH"}:
        raise MessageInvalid("android.priority", "NORMAL or HIGH.")
    if android.get("ttl") is not None:
        _ttl_seconds(android["ttl"], "android.ttl")
    if "data" in android:
        validate_data(android["data"])
    options = _get(android, "fcm_options", "fcmOptions") or {}
    label = _get(options, "analytics_label", "analyticsLabel")
    if label is not None:
        validate_analytics_label(label)


def _validate_apns(apns: dict) -> None:
    headers = apns.get("headers") or {}
    priority = headers.get("apns-priority")
    if priority is not None and priority not in {"5", "10"}:
        raise MessageInvalid("apns.headers.apns-priority", "'5' or '10'.")
    expiration = headers.get("apns-expiration")
    if expiration is not None and not (isinstance(expiration, str) and expiration.isdigit()):
        raise MessageInvalid("apns.headers.apns-expiration", "Epoch seconds, as a string.")
    collapse_id = headers.get("apns-collapse-id")
    if collapse_id is not None and len(str(collapse_id).encode()) > APNS_COLLAPSE_ID_MAX_BYTES:
        raise MessageInvalid(
            "apns.headers.apns-collapse-id", f"At most {APNS_COLLAPSE_ID_MAX_BYTES} bytes."
        )
    options = _get(apns, "fcm_options", "fcmOptions") or {}
    label = _get(options, "analytics_label", "analyticsLabel")
    if label is not None:
        validate_analytics_label(label)


def _validate_webpush(webpush: dict) -> None:
    headers = webpush.get("headers") or {}
    ttl = headers.get("TTL")
    if ttl is not None:
        if not (isinstance(ttl, str) and ttl.isdigit()):
            raise MessageInvalid("webpush.headers.TTL", "Seconds, as a string.")
        validate_ttl(int(ttl))
    if "data" in webpush:
        validate_data(webpush["data"])
    options = _get(webpush, "fcm_options", "fcmOptions") or {}
    link = options.get("link")
    if link is not None and not str(link).startswith("https://"):
        raise MessageInvalid("webpush.fcm_options.link", "Web push links must use https.")
