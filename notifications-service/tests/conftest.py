import pytest

from notifications.testing import MailCatcher, WebhookReceiver


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
