"""The request id (and workspace) travel with every Celery task a request enqueues, so a
task's log lines and audit rows point back at the request that caused them."""

import structlog
from celery import signals

from apps.common.context import request_id_var

TRACE_HEADERS = ("request_id", "workspace_id")
# task_id -> (the context to restore, the request-id token). Keyed by task id, not stored on
# the task object: one task object serves every thread of a threaded worker.
_saved: dict = {}


@signals.before_task_publish.connect
def add_trace_headers(headers=None, **_):
    if headers is None:
        return
    context = structlog.contextvars.get_contextvars()
    for key in TRACE_HEADERS:
        if context.get(key) and key not in headers:
            headers[key] = str(context[key])


@signals.task_prerun.connect
def bind_trace_context(task=None, task_id=None, **_):
    # Eager tasks run inside the request: keep its context and put it back afterwards.
    saved = structlog.contextvars.get_contextvars()
    request = task.request
    fields = {key: getattr(request, key, None) for key in TRACE_HEADERS}
    fields = {key: value for key, value in fields.items() if value}
    structlog.contextvars.bind_contextvars(task=task.name, task_id=task_id, **fields)
    token = request_id_var.set(fields["request_id"]) if "request_id" in fields else None
    _saved[task_id] = (saved, token)


@signals.task_postrun.connect
def restore_trace_context(task_id=None, **_):
    saved, token = _saved.pop(task_id, ({}, None))
    if token is not None:
        request_id_var.reset(token)
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(**saved)
