"""The event flow end to end: schema-valid events published on the real
broker, a real notifications-service process, mails through a real SMTP
server process, webhooks to a local HTTP server."""
import json
import uuid

import pytest
import requests
from icalendar import Calendar
from kombu import Connection, Queue

from notifications.channels import webhook
from notifications.config import Config
from notifications.testing import (
    MailCatcher,
    Platform,
    joint_event,
    member,
    registration,
    scheduled,
)
from verbund.subscriber import ATTEMPTS_HEADER, ERROR_HEADER
from verbund.testing import bearer, wait_for

pytestmark = pytest.mark.integration

ADMIN = bearer("admin")
DEAD = "notifications.events.dead"


def skipped(service, event_id: str) -> bool:
    """Whether the service logged that it claimed ``event_id`` before and skipped it (the inbox)."""
    return any(line.get("message") == f"event {event_id} already processed, skipped" for line in service.log_lines())


def dead_letters(amqp_uri: str, expected: int) -> list:
    """Wait until the service's dead-letter queue has given ``expected`` messages and take them."""
    taken = []
    with Connection(amqp_uri) as connection:
        queue = Queue(DEAD)(connection.default_channel)

        def collect():
            while (message := queue.get(no_ack=True)) is not None:
                taken.append((message.headers, message.body))
            return len(taken) >= expected

        wait_for(collect, timeout=30, message=f"{expected} dead letter(s)")
    return taken

def test_a_scheduled_event_reaches_exactly_the_targeted_inboxes_and_mailboxes(platform, mailcatcher):
    by_sector = member(sector="automotive", topics=[])
    by_topic = member(sector="logistics", topics=["battery-value-chain"], language="en")
    untouched = member(sector="it", topics=["ai"])
    no_consent = member(sector="automotive", topics=[], consent_email=False)
    profiles = platform.members(by_sector, by_topic, untouched, no_consent)
    announcement = scheduled(joint_event(target_sectors=["automotive"], topics=["battery-value-chain"]))
    platform.publish(announcement)

    for profile in (profiles[0], profiles[1], profiles[3]):
        wait_for(lambda p=profile: platform.inbox(p["id"])["total"] == 1, timeout=30, message="an inbox entry")
    german = mailcatcher.wait(1, to=profiles[0]["contact"]["email"])[0]
    english = mailcatcher.wait(1, to=profiles[1]["contact"]["email"])[0]
    assert german["Subject"] == "Einladung: Batterie-Werkstatt: Zellfertigung trifft Logistik am Mi., 3. März 2027"
    assert english["Subject"].startswith("Invitation: ") and english["Content-Language"] == "en"
    delivered = platform.tap.wait("notification.delivered", count=2, timeout=30)
    assert {e["data"]["member_id"] for e in delivered} == {profiles[0]["id"], profiles[1]["id"]}
    # Not targeted: no inbox entry, no mail. Targeted without consent: the inbox only.
    assert platform.inbox(profiles[2]["id"])["total"] == 0
    assert mailcatcher.mails(to=profiles[2]["contact"]["email"]) == []
    assert mailcatcher.mails(to=profiles[3]["contact"]["email"]) == []

    # The same event delivered again (a broker redelivery) sends nothing twice: the service says it
    # skipped it, and a marker mail queued after it arrives while the announcement's count stays one.
    platform.publish(announcement)
    wait_for(lambda: skipped(platform.service, announcement["id"]), timeout=30, message="the repeat skipped")
    platform.publish(registration("registration.confirmed", profiles[0]["id"], joint_event(title="Marker")))
    marked = mailcatcher.wait(2, to=profiles[0]["contact"]["email"])
    assert sum(mail["Subject"].startswith("Einladung: Batterie-Werkstatt") for mail in marked) == 1
    assert platform.inbox(profiles[0]["id"])["total"] == 2


def test_a_registration_confirmation_carries_a_valid_ics_and_a_working_unsubscribe_link(platform, mailcatcher):
    profile, bystander = platform.members(member(sector="research", topics=[]), member(sector="research", topics=[]))
    joint = joint_event(title="Wasserstoff-Webinar", kind="webinar", venue=None,
                        online_url="https://meet.example/h2", target_sectors=["research"], topics=[])
    platform.publish(registration("registration.confirmed", profile["id"], joint))
    [mail] = mailcatcher.wait(1, to=profile["contact"]["email"])
    assert mail["Subject"].startswith("Anmeldung bestätigt: Wasserstoff-Webinar")
    [attachment] = [part for part in mail.iter_attachments() if part.get_content_type() == "text/calendar"]
    calendar = Calendar.from_ical(attachment.get_payload(decode=True))
    assert str(calendar["METHOD"]) == "PUBLISH"
    [vevent] = calendar.walk("VEVENT")
    assert str(vevent["SUMMARY"]) == "Wasserstoff-Webinar" and str(vevent["URL"]) == "https://meet.example/h2"
    assert vevent.decoded("DTSTART").isoformat() == "2027-03-03T09:00:00+01:00"

    # List-Unsubscribe and the footer's link both go to the portal's page (reachable from outside,
    # unlike this service's port), which passes RFC 8058's one-click POST on to this service with the
    # same token; then no more mails, the inbox goes on.
    link = mail["List-Unsubscribe"].strip("<>")
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert link.startswith(f"{Config.from_env().portal_url}/unsubscribe/")
    assert link in mail.get_body(("plain",)).get_content()
    token = link.rsplit("/", 1)[1]
    assert requests.post(f"{platform.service.url}/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"},
                         timeout=5).status_code == 200
    platform.publish(registration("registration.promoted", profile["id"], joint))
    wait_for(lambda: platform.inbox(profile["id"])["total"] == 2, timeout=30, message="the second inbox entry")
    # A marker mail to another member, queued after the promotion: once it is out, a mail of the
    # promotion would have gone before it (mails go out in the order they were queued).
    platform.publish(registration("registration.confirmed", bystander["id"], joint))
    mailcatcher.wait(1, to=bystander["contact"]["email"])
    assert len(mailcatcher.mails(to=profile["contact"]["email"])) == 1


def test_webhooks_are_signed_retried_and_a_stalled_receiver_blocks_nobody(platform, receiver):
    stalled_member, quick_member, gone_member = platform.members(
        member(sector="public", topics=[]), member(sector="public", topics=[]), member(sector="public", topics=[]))

    def register(profile, path):
        response = requests.post(f"{platform.service.url}/webhooks", headers=ADMIN, timeout=5, json={
            "url": f"{receiver.url}{path}", "member_id": profile["id"], "allow_private": True})
        assert response.status_code == 201, response.text
        return response.json()

    stalled, quick, gone = register(stalled_member, "/stalled"), register(quick_member, "/quick"), \
        register(gone_member, "/gone")
    receiver.script = {"/stalled": [("stall", 6)], "/quick": [503, 200], "/gone": [410]}
    platform.publish(scheduled(joint_event(target_sectors=["public"], topics=[])))

    first, retry = receiver.wait("/quick", count=2, timeout=30)
    [hanging] = receiver.wait("/stalled", timeout=30)[:1]
    # The quick receiver was served, and retried, while the stalled request was still open (3 s timeout).
    assert any(hanging["at"] <= quick["at"] < hanging["at"] + 2.9 for quick in (first, retry))
    assert first["headers"]["webhook-id"] == retry["headers"]["webhook-id"]
    assert first["headers"]["webhook-timestamp"] <= retry["headers"]["webhook-timestamp"]
    for request in (first, retry):
        webhook.verify(quick["secret"], request["headers"], request["body"])
        with pytest.raises(webhook.InvalidSignature):
            webhook.verify(stalled["secret"], request["headers"], request["body"])
    payload = json.loads(retry["body"])
    assert payload["type"] == "event.scheduled" and payload["data"]["member_id"] == quick_member["id"]

    hooks = f"{platform.service.url}/webhooks"
    log = wait_for(lambda: (lambda body: body if body["items"] and body["items"][0]["status"] == "delivered"
                            else None)(requests.get(f"{hooks}/{quick['id']}/deliveries", headers=ADMIN,
                                                    timeout=5).json()), timeout=30, message="the delivery log")
    assert [(a["outcome"], a["status_code"]) for a in log["items"][0]["log"]] == [("retry", 503), ("delivered", 200)]
    disabled = wait_for(lambda: (lambda body: body if not body["enabled"] else None)(
        requests.get(f"{hooks}/{gone['id']}", headers=ADMIN, timeout=5).json()), timeout=30,
        message="the 410 endpoint to be disabled")
    assert "410" in disabled["disabled_reason"]
    # The stalled receiver timed out and was tried again; its attempts are in the log with the timeout.
    stalled_log = wait_for(lambda: (lambda body: body if body["items"] and len(body["items"][0]["log"]) >= 1
                                    else None)(requests.get(f"{hooks}/{stalled['id']}/deliveries", headers=ADMIN,
                                                            timeout=5).json()), timeout=30, message="a timeout")
    assert "timed out" in stalled_log["items"][0]["log"][0]["error"]
    failed = platform.tap.wait("notification.failed", timeout=30)
    assert any(e["data"]["endpoint_id"] == gone["id"] for e in failed)


def test_a_restart_mid_send_sends_every_mail_exactly_once(infrastructure, tmp_path):
    mail = MailCatcher(tmp_path / "mail")
    running = Platform(tmp_path, f"sqlite:///{tmp_path / 'notifications.db'}", mail.port,
                       env={"EMAIL_RATE_PER_SECOND": "10"})
    try:
        running.service.start()
        profiles = running.members(*[member(sector="other", topics=[]) for _ in range(25)])
        announcement = scheduled(joint_event(target_sectors=["other"], topics=[]))
        running.publish(announcement)
        mail.wait(5, timeout=30)
        running.service.stop()  # mid-send: graceful, as a deployment restarts it
        sent_before = len(mail.mails())
        assert 5 <= sent_before < 25
        running.publish(announcement)  # and the event comes again, as after a lost ack
        running.service.start()
        mail.wait(25, timeout=60)
        # The repeat was skipped, and a marker mail queued after everything else has come through.
        wait_for(lambda: skipped(running.service, announcement["id"]), timeout=30, message="the repeat skipped")
        running.publish(registration("registration.confirmed", profiles[0]["id"], joint_event(title="Marker")))
        mail.wait(2, to=profiles[0]["contact"]["email"])
        mails = [m for m in mail.mails() if not m["Subject"].startswith("Anmeldung bestätigt: Marker")]
        assert len(mails) == 25 and len({m["Message-ID"] for m in mails}) == 25
        assert sorted(m["To"].addresses[0].addr_spec for m in mails) == sorted(p["contact"]["email"] for p in profiles)
    finally:
        running.close()
        mail.stop()


def test_unknown_event_data_is_dead_lettered_not_crashing_the_consumer(platform):
    # A body that breaks the contract goes to the dead-letter queue; the next good event is still handled.
    platform.publisher.publish("event.scheduled", b'{"not": "a cloudevent"}', message_id=str(uuid.uuid4()))
    [(headers, body)] = dead_letters(platform.vhost.uri, 1)
    assert headers[ERROR_HEADER].startswith("invalid event:")
    assert headers[ATTEMPTS_HEADER] == 0  # not retried: it cannot get better
    assert json.loads(body) == {"not": "a cloudevent"}  # kept as it came, for whoever mends it
    [profile] = platform.members(member(sector="logistics", topics=["hydrogen"]))
    platform.publish(scheduled(joint_event(target_sectors=[], topics=["hydrogen"])))
    wait_for(lambda: platform.inbox(profile["id"])["total"] == 1, timeout=30, message="the good event")
