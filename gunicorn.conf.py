"""gunicorn settings for containers and production. Every value can be overridden by the
environment (WEB_CONCURRENCY, PORT, GUNICORN_*), as gunicorn itself allows."""

import os

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 20
keepalive = 5
# Recycle workers now and then so a slow leak can never take a process down; rarely, for
# a new worker imports the whole application again (~1.5 s of CPU here) and then plans and
# compiles its statements afresh: every 2,000 requests that was a recycle every ~8 s per
# worker under load (~10 % of the CPU). 50,000 is minutes at full load, days when quiet.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "50000"))
max_requests_jitter = max_requests // 10
# Our own middleware writes one JSON line per request; gunicorn's access log would repeat it.
accesslog = None
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


def on_starting(server):
    # Prometheus multiprocess mode: the web server's own directory, emptied (stale files
    # would add the previous run's counts). Other process groups have directories of their own.
    from apps.common.multiproc import start_metrics_dir

    start_metrics_dir()


def child_exit(server, worker):
    # Prometheus multiprocess mode: forget the metrics files of a worker that has gone.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def post_worker_init(worker):
    # The worker has loaded the application: load its URLconf too (every view, serializer
    # and schema module), then take everything loaded so far out of the cyclic garbage
    # collector's sight (gc.freeze). These ~180,000 objects live as long as the worker, yet
    # every full collection traversed them all: ~20% of a worker's CPU under load (perf).
    import gc

    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 (imports the URLconf)
    gc.collect()
    gc.freeze()
