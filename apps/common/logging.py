"""JSON log lines through structlog, for our own loggers and the standard library's alike.

Secrets never reach a log line: `redact` blanks any value whose key looks sensitive,
at any depth, before rendering.
"""

import re
from typing import Any

import structlog

SENSITIVE_KEY = re.compile(
    r"pass(word)?|token|secret|authorization|api[_-]?key|private[_-]?key|service[_-]?account"
    r"|credential|cookie|session|signature|assertion",
    re.IGNORECASE,
)
REDACTED = "[redacted]"


def redact_value(key: str, value: Any) -> Any:
    if isinstance(key, str) and SENSITIVE_KEY.search(key):
        return REDACTED
    if isinstance(value, dict):
        return {k: redact_value(k, v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value("", v) for v in value]
    return value


def redact(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    return {key: redact_value(key, value) for key, value in event_dict.items()}


SHARED_PROCESSORS: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
    redact,
]

structlog.configure(
    processors=[
        structlog.stdlib.filter_by_level,
        *SHARED_PROCESSORS,
        structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
    ],
    logger_factory=structlog.stdlib.LoggerFactory(),
    wrapper_class=structlog.stdlib.BoundLogger,
    cache_logger_on_first_use=True,
)


class ProcessorFormatter(structlog.stdlib.ProcessorFormatter):
    """logging.Formatter for dictConfig: `format` is "json" (default) or "console"."""

    def __init__(self, format: str = "json", **kwargs: Any) -> None:
        renderer = (
            structlog.dev.ConsoleRenderer()
            if format == "console"
            else structlog.processors.JSONRenderer()
        )
        super().__init__(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
            foreign_pre_chain=SHARED_PROCESSORS,
            **kwargs,
        )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)
