"""streamrec.core.logging_setup: one handler, the chosen format, faiss's loader quiet, dbt told to log JSON too."""

from __future__ import annotations

import json
import logging

import pytest

from streamrec.batch.build import dbt_command
from streamrec.core.errors import StreamRecError
from streamrec.core.logging_setup import configure_logging, dbt_log_args, formatter
from streamrec.core.settings import Settings


@pytest.fixture(autouse=True)
def restore_root() -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _record(name: str = "streamrec.test", message: str = "hello %s", arg: str = "there") -> logging.LogRecord:
    return logging.LogRecord(name, logging.WARNING, __file__, 1, message, (arg,), None)


def test_text_and_json_formats() -> None:
    text = formatter("text").format(_record())
    assert text.endswith("Z WARNING streamrec.test: hello there") and text[4] == "-" and text[10] == "T"
    record = json.loads(formatter("json").format(_record()))
    assert record["level"] == "WARNING" and record["logger"] == "streamrec.test" and record["message"] == "hello there"
    assert record["ts"].endswith("Z")


def test_configure_installs_one_handler_and_quiets_faiss() -> None:
    configure_logging({"STREAMREC_LOG_FORMAT": "json"})
    configure_logging({"STREAMREC_LOG_FORMAT": "json"})  # idempotent: still one handler
    root = logging.getLogger()
    assert len(root.handlers) == 1 and root.level == logging.INFO
    assert not logging.getLogger("faiss.loader").isEnabledFor(logging.INFO)
    assert logging.getLogger("faiss.loader").isEnabledFor(logging.WARNING)


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"STREAMREC_LOG_FORMAT": "xml"}, "STREAMREC_LOG_FORMAT"),
        ({"STREAMREC_LOG_LEVEL": "LOUD"}, "STREAMREC_LOG_LEVEL"),
    ],
)
def test_bad_settings_are_named(env: dict[str, str], needle: str) -> None:
    with pytest.raises(StreamRecError, match=needle):
        configure_logging(env)


def test_dbt_logs_json_when_streamrec_does(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert dbt_log_args({"STREAMREC_LOG_FORMAT": "json"}) == ["--log-format", "json"]
    assert dbt_log_args({}) == []
    monkeypatch.setenv("STREAMREC_LOG_FORMAT", "json")
    command = dbt_command(Settings(home=tmp_path), ["build"])
    assert command[command.index("--log-format") + 1] == "json"
