from prometheus_client import Counter, Histogram

notifications_sent_total = Counter("notifications_sent_total", "Notifications FCM accepted.")
notifications_failed_total = Counter(
    "notifications_failed_total", "Notifications that failed for good.", ["error_code"]
)
jobs_claimed_total = Counter("jobs_claimed_total", "Scheduled jobs claimed by a dispatcher.")
jobs_reclaimed_total = Counter(
    "jobs_reclaimed_total", "Jobs returned to pending after their lease expired."
)
dispatch_lateness_seconds = Histogram(
    "dispatch_lateness_seconds",
    "How late a job's sending started, relative to its run_at.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600),
)
