import pytest

from apps.integrations.firebase.messages import DeliveryOptions, PushContent, build_message
from apps.integrations.firebase.validation import (
    MessageInvalid,
    message_size,
    validate_analytics_label,
    validate_condition,
    validate_data,
    validate_message,
    validate_topic,
    validate_ttl,
)


@pytest.mark.parametrize("topic", ["news", "a-b_c.d~e%f", "X" * 900])
def test_valid_topics(topic):
    assert validate_topic(topic) == topic


@pytest.mark.parametrize("topic", ["", "/topics/news", "has space", "émoji", "a/b", "X" * 901])
def test_invalid_topics(topic):
    with pytest.raises(MessageInvalid) as info:
        validate_topic(topic)
    assert info.value.field == "topic"


@pytest.mark.parametrize(
    "condition,topics",
    [
        ("'a' in topics", ["a"]),
        ("'a' in topics && ('b' in topics || 'c' in topics)", ["a", "b", "c"]),
        ("!('a' in topics) && \"b\" in topics", ["a", "b"]),
        ("'a' in topics||'b' in topics", ["a", "b"]),
        (
            "'1' in topics && '2' in topics && '3' in topics && '4' in topics && '5' in topics",
            ["1", "2", "3", "4", "5"],
        ),
    ],
)
def test_valid_conditions(condition, topics):
    assert validate_condition(condition) == topics


@pytest.mark.parametrize(
    "condition",
    [
        "",
        "'a' in topics &&",
        "('a' in topics",
        "'a' in topics)",
        "'a' in topics and 'b' in topics",
        "'a b' in topics",
        "a in topics",
        "'a' in topics && && 'b' in topics",
        "'1' in topics && '2' in topics && '3' in topics && '4' in topics && '5' in topics || '6' in topics",
    ],
)
def test_invalid_conditions(condition):
    with pytest.raises(MessageInvalid) as info:
        validate_condition(condition)
    assert info.value.field == "condition"


def test_field_rules():
    assert validate_analytics_label("spring_sale-2026") == "spring_sale-2026"
    for label in ("", "x" * 51, "no spaces"):
        with pytest.raises(MessageInvalid):
            validate_analytics_label(label)
    assert validate_ttl(0) == 0 and validate_ttl(2_419_200) == 2_419_200
    for ttl in (-1, 2_419_201, "60", True):
        with pytest.raises(MessageInvalid):
            validate_ttl(ttl)
    assert validate_data({"screen": "home"}) == {"screen": "home"}
    for data in ({"from": "x"}, {"message_type": "x"}, {"google.x": "y"}, {"GCM_x": "y"}, {"n": 1}):
        with pytest.raises(MessageInvalid):
            validate_data(data)


def test_the_builder_maps_every_option():
    message = build_message(
        topic="news",
        content=PushContent(
            title="Hello", body="World", image_url="https://img.example/a.png",
            data={"screen": "home"}, link="https://example.com/x", analytics_label="spring",
        ),
        options=DeliveryOptions(priority="normal", ttl_seconds=3600, collapse_key="promo",
                                android_channel_id="offers", sound="default", badge=2),
        collapse_id="0d6f7b8e-1111-2222-3333-444455556666",
        now_epoch=1_700_000_000,
    )  # fmt: skip
    assert message["topic"] == "news"
    assert message["notification"] == {
        "title": "Hello",
        "body": "World",
        "image": "https://img.example/a.png",
    }
    assert message["data"] == {"screen": "home", "link": "https://example.com/x"}
    assert message["android"] == {
        "priority": "NORMAL", "ttl": "3600s", "collapse_key": "promo",
        "notification": {"tag": "0d6f7b8e111122223333444455556666", "channel_id": "offers", "sound": "default"},
    }  # fmt: skip
    assert message["apns"]["headers"] == {
        "apns-priority": "5", "apns-expiration": "1700003600",
        "apns-collapse-id": "0d6f7b8e111122223333444455556666",
    }  # fmt: skip
    assert message["apns"]["payload"]["aps"] == {
        "sound": "default",
        "badge": 2,
        "mutable-content": 1,
    }
    assert message["webpush"] == {
        "headers": {"TTL": "3600", "Topic": "0d6f7b8e111122223333444455556666"},
        "fcm_options": {"link": "https://example.com/x"},
    }
    assert message["fcm_options"] == {"analytics_label": "spring"}


def test_size_limits_depend_on_the_target():
    def message_of(size: int, **target) -> dict:
        base = {**target, "notification": {"title": "t", "body": ""}}
        base["notification"]["body"] = "x" * (size - message_size(base))
        assert message_size(base) == size
        return base

    validate_message(message_of(2048, topic="news"))
    with pytest.raises(MessageInvalid, match="2049 bytes"):
        validate_message(message_of(2049, topic="news"))
    with pytest.raises(MessageInvalid):
        validate_message(message_of(2049, condition="'a' in topics"))
    validate_message(message_of(4096, token="device-token"))
    with pytest.raises(MessageInvalid):
        validate_message(message_of(4097, token="device-token"))


def test_exactly_one_target_and_camel_case_accepted():
    with pytest.raises(MessageInvalid):
        validate_message({"topic": "a", "token": "b"})
    with pytest.raises(MessageInvalid):
        validate_message({"notification": {"title": "x"}})
    with pytest.raises(MessageInvalid):
        validate_message({"topic": "a", "fcmOptions": {"analyticsLabel": "bad label"}})
    assert validate_message({"topic": "a", "fcmOptions": {"analyticsLabel": "ok"}}) > 0
    with pytest.raises(MessageInvalid):
        build_message(
            content=PushContent(title="t", body="b"), topic="a", condition="'b' in topics"
        )
    with pytest.raises(MessageInvalid):
        build_message(content=PushContent(title="t", body="b", data={"from": "x"}), topic="a")
