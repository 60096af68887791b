"""ServiceProcess, the way tests run a service: never with the developer's mail settings."""
import errno
import socket
import subprocess
import sys

import eventlet
import pytest
import requests

from verbund.testing import ServiceProcess, free_port


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


def test_free_ports_are_never_handed_out_twice():
    # a probe's port is free again at once: two services started one after the other must not both get it
    ports = [free_port() for _ in range(500)]
    assert len(set(ports)) == len(ports)


@pytest.mark.integration
def test_a_running_service_keeps_its_port_to_itself(fresh_amqp_uri, tmp_path):
    """A second server cannot bind a service's port (no SO_REUSEPORT, which eventlet sets by default):
    otherwise the kernel would share the connections between the two, and half the requests would be
    answered by the wrong one."""
    process = ServiceProcess("members", fresh_amqp_uri, f"sqlite:///{tmp_path}/members.db", tmp_path).start()
    try:
        with pytest.raises(OSError) as taken:
            eventlet.listen(("127.0.0.1", process.port), reuse_port=True).close()
        assert taken.value.errno == errno.EADDRINUSE
        assert requests.get(f"{process.url}/health", timeout=10).status_code == 200
    finally:
        process.stop()


@pytest.mark.integration
def test_a_service_whose_port_is_taken_says_so_and_stops(fresh_amqp_uri, tmp_path):
    second = ServiceProcess("members", fresh_amqp_uri, f"sqlite:///{tmp_path}/members.db", tmp_path)
    with socket.socket() as holder:  # another program on the port
        holder.bind(("127.0.0.1", second.port))
        holder.listen()
        run = subprocess.run([sys.executable, "-m", "verbund.tools.cli", "run", "members"], env=second.env,
                             capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, run.stderr
    [said] = run.stderr.strip().splitlines()  # one line: no traceback, no warnings before it
    assert f"port {second.port} is taken" in said and "MEMBERS_PORT" in said
    assert not (tmp_path / "members.db").exists()  # stopped before the migrations touched its database
