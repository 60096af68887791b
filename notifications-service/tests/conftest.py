import pytest

from notifications.config import Config
from notifications.testing import MailCatcher, Platform, WebhookReceiver
from verbund.testing import migrated_store


@pytest.fixture(scope="module")
def mailcatcher(tmp_path_factory):
    """A real SMTP server process (aiosmtpd) on a free port, shared by a module's tests."""
    catcher = MailCatcher(tmp_path_factory.mktemp("mail"))
    yield catcher
    catcher.stop()


@pytest.fixture
def receiver():
    """A local HTTP server that receives webhooks."""
    server = WebhookReceiver()
    yield server
    server.stop()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def platform(request, infrastructure, mailcatcher, tmp_path_factory):
    """notifications-service as a real process once per database, shared by a module's tests,
    mailing to the module's mail catcher."""
    workdir = tmp_path_factory.mktemp("notifications-flow")
    url = f"sqlite:///{workdir / 'notifications.db'}" if request.param == "sqlite" \
        else request.getfixturevalue("postgres").create()
    running = Platform(workdir, url, mailcatcher.port)
    running.service.start()
    yield running
    running.close()


@pytest.fixture
def store(database_url, amqp_uri):
    """notifications' database, migrated by Alembic, on SQLite and PostgreSQL, relaying to the test's vhost."""
    with migrated_store("notifications", database_url, amqp_uri) as store:
        yield store


@pytest.fixture
def config(mailcatcher):
    """Channels that send to the module's mail catcher at once and retry twice without waiting,
    with no daily budget (the policy's own tests are in test_use_cases)."""
    return Config(smtp_port=mailcatcher.port, email_rate=1000, email_retry_delays=(0, 0),
                  webhook_retry_delays=(0, 0), webhook_timeout=2,
                  default_frequency="immediately", coalesce_seconds=0, daily_budget=0)
