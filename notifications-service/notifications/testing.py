"""Test support for notifications-service (and end-to-end tests): a real SMTP
server process (the mail catcher, aiosmtpd) on a free port, a local webhook
receiver, and schema-valid synthetic events of the services notifications
listens to. No pytest here; the fixtures are in the tests' conftest."""
from __future__ import annotations

import email
import email.policy
import json
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

from notifications.mailcatcher import read_mailbox
from verbund import envelope
from verbund.broker import Publisher
from verbund.testing import EventTap, ServiceProcess, Vhost, bearer, free_port, member_registered, wait_for


class MailCatcher:
    """``python -m notifications.mailcatcher`` as a process; mails land as files in ``folder``."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "notifications.mailcatcher", "--port", str(self.port), "--dir", str(folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)

        def listening():
            assert self.process.poll() is None, "the mail catcher exited"
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return True
            except OSError:
                return False

        wait_for(listening, timeout=30, message="the mail catcher to listen")

    def mails(self, to: str | None = None) -> list:
        mails = read_mailbox(self.folder)
        return [m for m in mails if to is None or to in m["To"]]

    def wait(self, count: int, to: str | None = None, timeout: float = 30) -> list:
        return wait_for(lambda: (lambda found: found if len(found) >= count else None)(self.mails(to)),
                        timeout=timeout, interval=0.1, message=f"{count} mail(s) to {to or 'anyone'}")

    def clear(self) -> None:
        for path in self.folder.glob("*.eml"):
            path.unlink()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


class WebhookReceiver:
    """A small local HTTP server that records what it receives and answers from a script.

    ``script[path]`` is a list of responses used in turn (the last one repeats): an int
    status, or ``("stall", seconds)`` to hang before answering 200.
    """

    def __init__(self):
        self.requests: list[dict] = []
        self.script: dict[str, list] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                answers = receiver.script.get(self.path, [200])
                count = sum(1 for r in receiver.requests if r["path"] == self.path)
                answer = answers[min(count, len(answers) - 1)]
                receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body,
                                          "at": time.monotonic()})
                if isinstance(answer, tuple):
                    time.sleep(answer[1])
                    answer = 200
                try:
                    self.send_response(answer)
                    self.end_headers()
                except OSError:
                    pass  # the sender gave up waiting

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def received(self, path: str) -> list[dict]:
        return [r for r in self.requests if r["path"] == path]

    def wait(self, path: str, count: int = 1, timeout: float = 30) -> list[dict]:
        return wait_for(lambda: (lambda found: found if len(found) >= count else None)(self.received(path)),
                        timeout=timeout, interval=0.05, message=f"{count} webhook request(s) on {path}")

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


ADMIN = bearer("admin")
FAST = {"DISPATCH_INTERVAL_SECONDS": "0.2", "EMAIL_RATE_PER_SECOND": "100", "EMAIL_RETRY_DELAYS_SECONDS": "0.5,1",
        "WEBHOOK_RETRY_DELAYS_SECONDS": "0.3,0.6,1", "WEBHOOK_TIMEOUT_SECONDS": "3", "DIGEST_CHECK_SECONDS": "3600",
        # Tests of sending: every mail leaves at once (the policy is tested on the injected clock).
        "DEFAULT_FREQUENCY": "immediately", "COALESCE_SECONDS": "0", "DAILY_MAIL_BUDGET": "0"}


class Platform:
    """notifications-service as a real process with its own vhost and database, fed like the other
    services would (``service.start()`` starts it); ``FAST`` dispatch settings unless ``env`` says else."""

    def __init__(self, workdir, database_url, mail_port, env=None):
        self.vhost = Vhost()
        self.publisher = Publisher(self.vhost.uri)
        self.tap = EventTap(self.vhost.uri, ("notification.*",))
        self.service = ServiceProcess("notifications", self.vhost.uri, database_url, workdir,
                                      env={"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(mail_port), **FAST,
                                           **(env or {})})

    def publish(self, *events):
        for event in events:
            self.publisher.publish(event["type"], envelope.dumps(event), message_id=event["id"])

    def members(self, *registrations) -> list[dict]:
        """Publish member.registered events and wait until the service holds every one."""
        self.publish(*registrations)
        for event in registrations:
            profile = profile_of(event)
            wait_for(lambda p=profile: requests.get(f"{self.service.url}/members/{p['id']}/preferences",
                                                    headers=ADMIN, timeout=5).json().get("email_address")
                     == p["contact"]["email"], timeout=30, message="a member in the read model")
        return [profile_of(event) for event in registrations]

    def inbox(self, member_id: str) -> dict:
        return requests.get(f"{self.service.url}/members/{member_id}/notifications", headers=ADMIN, timeout=5).json()

    def close(self):
        self.service.stop()
        self.tap.close()
        self.publisher.close()
        self.vhost.delete()


# --- synthetic events, valid against the kit's schemas --------------------------------------------

def joint_event(**overrides) -> dict:
    event = {
        "id": str(uuid.uuid4()), "version": 1, "title": "Batterie-Werkstatt: Zellfertigung trifft Logistik",
        "description": "Ein Tag zu Batterielogistik und Rückverfolgbarkeit.", "kind": "workshop",
        "organizers": ["automotive-cluster", "logistics-network"], "target_sectors": ["automotive"],
        "topics": ["battery-value-chain"], "starts_at": "2027-03-03T08:00:00Z", "ends_at": "2027-03-03T15:00:00Z",
        "timezone": "Europe/Berlin",
        "venue": {"name": "Haus der Wirtschaft", "address": "Willi-Bleicher-Straße 19", "city": "Stuttgart"},
        "online_url": None, "capacity": 40, "registration_deadline": None, "status": "scheduled",
        "created_at": "2026-11-01T10:00:00Z", "updated_at": "2026-11-01T10:00:00Z",
    }
    event.update(overrides)
    return event


def scheduled(joint: dict, **kwargs) -> dict:
    return envelope.new_event("event.scheduled", "/verbund/events", joint["id"], {"event": joint}, **kwargs)


def event_changed(type_: str, joint: dict, member_ids: list[str]) -> dict:
    data = {"event": joint, "registered_member_ids": member_ids}
    if type_ == "event.updated":
        data["changed"] = ["starts_at", "venue"]
    else:
        data["event"] = {**joint, "status": "cancelled", "version": joint["version"] + 1}
        data["reason"] = "Zu wenige Anmeldungen"
    return envelope.new_event(type_, "/verbund/events", joint["id"], data)


def registration(type_: str, member_id: str, joint: dict, **overrides) -> dict:
    status = {"registration.confirmed": "confirmed", "registration.promoted": "confirmed",
              "registration.waitlisted": "waitlisted", "registration.cancelled": "cancelled"}[type_]
    reg = {"id": str(uuid.uuid4()), "event_id": joint["id"], "member_id": member_id, "seats": 2, "status": status,
           "waitlist_position": 3 if status == "waitlisted" else None, "version": 1,
           "reason": "member" if status == "cancelled" else None}
    reg.update(overrides)
    return envelope.new_event(type_, "/verbund/events", reg["id"], {"registration": reg, "event": joint})


def match_suggested(member_id: str, partner_id: str | None = None) -> dict:
    suggestion = {"partner_id": partner_id or str(uuid.uuid4()), "partner_name": "Elbe Logistik GmbH",
                  "partner_sector": "logistics", "score": 0.82, "parts": {"need_coverage": 0.9},
                  "reasons": [{"kind": "need_met", "text": "bietet Batterietransport, den Sie suchen"}]}
    return envelope.new_event("match.suggested", "/verbund/matching", member_id,
                              {"member_id": member_id, "suggestions": [suggestion]})


def project(type_: str, member_ids: list[str], **overrides) -> dict:
    status = type_.split(".")[1]
    body = {"id": str(uuid.uuid4()), "version": 1, "title": "Batterielogistik Baden-Württemberg",
            "topic": "battery-value-chain", "status": status,
            "members": [{"member_id": m, "name": f"Partner {i}", "sector": ("automotive", "logistics", "it")[i % 3],
                         "response": "pending"} for i, m in enumerate(member_ids)],
            "score": 0.7, "explanation": [], "closed_reason": "declined" if status == "closed" else None}
    body.update(overrides)
    return envelope.new_event(type_, "/verbund/matching", body["id"], {"project": body})


def member(**overrides) -> dict:
    """A member.registered event; ``email`` and ``language`` set the contact."""
    contact = {"name": overrides.pop("contact_name", "Erika Muster"),
               "email": overrides.pop("email", f"m-{uuid.uuid4().hex[:10]}@example.org"),
               "language": overrides.pop("language", "de")}
    consent = {"suggest_as_partner": True, "email": overrides.pop("consent_email", True)}
    return member_registered(contact=contact, consent=consent, **overrides)


def member_updated(registered: dict, version: int, **changes) -> dict:
    profile = {**registered["data"]["profile"], **changes, "version": version}
    return envelope.new_event("member.updated", "/verbund/members", profile["id"],
                              {"profile": profile, "changed": sorted(changes) or ["name"]}, version=1)


def member_deleted(member_id: str, version: int = 2) -> dict:
    return envelope.new_event("member.deleted", "/verbund/members", member_id,
                              {"id": member_id, "version": version, "deleted_at": "2026-11-21T10:00:00Z"})


def profile_of(event: dict) -> dict:
    return event["data"]["profile"]


def json_of(request: dict) -> dict:
    return json.loads(request["body"])


def contact_event(type_: str, requester_id: str, recipient_id: str, **overrides) -> dict:
    """A contact.requested/accepted/declined event as members-service emits it (no message)."""
    status = {"contact.requested": "pending", "contact.accepted": "accepted", "contact.declined": "declined"}[type_]
    body = {"id": str(uuid.uuid4()), "requester_id": requester_id, "recipient_id": recipient_id,
            "requester_name": "Alpha Zulieferer GmbH", "recipient_name": "Beta Logistik GmbH", "status": status,
            "created_at": "2026-06-01T08:00:00Z", "expires_at": "2026-06-15T08:00:00Z",
            "answered_at": None if status == "pending" else "2026-06-02T08:00:00Z"}
    body.update(overrides)
    return envelope.new_event(type_, "/verbund/members", body["id"], {"request": body})


# --- sending without a mail server, on the injected clock ------------------------------------------

@dataclass
class SentMail:
    at: object  # the clock's time when it was handed over
    to: str
    message: object

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def text(self) -> str:
        return self.message.get_body(("plain",)).get_content()

    @property
    def is_digest(self) -> bool:
        return str(self.message["Message-ID"]).startswith("<digest.")


class RecordingSender:
    """Stands in for ``channels.email.SmtpSender``: keeps each mail with the time of ``clock``."""

    def __init__(self, clock):
        self.clock = clock
        self.sent: list[SentMail] = []

    def send(self, message, to_address: str) -> None:
        # Read back as a receiving mail program would (headers decoded, parts found).
        parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
        self.sent.append(SentMail(self.clock(), to_address, parsed))

    def close(self) -> None:
        pass

    def to(self, address: str) -> list[SentMail]:
        return [mail for mail in self.sent if mail.to == address]
