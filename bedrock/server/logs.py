"""The process's log lines: text locally, one JSON object per line with LOG_FORMAT=json (the container's default).

A JSON line: `{"timestamp", "level", "logger", "message"}`, then what is known where it was logged — the turn's
`session_id`, `run_id`, `trace_id`, `span_id` (set where the turn runs: bedrock/core/telemetry.py), the
AgentCore `request_id` — and `exc_info` for an exception. Our loggers, uvicorn's and the AgentCore SDK's all
write it, so a log query sees one shape. No prompt or answer is logged at INFO or above (tests/server/test_logs.py).
"""

from __future__ import annotations

import logging
from typing import Any

from bedrock_agentcore.runtime.context import BedrockAgentCoreContext  # loaded by the app anyway

from bedrock.config import Settings
from bedrock.core.correlation import LOG_FIELDS

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Loggers that bring their own handlers: they are given our format too.
FOREIGN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "bedrock_agentcore.app")


class TurnFields(logging.Filter):
    """Puts the turn's ids (and AgentCore's request id) on each record, for the JSON formatter to write."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = LOG_FIELDS.get()
        if fields:
            for name, value in fields.items():
                if not hasattr(record, name):
                    setattr(record, name, value)
        request_id = _agentcore_request_id()
        if request_id and not hasattr(record, "request_id"):
            record.request_id = request_id
        return True


def _agentcore_request_id() -> str | None:
    return BedrockAgentCoreContext.get_request_id()


def formatter(log_format: str) -> logging.Formatter:
    """The formatter of LOG_FORMAT (`text` or `json`)."""
    if log_format != "json":
        return logging.Formatter(TEXT_FORMAT)
    # Imported for JSON only: local runs (text) do not pay its import.
    from pythonjsonlogger.json import JsonFormatter

    return JsonFormatter("{levelname}{name}{message}", style="{", timestamp=True,
                         rename_fields={"levelname": "level", "name": "logger"})


def json_formatter() -> logging.Formatter:
    """For uvicorn's `log_config` (a factory it can name)."""
    return formatter("json")


def process_handler(settings: Settings) -> logging.Handler:
    """The handler our loggers write through (stderr)."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(settings.log_format))
    handler.addFilter(TurnFields())
    return handler


def adopt_foreign_loggers(settings: Settings) -> None:
    """Give the handlers uvicorn and the AgentCore SDK installed our JSON format (LOG_FORMAT=json only)."""
    if settings.log_format != "json":
        return
    for name in FOREIGN_LOGGERS:
        for handler in logging.getLogger(name).handlers:
            handler.setFormatter(formatter("json"))
            if not any(isinstance(f, TurnFields) for f in handler.filters):
                handler.addFilter(TurnFields())


def uvicorn_log_config(settings: Settings) -> dict[str, Any] | None:
    """uvicorn's `log_config` for LOG_FORMAT=json (None: uvicorn's own, for text)."""
    if settings.log_format != "json":
        return None
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr",
               "filters": ["turn"]}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "bedrock.server.logs.json_formatter"}},
        "filters": {"turn": {"()": "bedrock.server.logs.TurnFields"}},
        "handlers": {"default": handler, "access": {**handler, "stream": "ext://sys.stdout"}},
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
            "uvicorn.error": {"level": "INFO"},
            "uvicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
        },
    }
