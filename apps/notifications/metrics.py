from prometheus_client import Counter, Gauge, Histogram

notifications_sent_total = Counter("notifications_sent_total", "Notifications FCM accepted.")
notifications_failed_total = Counter(
    "notifications_failed_total", "Notifications that failed for good.", ["error_code"]
)
# The names keep "jobs" from before deliveries existed: dashboards use them. They count
# deliveries.
jobs_claimed_total = Counter("jobs_claimed_total", "Deliveries claimed by a dispatcher.")
jobs_reclaimed_total = Counter(
    "jobs_reclaimed_total", "Deliveries returned to pending after their lease expired."
)
dispatch_lateness_seconds = Histogram(
    "dispatch_lateness_seconds",
    "How late a delivery's sending started, relative to its run_at.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600),
)
claim_to_send_seconds = Histogram(
    "claim_to_send_seconds",
    "From a dispatcher's claim to a worker starting the delivery (queue wait).",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
delivery_batch_size = Histogram(
    "delivery_batch_size",
    "Deliveries a worker started from one batch message.",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)
dispatch_backlog = Gauge(
    "dispatch_backlog",
    "Deliveries claimed and waiting for a worker, as the dispatcher last counted.",
    multiprocess_mode="mostrecent",
)
scheduler_errors_total = Counter(
    "scheduler_errors_total", "Dispatcher loop rounds that failed (and were retried).", ["error"]
)
