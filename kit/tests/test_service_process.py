"""ServiceProcess, the way tests run a service: never with the developer's mail settings."""
import socket

from verbund.testing import ServiceProcess


def test_a_service_process_mails_nobody_unless_given_a_mail_catcher(monkeypatch, tmp_path):
    # `make run` has a mail catcher on 8025 that a person reads; a test's mail must never land there.
    monkeypatch.setenv("SMTP_PORT", "8025")
    monkeypatch.setenv("NOTIFICATIONS_SMTP_PORT", "8025")
    monkeypatch.setenv("SMTP_HOST", "mail.example.org")
    process = ServiceProcess("notifications", "amqp://guest:guest@127.0.0.1:5672/", "sqlite://", tmp_path)
    assert process.env["SMTP_HOST"] == "127.0.0.1" and process.env["SMTP_PORT"] != "8025"
    assert "NOTIFICATIONS_SMTP_PORT" not in process.env
    with socket.socket() as probe:  # nothing listens there: a mail is refused, not delivered
        assert probe.connect_ex(("127.0.0.1", int(process.env["SMTP_PORT"]))) != 0

    own = ServiceProcess("notifications", "amqp://guest:guest@127.0.0.1:5672/", "sqlite://", tmp_path,
                         env={"SMTP_PORT": "41025"})
    assert own.env["SMTP_PORT"] == "41025"
