"""Calendar entries: the rules (no I/O), the kit's .ics text handling, and the use cases on
SQLite and PostgreSQL (migrated by Alembic): who holds which event's entry, at which
SEQUENCE and STATUS, who hears of its changes, and erasure."""
from functools import partial

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from icalendar import Calendar
from sqlalchemy import select

from notifications import dispatch, domain, services
from notifications.models import Base, CalendarEntry, Delivery, Notification
from notifications.testing import (
    event_changed,
    joint_event,
    member,
    member_deleted,
    profile_of,
    registration,
    scheduled,
)
from verbund.auth import Principal
from verbund.calendar import event_ics, event_uid, file_problems, ical_text

# --- the rules -------------------------------------------------------------------------------------


@pytest.mark.parametrize("type_, previous, status", [
    ("event.scheduled", None, "CONFIRMED"),
    ("registration.waitlisted", "CONFIRMED", "TENTATIVE"),
    ("registration.promoted", "TENTATIVE", "CONFIRMED"),
    ("registration.confirmed", None, "CONFIRMED"),
    ("registration.cancelled", "CONFIRMED", "CANCELLED"),
    ("event.cancelled", "TENTATIVE", "CANCELLED"),
    ("event.updated", "TENTATIVE", "TENTATIVE"),  # still on the waitlist
    ("event.updated", "CONFIRMED", "CONFIRMED"),
    ("event.updated", None, "CONFIRMED"),
    ("match.suggested", None, None),
])
def test_the_status_of_a_members_calendar_copy(type_, previous, status):
    assert domain.calendar_status(type_, previous) == status


@pytest.mark.parametrize("version, status, previous, sequence", [
    (1, "CONFIRMED", None, 1),  # the first copy: the event's version, as the download says
    (4, "TENTATIVE", None, 4),
    (1, "CONFIRMED", (1, 1, "CONFIRMED"), 1),  # the same copy again
    (1, "TENTATIVE", (1, 1, "CONFIRMED"), 2),  # a revision without a new event version
    (2, "TENTATIVE", (2, 1, "TENTATIVE"), 3),  # never back down to the event's version
    (5, "CONFIRMED", (2, 1, "CONFIRMED"), 5),  # the event's version when it is ahead
])
def test_the_sequence_only_grows_with_each_revision(version, status, previous, sequence):
    assert domain.calendar_sequence(version, status, previous) == sequence


def test_update_and_cancellation_plans_reach_calendar_holders_too():
    joint = joint_event()
    for type_ in ("event.updated", "event.cancelled"):
        assert domain.plan(event_changed(type_, joint, [])).calendar_holders
    assert not domain.plan(scheduled(joint)).calendar_holders
    assert not domain.plan(registration("registration.confirmed", "m", joint)).calendar_holders


def test_ics_text_drops_what_rfc_5545_forbids_and_keeps_the_rest():
    assert ical_text("Gie\u00dferei;  M\u00fcller,\x0bK\u00f6ln\x00 ") == "Gie\u00dferei; M\u00fcller, K\u00f6ln"
    assert ical_text("Mu\u0308ller") == "M\u00fcller"  # NFC
    assert ical_text("eins\r\nzwei\x0bdrei\u2028vier\x1b\x9b\ud800", multiline=True) == "eins\nzwei\ndrei\nvier"
    assert ical_text("\x0b\x00 ") is None and ical_text(None) is None


def test_a_members_copy_says_its_own_sequence_and_status():
    joint = joint_event(version=2, title="Tab\tund\x0bVT", description="a\x0c\\b;c,d")
    raw = event_ics(joint, sequence=7, status="TENTATIVE")
    assert file_problems(raw) == []
    calendar = Calendar.from_ical(raw)
    [vevent] = calendar.walk("VEVENT")
    assert (str(calendar["METHOD"]), str(vevent["STATUS"]), vevent["SEQUENCE"]) == ("PUBLISH", "TENTATIVE", 7)
    assert str(vevent["SUMMARY"]) == "Tab und VT" and str(vevent["DESCRIPTION"]) == "a\n\\b;c,d"
    removal = Calendar.from_ical(event_ics(joint, sequence=8, status="CANCELLED"))
    assert str(removal["METHOD"]) == "CANCEL" and str(removal.walk("VEVENT")[0]["STATUS"]) == "CANCELLED"
    with pytest.raises(ValueError):
        event_ics(joint, status="MAYBE")


def test_file_problems_finds_control_characters_and_bare_line_feeds():
    assert file_problems(b"BEGIN:VCALENDAR\r\nSUMMARY:a\x0bb\r\nEND:VCALENDAR\r\n") == [
        "line 2: control characters U+000B: 'SUMMARY:a\\x0bb'"]
    assert file_problems(b"BEGIN:VCALENDAR\nEND:VCALENDAR\n")[0] == "lines must end with CRLF"
    assert file_problems(b"\xff") and file_problems(event_ics(joint_event())) == []


# --- the use cases ---------------------------------------------------------------------------------

# These tests are about sending: every mail leaves at once (the policy's own tests are in test_use_cases).
AT_ONCE = domain.MailPolicy(default_frequency="immediately", coalesce_seconds=0, daily_budget=0)


def consume(store, *events):
    return [store.handle(event, partial(services.on_event, policy=AT_ONCE)) for event in events]


def newest(store, member_id, event_id):
    """A member's newest calendar entry of an event as (sequence, status), or None."""
    with store.engine.connect() as conn:
        row = conn.execute(select(CalendarEntry.sequence, CalendarEntry.status).where(
            CalendarEntry.member_id == member_id, CalendarEntry.event_id == event_id)
            .order_by(CalendarEntry.sequence.desc()).limit(1)).first()
    return tuple(row) if row else None


def told(store, member_id, source_event_id):
    """Which channels a member was told of a source event on: inbox, and the e-mail's status."""
    with store.engine.connect() as conn:
        inbox = conn.execute(select(Notification.id).where(
            Notification.member_id == member_id, Notification.source_event_id == source_event_id)).first()
        mail = conn.execute(select(Delivery.status).where(
            Delivery.channel == "email", Delivery.target == member_id,
            Delivery.source_event_id == source_event_id)).scalar()
    return bool(inbox), mail


@pytest.mark.integration
def test_the_migration_creates_the_calendar_table_as_the_model_says(store):
    with store.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert [d for d in differences if "calendar_entries" in repr(d)] == []


@pytest.mark.integration
def test_everyone_told_of_an_event_holds_its_entry_and_hears_of_changes_by_its_own_rules(store):
    plain, digest, left, late = (member(sector="automotive", topics=[]) for _ in range(4))
    silent = member(sector="automotive", topics=[], consent_email=False)
    ids = [profile_of(m)["id"] for m in (plain, digest, silent, left, late)]
    consume(store, plain, digest, silent, left)
    with store.unit_of_work() as uow:
        services.preferences.set_preferences(uow, Principal("admin", "admin"), ids[1], {
            "frequency": "weekly", "kinds": {"event_updated": "digest"}})
    joint = joint_event(target_sectors=["automotive"], topics=[])
    announcement = scheduled(joint)
    consume(store, announcement, registration("registration.confirmed", ids[3], joint))
    cancelled_registration = registration("registration.cancelled", ids[3], joint, version=2)
    consume(store, cancelled_registration, late)  # "late" registers after the announcement: never told
    assert [newest(store, m, joint["id"]) for m in ids] == [
        (1, "CONFIRMED"), (1, "CONFIRMED"), (1, "CONFIRMED"), (2, "CANCELLED"), None]
    assert told(store, ids[1], announcement["id"]) == (True, "held")  # a digest member: held, still told
    assert told(store, ids[2], announcement["id"]) == (True, None)  # no consent: the inbox only

    update = event_changed("event.updated", {**joint, "version": 2}, [])
    consume(store, update)
    assert told(store, ids[0], update["id"]) == (True, "pending")
    assert told(store, ids[1], update["id"]) == (True, "held")
    assert told(store, ids[2], update["id"]) == (True, None)
    assert told(store, ids[3], update["id"]) == (False, None)  # took it off its calendar: not told again
    assert told(store, ids[4], update["id"]) == (False, None)
    assert [newest(store, m, joint["id"]) for m in ids[:3]] == [(2, "CONFIRMED")] * 3

    # Redelivered: nothing twice (the inbox claim holds the calendar entries too).
    consume(store, update)
    with store.engine.connect() as conn:
        assert len(conn.execute(select(CalendarEntry).where(CalendarEntry.source_event_id == update["id"])).all()) == 3


@pytest.mark.integration
def test_a_waitlisted_member_keeps_its_tentative_entry_through_updates_and_each_mail_says_its_revision(store):
    waiting = member(sector="it", topics=[])
    member_id = profile_of(waiting)["id"]
    joint = joint_event(target_sectors=["it"], topics=[])
    announcement, waitlisted = scheduled(joint), registration("registration.waitlisted", member_id, joint)
    update = event_changed("event.updated", {**joint, "version": 2}, [member_id])
    consume(store, waiting, announcement, waitlisted, update)
    assert newest(store, member_id, joint["id"]) == (3, "TENTATIVE")  # 1 announced, 2 waitlisted, 3 updated

    # Each mail's .ics is its own revision, whenever it is sent.
    with store.unit_of_work() as uow:
        entries = {e.source_event_id: e for e in uow.session.execute(select(CalendarEntry)).scalars()}
    for source, method, status, sequence in ((announcement, "PUBLISH", "CONFIRMED", 1),
                                             (waitlisted, "PUBLISH", "TENTATIVE", 2),
                                             (update, "PUBLISH", "TENTATIVE", 3)):
        raw, said = dispatch.ics_for(source, entries[source["id"]])
        [vevent] = Calendar.from_ical(raw).walk("VEVENT")
        assert (said, str(vevent["STATUS"]), vevent["SEQUENCE"], str(vevent["UID"])) == (
            method, status, sequence, event_uid(joint["id"]))


@pytest.mark.integration
def test_erasure_forgets_the_members_calendar_entries(store):
    leaving, staying = member(sector="logistics", topics=[]), member(sector="logistics", topics=[])
    joint = joint_event(target_sectors=["logistics"], topics=[])
    consume(store, leaving, staying, scheduled(joint))
    leaving_id = profile_of(leaving)["id"]
    assert newest(store, leaving_id, joint["id"]) == (1, "CONFIRMED")
    consume(store, member_deleted(leaving_id))
    assert newest(store, leaving_id, joint["id"]) is None
    assert newest(store, profile_of(staying)["id"], joint["id"]) == (1, "CONFIRMED")
    cancellation = event_changed("event.cancelled", joint, [])
    consume(store, cancellation)
    assert told(store, leaving_id, cancellation["id"]) == (False, None)
    assert told(store, profile_of(staying)["id"], cancellation["id"]) == (True, "pending")


@pytest.mark.integration
def test_two_entries_of_the_same_sequence_written_at_once_do_not_block_the_next_event(store):
    # Two instances consuming a member's waitlisting and promotion at the same time may both
    # compute the same sequence; the event after that must still go through, once per member.
    profile = member(sector="it", topics=[])
    member_id, joint = profile_of(profile)["id"], joint_event(target_sectors=["it"], topics=[])
    consume(store, profile, scheduled(joint))
    with store.unit_of_work() as uow:
        first = uow.session.execute(select(CalendarEntry)).scalar_one()
        for source_id, status in (("race-1", "TENTATIVE"), ("race-2", "CONFIRMED")):
            uow.session.add(CalendarEntry(member_id=member_id, source_event_id=source_id, event_id=joint["id"],
                                      event_version=1, sequence=2, status=status, created_at=first.created_at))
    update = event_changed("event.updated", {**joint, "version": 2}, [member_id])
    consume(store, update)
    assert told(store, member_id, update["id"]) == (True, "pending")
    assert newest(store, member_id, joint["id"])[0] == 3
