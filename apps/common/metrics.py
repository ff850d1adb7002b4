"""Prometheus metrics: the `/metrics` view, the registry it serves, and per-request metrics.

Under gunicorn each worker is a process with its own counters. When the environment
variable PROMETHEUS_MULTIPROC_DIR is set, prometheus_client writes every metric to files
there, named by process id, and `/metrics` sums the files (gunicorn.conf.py's child_exit
marks a gone worker dead). Without it the process's own default registry is served.

Each process group — the web server, a Celery worker, a dispatcher — has a directory of its
own, which it empties when it starts (`start_metrics_dir`): in containers every main
process is PID 1, so groups sharing one directory would write the same files, and one
group's start would delete the others' counts. `/metrics` merges its own directory with
those listed in METRICS_MERGE_DIRS (comma-separated), as `make run` and compose set them.

Optional protection: METRICS_TOKEN set -> `Authorization: Bearer <token>` is required.
"""

import functools
import glob
import hmac
import importlib
import os
import time

from django.conf import settings
from django.db import transaction
from django.http import HttpResponse
from django.utils.module_loading import autodiscover_modules
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

from apps.common.exceptions import error_response
from apps.common.middleware import route_template
from apps.common.multiproc import MULTIPROC_ENV

http_requests_total = Counter(
    "http_requests_total",
    "HTTP requests, by method, route template and status.",
    ["method", "route", "status"],
)
http_request_duration_seconds = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency, by method and route template.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
# Unmatched paths share one label, and unknown methods another: raw values would make the
# label sets unbounded.
UNMATCHED = "<unmatched>"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@functools.cache  # once per process: the modules stay imported
def _load_metric_modules() -> None:
    """Every app's `metrics` module, imported before a scrape so that each metric is listed
    even before it is first used (in multiprocess mode the files are the source; this is for
    one process). Discovered, so the ground floor names no app."""
    importlib.import_module("apps.common.cache")
    autodiscover_modules("metrics")


def registry() -> CollectorRegistry:
    """What `/metrics` serves: every process's files in multiprocess mode (this group's and
    the merged groups'), else this process."""
    path = os.environ.get(MULTIPROC_ENV)
    if not path:
        return REGISTRY
    merged = settings.METRICS_MERGE_DIRS
    collected = CollectorRegistry()
    collected.register(_Files(dict.fromkeys([path, *merged])))
    return collected


class _Files:
    """The metric files of several directories, summed as one multiprocess collection."""

    def __init__(self, directories) -> None:
        self.directories = directories

    def collect(self):
        files = [f for d in self.directories for f in glob.glob(os.path.join(d, "*.db"))]
        return multiprocess.MultiProcessCollector.merge(files, accumulate=True)


@transaction.non_atomic_requests  # reads no table
def metrics_view(request):
    token = settings.METRICS_TOKEN
    if token:
        header = request.headers.get("Authorization", "")
        if not header:
            return _unauthorized("NOT_AUTHENTICATED", "Send Authorization: Bearer <token>.")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), token.encode()
        ):
            return _unauthorized("AUTHENTICATION_FAILED", "Wrong metrics token.")
    _load_metric_modules()
    return HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)


def _unauthorized(code: str, message: str):
    response = error_response(code, message, 401)
    response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response


class MetricsMiddleware:
    """Counts and times every request by route template (`api/v1/campaigns/<campaign_id>`)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        route = route_template(request) or UNMATCHED
        method = request.method if request.method in METHODS else "OTHER"
        http_request_duration_seconds.labels(method, route).observe(time.perf_counter() - started)
        http_requests_total.labels(method, route, str(response.status_code)).inc()
        return response
