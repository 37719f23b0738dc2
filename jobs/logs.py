"""Logging set-up shared by API and workers: every line of a job carries its generation id."""

from __future__ import annotations

import contextvars
import json
import logging
import time

from settings import redact_userinfo

__all__ = ["configure_logging", "generation_context"]

_generation: contextvars.ContextVar[str] = contextvars.ContextVar("generation_id", default="-")


def generation_context(generation_id: object) -> contextvars.Token[str]:
    """Tag every log line of the current task (and tasks it starts) with this generation."""
    return _generation.set(str(generation_id))


class _GenerationFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.generation_id = _generation.get()
        return True


class _UvicornNameFilter(logging.Filter):
    """uvicorn logs its start, stop and every other message as "uvicorn.error": name it "uvicorn" for operators."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "uvicorn.error":
            record.name = "uvicorn"
        return True


class _RedactFilter(logging.Filter):
    """No URL's `user:password@` reaches a log line (backend URLs may carry them), tracebacks included."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_userinfo(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact_userinfo(self._formatter.formatException(record.exc_info))
        return True


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(record.created, 6),
            "level": record.levelname,
            "logger": record.name,
            "generation_id": getattr(record, "generation_id", "-"),
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)  # redacted by the filter
        return json.dumps(entry)


def configure_logging(level: str, *, json_lines: bool = False) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(_GenerationFilter())
    handler.addFilter(_UvicornNameFilter())
    handler.addFilter(_RedactFilter())
    if json_lines:
        handler.setFormatter(_JsonFormatter())
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(generation_id)s] %(message)s")
        formatter.converter = time.gmtime
        handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per ComfyUI request is noise
    # uvicorn's own config (when something ran it with its default log_config) gives its loggers handlers and
    # stops propagation; ours is the one configuration, so they go through the root handler above.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
        uvicorn_logger.setLevel(logging.NOTSET)
