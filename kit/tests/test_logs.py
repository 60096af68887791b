"""Log lines: JSON for collectors, one readable line on a developer's console."""
import json
import logging

import pytest
from environs import EnvError

from verbund import logs
from verbund.settings import Settings


def _record(message, *args, exc_info=None):
    return logging.LogRecord("nameko.containers", logging.WARNING, __file__, 1, message, args, exc_info)


def _exc_info():
    try:
        raise ValueError("boom")
    except ValueError:
        import sys
        return sys.exc_info()


def test_json_lines_keep_the_traceback_for_collectors():
    line = json.loads(logs.JsonFormatter("members").format(_record("(expected) error: %s", "x", exc_info=_exc_info())))
    assert line["service"] == "members" and line["level"] == "WARNING"
    assert "ValueError: boom" in line["error"]


def test_text_lines_are_readable_and_leave_out_tracebacks_of_expected_errors():
    formatter = logs.TextFormatter("members")
    expected = formatter.format(_record("(expected) error handling worker: %s", "already registered",
                                        exc_info=_exc_info()))
    assert "members" in expected and "WARNING" in expected and "already registered" in expected
    assert "Traceback" not in expected and not expected.startswith("{")
    unexpected = formatter.format(_record("error handling worker", exc_info=_exc_info()))
    assert "ValueError: boom" in unexpected  # a real failure keeps its traceback


def test_probe_requests_are_left_out_of_the_console_but_not_other_requests():
    probes = logs._NoProbes()
    assert not probes.filter(_record('127.0.0.1 - - [x] "GET /ready HTTP/1.1" 200 271 0.05'))
    assert probes.filter(_record('127.0.0.1 - - [x] "GET /members?q=ready HTTP/1.1" 200 271 0.05'))


def test_log_format_comes_from_the_environment_and_refuses_anything_else(monkeypatch):
    monkeypatch.setenv("LOG_FORMAT", "Text")
    assert Settings.from_env("members").log_format == "text"
    monkeypatch.setenv("LOG_FORMAT", "yaml")
    with pytest.raises(EnvError, match="LOG_FORMAT"):
        Settings.from_env("members")
