"""One log format for every StreamRec process: the CLI, the API under uvicorn (access log included) and dbt.

Settings `log_format` / `log_level` (STREAMREC_LOG_FORMAT, STREAMREC_LOG_LEVEL or streamrec.toml):
`text` (default) writes `2026-03-01T12:00:00.123Z INFO streamrec.api: message`
lines to stderr; `STREAMREC_LOG_FORMAT=json` writes one JSON object per line (`ts`, `level`, `logger`,
`message`, plus any `extra` fields) for log shippers, via python-json-logger, and makes dbt runs use
dbt's own JSON lines (`--log-format json`). The level defaults to INFO.

Litestar's and uvicorn's own logging setups are not used (they were the two formats a server log used
to mix); their loggers propagate to the one root handler configured here. faiss's loader logs seven
INFO lines on every import about the AVX512/AVX2 builds it could not find; they are dropped (a real
failure to load faiss is an ImportError, not a log line).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from streamrec.core.settings import load_settings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"
QUIET = {
    "faiss.loader": logging.WARNING,
    "alembic.runtime.plugins": logging.WARNING,  # one "setup plugin" line per alembic plugin at every init
    "httpx": logging.WARNING,
    "httpcore": logging.WARNING,
}


def _utc(record: logging.LogRecord) -> str:
    """The record's time as ISO 8601 UTC with milliseconds (`2026-03-01T12:00:00.123Z`)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


class _UtcFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 - logging API
        return _utc(record)


class _JsonUtcFormatter(JsonFormatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 - logging API
        return _utc(record)

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        """Drop uvicorn's `color_message` (the message again, with terminal colour codes)."""
        log_data.pop("color_message", None)
        return log_data


def log_format(env: Mapping[str, str] | None = None) -> str:
    """`text` or `json`: the effective `log_format` setting (STREAMREC_LOG_FORMAT, streamrec.toml, default)."""
    return load_settings(env).log_format


def formatter(fmt: str) -> logging.Formatter:
    """The formatter every handler uses for `fmt` (`text` or `json`)."""
    if fmt == "json":
        return _JsonUtcFormatter(JSON_FIELDS, rename_fields={"asctime": "ts", "levelname": "level", "name": "logger"})
    return _UtcFormatter(TEXT_FORMAT)


def configure_logging(env: Mapping[str, str] | None = None) -> str:
    """Route every logger to one stderr handler in the chosen format; returns the format. Idempotent.

    A bad STREAMREC_LOG_FORMAT or STREAMREC_LOG_LEVEL is a StreamRecError naming the variable.
    """
    settings = load_settings(env)
    fmt, level = settings.log_format, settings.log_level
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(fmt))
    handler.set_name("streamrec")
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name, quiet in QUIET.items():
        logging.getLogger(name).setLevel(quiet)
    return fmt


def uvicorn_log_config(access_log: bool) -> dict[str, Any]:
    """A uvicorn `log_config` that adds no handler of its own: uvicorn's records reach the root handler."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "loggers": {
            "uvicorn": {"level": "INFO", "propagate": True, "handlers": []},
            "uvicorn.error": {"level": "INFO", "propagate": True, "handlers": []},
            "uvicorn.access": {"level": "INFO" if access_log else "WARNING", "propagate": True, "handlers": []},
        },
    }


def dbt_log_args(env: Mapping[str, str] | None = None) -> list[str]:
    """dbt's `--log-format json` when StreamRec logs JSON (dbt's text lines are its own otherwise)."""
    return ["--log-format", "json"] if log_format(env) == "json" else []
