"""Calendar entries end to end: events on the real broker, a real notifications-service
process on SQLite and PostgreSQL, mails through a real SMTP server process, and each
mail's .ics parsed with the icalendar library (METHOD, STATUS, UID, SEQUENCE)."""
import pytest
from icalendar import Calendar

from notifications.testing import (
    event_changed,
    joint_event,
    member,
    registration,
    scheduled,
)
from verbund.calendar import event_uid, file_problems
from verbund.testing import wait_for

pytestmark = pytest.mark.integration


def calendar_of(mail) -> tuple[str, str, str, int, bytes]:
    """METHOD, STATUS, UID and SEQUENCE of a mail's one .ics, and the file itself."""
    [part] = [part for part in mail.iter_attachments() if part.get_content_type() == "text/calendar"]
    raw = part.get_payload(decode=True)
    calendar = Calendar.from_ical(raw)
    [vevent] = calendar.walk("VEVENT")
    assert part.get_param("method") == str(calendar["METHOD"])  # the MIME part says the same (RFC 6047)
    return str(calendar["METHOD"]), str(vevent["STATUS"]), str(vevent["UID"]), int(vevent["SEQUENCE"]), raw


def next_mail(mailcatcher, address: str, count: int):
    """The ``count``-th mail to ``address`` (oldest first), once it is there; no more than that."""
    mails = mailcatcher.wait(count, to=address)
    assert len(mails) == count, f"{len(mails)} mails to {address}, expected {count}"
    return mails[count - 1]


def test_a_waitlisted_member_gets_a_tentative_entry_a_promotion_confirms_it_a_cancellation_removes_it(
        platform, mailcatcher):
    [profile] = platform.members(member(sector="research", topics=[]))
    address, joint = profile["contact"]["email"], joint_event(target_sectors=["research"], topics=[])
    waitlisted = registration("registration.waitlisted", profile["id"], joint)
    reg = waitlisted["data"]["registration"]

    platform.publish(waitlisted)
    method, status, uid, sequence, _ = calendar_of(next_mail(mailcatcher, address, 1))
    assert (method, status, uid, sequence) == ("PUBLISH", "TENTATIVE", event_uid(joint["id"]), 1)

    platform.publish(registration("registration.promoted", profile["id"], joint, id=reg["id"], version=2))
    method, status, uid, promoted = calendar_of(next_mail(mailcatcher, address, 2))[:4]
    assert (method, status, uid) == ("PUBLISH", "CONFIRMED", event_uid(joint["id"])) and promoted > sequence

    platform.publish(registration("registration.cancelled", profile["id"], joint, id=reg["id"], version=3))
    method, status, uid, removed = calendar_of(next_mail(mailcatcher, address, 3))[:4]
    assert (method, status, uid) == ("CANCEL", "CANCELLED", event_uid(joint["id"])) and removed > promoted


def test_whoever_was_told_of_an_event_hears_of_its_update_and_cancellation(platform, mailcatcher):
    announced, registered, silent, untouched = platform.members(
        member(sector="logistics", topics=[]), member(sector="logistics", topics=[], language="en"),
        member(sector="logistics", topics=[], consent_email=False), member(sector="it", topics=[]))
    joint = joint_event(target_sectors=["logistics"], topics=[])
    uid = event_uid(joint["id"])
    platform.publish(scheduled(joint))
    assert calendar_of(next_mail(mailcatcher, announced["contact"]["email"], 1))[:4] == ("PUBLISH", "CONFIRMED",
                                                                                          uid, 1)
    assert calendar_of(next_mail(mailcatcher, registered["contact"]["email"], 1))[:4] == ("PUBLISH", "CONFIRMED",
                                                                                            uid, 1)
    platform.publish(registration("registration.confirmed", registered["id"], joint))
    assert calendar_of(next_mail(mailcatcher, registered["contact"]["email"], 2))[3] == 1  # the same copy again

    # The update names only the registered member; the member that only got the announcement hears of it too.
    updated = {**joint, "version": 2, "starts_at": "2027-03-03T09:00:00Z", "ends_at": "2027-03-03T16:00:00Z"}
    platform.publish(event_changed("event.updated", updated, [registered["id"]]))
    for profile, count, says in ((announced, 2, "zu der wir Sie eingeladen haben"),
                                 (registered, 3, "an event you registered for")):
        mail = next_mail(mailcatcher, profile["contact"]["email"], count)
        assert calendar_of(mail)[:4] == ("PUBLISH", "CONFIRMED", uid, 2)
        assert says in mail.get_body(("plain",)).get_content()

    platform.publish(event_changed("event.cancelled", updated, [registered["id"]]))  # version 3
    for profile, count, says in ((announced, 3, "zu der wir Sie eingeladen hatten"),
                                 (registered, 4, "an event you registered for")):
        mail = next_mail(mailcatcher, profile["contact"]["email"], count)
        assert calendar_of(mail)[:4] == ("CANCEL", "CANCELLED", uid, 3)
        assert says in mail.get_body(("plain",)).get_content()

    # Without consent to e-mail: told in the inbox, as the announcement was, and never mailed.
    wait_for(lambda: platform.inbox(silent["id"])["total"] == 3, timeout=30, message="three inbox entries")
    assert [item["type"] for item in platform.inbox(silent["id"])["items"]] == [
        "event.cancelled", "event.updated", "event.scheduled"]
    assert mailcatcher.mails(to=silent["contact"]["email"]) == []
    # Not targeted, never told: told nothing now either.
    assert platform.inbox(untouched["id"])["total"] == 0
    assert mailcatcher.mails(to=untouched["contact"]["email"]) == []


def test_stored_text_with_control_characters_still_gives_a_valid_calendar(platform, mailcatcher):
    [profile] = platform.members(member(sector="public", topics=[]))
    joint = joint_event(title="Batterie\x0bWerkstatt\x00", description="Zeile eins\x0bZeile zwei\x1f\r\nEnde",
                        venue={"name": "Halle\x0b3", "address": "Am Hafen 1\x7f", "city": "Bremen\x85"},
                        target_sectors=["public"], topics=[])
    platform.publish(registration("registration.confirmed", profile["id"], joint))
    method, status, uid, sequence, raw = calendar_of(next_mail(mailcatcher, profile["contact"]["email"], 1))
    assert file_problems(raw) == []
    [vevent] = Calendar.from_ical(raw).walk("VEVENT")
    assert str(vevent["SUMMARY"]) == "Batterie Werkstatt"
    assert str(vevent["DESCRIPTION"]) == "Zeile eins\nZeile zwei\nEnde"
    assert str(vevent["LOCATION"]) == "Halle 3, Am Hafen 1, Bremen"
    assert (method, status, uid, sequence) == ("PUBLISH", "CONFIRMED", event_uid(joint["id"]), 1)
