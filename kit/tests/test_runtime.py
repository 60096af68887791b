"""The runtime core on its own: it imports without pytest (the ``testing`` extra is optional),
and the helpers services share (topic matching, If-Match, UTC datetimes, settings, readiness)."""
import json
import subprocess
import sys
import warnings
from datetime import UTC, datetime, timedelta, timezone

import pytest
from environs import EnvError
from sqlalchemy import Column, Integer, MetaData, Table, create_engine, insert, select
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from verbund.broker import topic_matches
from verbund.database import UTCDateTime
from verbund.errors import BadRequest, ServiceUnavailable
from verbund.service import ServiceBase
from verbund.settings import Settings, env
from verbund.web import if_match

RUNTIME = ["verbund.service", "verbund.subscriber", "verbund.database", "verbund.web", "verbund.broker",
           "verbund.outbox", "verbund.envelope", "verbund.catalogue", "verbund.migrations", "verbund.settings",
           "verbund.auth", "verbund.personal", "verbund.openapi"]

BLOCK_PYTEST = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "pytest" or name.startswith(("pytest.", "_pytest")):
            raise ImportError(f"{name} is blocked: the runtime must not need it")
sys.meta_path.insert(0, Block())
"""


def test_the_runtime_imports_without_pytest():
    code = BLOCK_PYTEST + "".join(f"import {module}\n" for module in RUNTIME) + \
        "assert not any(m == 'pytest' or m.startswith('_pytest') for m in sys.modules)\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env={"PYTHONNOUSERSITE": "1", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    blocked = subprocess.run([sys.executable, "-c", BLOCK_PYTEST + "import verbund.testing"],
                             capture_output=True, text=True, timeout=120)
    assert "pytest is blocked" in blocked.stderr  # the finder does block: the first check means something


@pytest.mark.parametrize("pattern, routing_key, expected", [
    ("member.*", "member.registered", True), ("member.#", "member.registered", True), ("member.#", "member", True),
    ("event.#", "registration.confirmed", False), ("a.*", "a.b.c", False), ("#", "a.b.c", True),
    ("*.b.*", "a.b.c", True), ("member.registered", "member.*", False), ("*", "", True), ("#.c", "a.b.c", True),
])
def test_topic_matching_as_rabbitmq_does_it(pattern, routing_key, expected):
    assert topic_matches(pattern, routing_key) is expected


def _request(**headers) -> Request:
    return Request(EnvironBuilder(headers=headers).get_environ())


@pytest.mark.parametrize("header, version", [('"3"', 3), ('W/"12"', 12), (" 7 ", 7), (None, None), ("", None)])
def test_if_match_reads_the_version_an_etag_names(header, version):
    assert if_match(_request(**({"If-Match": header} if header is not None else {}))) == version


def test_an_if_match_that_is_no_etag_of_ours_is_a_bad_request():
    with pytest.raises(BadRequest, match="If-Match must be an ETag"):
        if_match(_request(**{"If-Match": '"abc"'}))


def test_the_utc_column_hands_back_aware_utc_datetimes_and_refuses_naive_ones():
    engine = create_engine("sqlite://")
    table = Table("t", MetaData(), Column("id", Integer, primary_key=True), Column("at", UTCDateTime))
    table.metadata.create_all(engine)
    berlin = datetime(2026, 12, 6, 14, 0, tzinfo=timezone(timedelta(hours=1)))
    with engine.begin() as conn:
        conn.execute(insert(table).values(id=1, at=berlin))
        assert conn.execute(select(table.c.at)).scalar_one() == datetime(2026, 12, 6, 13, 0, tzinfo=UTC)
        assert conn.execute(select(table.c.at)).scalar_one().tzinfo is UTC
        with pytest.raises(Exception, match="naive datetimes are not stored"):
            conn.execute(insert(table).values(id=2, at=datetime(2026, 12, 6, 14, 0)))


def test_service_unavailable_is_a_503():
    assert ServiceUnavailable("engine loading").status == 503


def test_a_per_service_variable_wins_and_a_malformed_one_names_itself(monkeypatch):
    monkeypatch.setenv("MAX_WORKERS", "4")
    assert env("MAX_WORKERS", 10, service="members", kind="int") == 4
    monkeypatch.setenv("MEMBERS_MAX_WORKERS", "6")
    assert env("MAX_WORKERS", 10, service="members", kind="int") == 6
    assert env("MAX_WORKERS", 10, service="events", kind="int") == 4
    monkeypatch.setenv("MEMBERS_MAX_WORKERS", "")  # empty counts as unset, as before
    assert Settings.from_env("members").max_workers == 4
    monkeypatch.setenv("RETRY_DELAYS_MS", "100, 200")
    assert Settings.from_env("members").retry_delays_ms == (100, 200)
    monkeypatch.setenv("EVENTS_MAX_WORKERS", "many")
    with pytest.raises(EnvError, match="EVENTS_MAX_WORKERS"):
        Settings.from_env("events")


def test_a_renamed_variable_keeps_working_under_its_old_name_with_a_warning(monkeypatch):
    monkeypatch.delenv("AMQP_HEARTBEAT_SECONDS", raising=False)
    monkeypatch.setenv("AMQP_HEARTBEAT", "12")
    with pytest.warns(DeprecationWarning, match="AMQP_HEARTBEAT is deprecated: set AMQP_HEARTBEAT_SECONDS"):
        assert Settings.from_env("members").heartbeat_seconds == 12
    monkeypatch.setenv("MEMBERS_AMQP_HEARTBEAT_SECONDS", "20")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new name is read first, without a warning
        assert Settings.from_env("members").heartbeat_seconds == 20
    assert "HEARTBEAT" in json.dumps(Settings.from_env("members").nameko_config(), default=str)


class _Probe(ServiceBase):
    name = "probe"

    def readiness_checks(self):
        return {"database": "ok", "engine": "loading"}


def test_ready_answers_from_the_readiness_checks_hook():
    response = ServiceBase.ready(_Probe(), _request())
    assert response.status_code == 503
    assert json.loads(response.get_data()) == {"service": "probe", "ready": False,
                                               "checks": {"database": "ok", "engine": "loading"}}


def test_verbund_up_starts_what_a_service_declares_and_names_no_service_itself():
    from pathlib import Path

    from verbund.tools import cli

    assert ServiceBase.companions() == []
    source = Path(cli.__file__).read_text()
    assert "mailcatcher" not in source and "\"companions\"" in source  # the hook, not a service by name
