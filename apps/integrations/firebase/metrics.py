"""The FCM client's metrics (discovered by apps/common/metrics.py, as every app's `metrics`)."""

from prometheus_client import Counter, Gauge, Histogram

fcm_requests = Counter(
    "fcm_requests_total", "Requests to FCM messages:send by outcome.", ["outcome"]
)
fcm_latency = Histogram(
    "fcm_request_duration_seconds",
    "Latency of FCM messages:send requests.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
fcm_in_flight = Gauge("fcm_sends_in_flight", "FCM requests under way.", multiprocess_mode="livesum")
fcm_subscription_changes = Counter(
    "fcm_subscription_changes_total",
    "Tokens in topic subscription changes, by API (v1 or iid), action and outcome.",
    ["api", "action", "outcome"],
)
