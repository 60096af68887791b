"""JSON log lines with a correlation id: the event id while a consumer
handles an event, the request id while an HTTP request is served."""
from __future__ import annotations

import contextvars
import json
import logging
import sys
from datetime import UTC, datetime

_correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("correlation_id", default=None)


def set_correlation_id(value: str | None) -> None:
    _correlation_id.set(value)


def correlation_id() -> str | None:
    return _correlation_id.get()


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str):
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if correlation_id():
            line["correlation_id"] = correlation_id()
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """One readable line: ``18:20:09 notifications INFO  message [correlation id]``."""

    def __init__(self, service: str):
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        time = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        line = f"{time} {self.service:<13} {record.levelname:<7} {record.getMessage()}"
        if correlation_id():
            line += f"  [{correlation_id()}]"
        # nameko logs a mapped error (a 4xx) with its traceback as "(expected)": the line says it all.
        if record.exc_info and not record.getMessage().startswith("(expected)"):
            line += "\n" + self.formatException(record.exc_info)
        return line


class _NoProbes(logging.Filter):
    """Drops access-log lines of health probes (``verbund up`` polls ``/ready``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(f'"GET {path} ' in message for path in ("/ready", "/health", "/metrics"))


def configure(service: str, level: str = "INFO", fmt: str = "json") -> None:
    """Log lines of ``service`` to stdout at ``level``, as JSON (``fmt="json"``) or text (``"text"``)."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(TextFormatter(service) if fmt == "text" else JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # nameko's and kombu's debug chatter is not what an operator needs at INFO.
    for noisy in ("kombu", "amqp", "nameko"):
        logging.getLogger(noisy).setLevel(max(logging.getLevelName(level), logging.INFO))
    if fmt == "text":  # on a console, each migration step and probe is noise; a failing one still shows
        logging.getLogger("alembic").setLevel(max(logging.getLevelName(level), logging.WARNING))
        handler.addFilter(_NoProbes())
