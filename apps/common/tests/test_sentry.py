from apps.common.sentry import scrub


def test_scrub_removes_pii_bodies_and_secrets():
    event = {
        "user": {"email": "a@b.c", "ip_address": "1.2.3.4"},
        "request": {
            "url": "https://api/x",
            "headers": {"Authorization": "Bearer abc", "X-Request-ID": "r1"},
            "cookies": {"sessionid": "s"},
            "data": {"password": "p"},
        },
        "extra": {"service_account": {"private_key": "k"}, "count": 3},
    }
    scrubbed = scrub(event)
    assert "user" not in scrubbed
    assert scrubbed["request"]["headers"] == {"Authorization": "[redacted]", "X-Request-ID": "r1"}
    assert "cookies" not in scrubbed["request"] and "data" not in scrubbed["request"]
    assert scrubbed["extra"] == {"service_account": "[redacted]", "count": 3}
