"""Campaign metrics. prometheus_client counters are process-local unless
PROMETHEUS_MULTIPROC_DIR is set, in which case the client aggregates across gunicorn
workers by itself; nothing here depends on which."""

from prometheus_client import Counter

# Exposed as `campaign_created_total{origin="create"|"duplicate"}`.
campaign_created_total = Counter(
    "campaign_created",
    "Campaigns created, by how they were created.",
    ["origin"],
)
