import pytest

from notifications.testing import MailCatcher, Platform, WebhookReceiver


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
