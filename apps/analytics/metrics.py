"""Analytics metrics (process-local, or aggregated across gunicorn workers when
PROMETHEUS_MULTIPROC_DIR is set; see apps.common.metrics)."""

from prometheus_client import Counter

# Custom conversions are reported as type="conversion": their names are app-defined and
# would make the label set unbounded.
events_ingested_total = Counter(
    "events_ingested_total", "App events accepted by POST /events, by type.", ["type"]
)
events_discarded_total = Counter(
    "events_discarded_total",
    "App events not stored: reason=duplicate (an id seen before) or invalid.",
    ["reason"],
)
