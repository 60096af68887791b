"""The notifications use cases on a migrated SQLite file with a recording
publisher and a fixed clock (verbund.testing.use_case_store): no broker, no
PostgreSQL. The same use cases on both databases and the real broker are in
test_services.py."""
from datetime import timedelta

import pytest
from sqlalchemy import select

from notifications import deliveries, domain, queries, services
from notifications.models import CalendarEntry, Delivery, Notification, Preference
from notifications.rendering import Renderer
from notifications.schemas import PreferencesSchema
from notifications.testing import joint_event, member, profile_of, registration, scheduled
from verbund.auth import Principal
from verbund.errors import Forbidden, Gone, NotFound
from verbund.testing import FixedClock, use_case_store

ADMIN = Principal("admin", "admin")
PAGE = {"unread": False, "page": 1, "per_page": 50}


@pytest.fixture
def clock():
    return FixedClock()


@pytest.fixture
def store(tmp_path, clock):
    with use_case_store("notifications", tmp_path, clock=clock) as store:
        yield store


def consume(store, *events):
    return [store.handle(event, services.on_event) for event in events]


def deliveries_of(store, member_id):
    with store.unit_of_work() as uow:
        return list(uow.session.execute(select(Delivery).where(Delivery.member_id == member_id)
                                        .order_by(Delivery.id)).scalars())


def as_member(profile):
    return Principal(profile["id"], "member", member_id=profile["id"])


def set_preferences(store, principal, member_id, body):
    with store.unit_of_work() as uow:
        return services.preferences.set_preferences(uow, principal, member_id, PreferencesSchema().load(body))


# --- fan-out ---------------------------------------------------------------------------------------

def test_an_announcement_reaches_the_targeted_sector_and_topic_members_once(store, clock):
    by_sector = member(sector="automotive", topics=[])
    by_topic = member(sector="logistics", topics=["battery-value-chain"])
    untouched = member(sector="it", topics=["ai"])
    no_consent = member(sector="automotive", topics=[], consent_email=False)
    consume(store, by_sector, by_topic, untouched, no_consent)
    announcement = scheduled(joint_event(target_sectors=["automotive"], topics=["battery-value-chain"]))

    assert consume(store, announcement, announcement) == [True, False]  # the repeat is skipped

    with store.unit_of_work() as uow:
        told = dict(uow.session.execute(select(Notification.member_id, Notification.created_at)).all())
    ids = [profile_of(m)["id"] for m in (by_sector, by_topic, untouched, no_consent)]
    assert set(told) == {ids[0], ids[1], ids[3]}
    assert {domain.utc(at) for at in told.values()} == {clock()}  # the injected clock, not the wall clock
    for member_id in ids[:2]:
        [mail] = deliveries_of(store, member_id)
        assert (mail.channel, mail.status, domain.utc(mail.next_attempt_at)) == ("email", "pending", clock())
    assert deliveries_of(store, ids[3]) == []  # no consent: the inbox only
    # Nothing was sent yet, so nothing was announced.
    assert store.relay.publisher.published == []


def test_a_registration_confirmation_tells_its_member_with_a_calendar_entry(store, clock):
    registered, other = member(sector="research", topics=[]), member(sector="research", topics=[])
    consume(store, registered, other)
    joint = joint_event(version=3, target_sectors=["research"], topics=[])
    member_id = profile_of(registered)["id"]

    consume(store, registration("registration.confirmed", member_id, joint))

    with store.unit_of_work() as uow:
        inbox = queries.inbox(uow.session, ADMIN, member_id, PAGE, Renderer())
        [entry] = uow.session.execute(select(CalendarEntry)).scalars().all()
        assert queries.inbox(uow.session, ADMIN, profile_of(other)["id"], PAGE, Renderer())["total"] == 0
    [item] = inbox["items"]
    assert item["type"] == "registration.confirmed" and item["title"].startswith("Anmeldung bestätigt")
    assert (entry.member_id, entry.status, entry.sequence) == (member_id, "CONFIRMED", 3)
    [mail] = deliveries_of(store, member_id)
    assert (mail.channel, mail.status, mail.source_type) == ("email", "pending", "registration.confirmed")


# --- preferences -----------------------------------------------------------------------------------

def test_preferences_hold_mails_for_a_digest_and_release_them(store, clock):
    recipient = member(sector="automotive", topics=[])
    member_id = profile_of(recipient)["id"]
    consume(store, recipient)

    view = set_preferences(store, as_member(profile_of(recipient)), member_id, {"frequency": "daily"})
    assert view["frequency"] == "daily" and view["channels"] == {"inbox": True, "email": True, "webhook": True}
    with store.unit_of_work() as uow:
        # The first digest comes at the next slot, not at once.
        assert domain.utc(uow.session.get(Preference, member_id).last_digest_at) == clock()
    consume(store, scheduled(joint_event(target_sectors=["automotive"], topics=[])))
    assert [d.status for d in deliveries_of(store, member_id)] == ["held"]

    clock.advance(hours=3)
    set_preferences(store, ADMIN, member_id, {"frequency": "immediately"})
    [released] = deliveries_of(store, member_id)
    assert (released.status, domain.utc(released.next_attempt_at)) == ("pending", clock())

    set_preferences(store, ADMIN, member_id, {"channels": {"email": False}})
    [cancelled] = deliveries_of(store, member_id)
    assert (cancelled.status, cancelled.last_error) == ("cancelled", "the member turned e-mail off")


def test_preferences_are_the_members_own_and_unsubscribing_turns_email_off(store):
    mine, theirs = member(), member()
    consume(store, mine, theirs)
    with pytest.raises(Forbidden):
        set_preferences(store, as_member(profile_of(mine)), profile_of(theirs)["id"], {"language": "en"})
    with store.unit_of_work() as uow:
        token = domain.unsubscribe_token(profile_of(mine)["id"], "secret")
        assert services.preferences.unsubscribe(uow, token, "secret") == profile_of(mine)["id"]
        assert queries.get_preferences(uow.session, ADMIN, profile_of(mine)["id"])["channels"]["email"] is False
        with pytest.raises(NotFound):
            services.preferences.unsubscribe(uow, token, "another secret")


# --- inbox -----------------------------------------------------------------------------------------

def test_the_inbox_marks_entries_read_at_the_clocks_time(store, clock):
    recipient = member(sector="automotive", topics=[], language="en")
    owner, member_id = as_member(profile_of(recipient)), profile_of(recipient)["id"]
    consume(store, recipient)
    for n in range(3):
        consume(store, scheduled(joint_event(title=f"Meetup {n}", target_sectors=["automotive"], topics=[])))
        clock.advance(minutes=5)

    with store.unit_of_work() as uow:
        page = queries.inbox(uow.session, owner, member_id, PAGE, Renderer())
        assert [i["title"].split(" (")[0] for i in page["items"]] == [f"Invitation: Meetup {n}" for n in (2, 1, 0)]
        read = services.inbox.mark_read(uow, owner, member_id, page["items"][0]["id"], Renderer())
    assert read["read"] is True and read["read_at"] == "2026-06-01T08:15:00Z"
    with store.unit_of_work() as uow:
        with pytest.raises(Forbidden):
            services.inbox.mark_all_read(uow, Principal("x", "member", member_id="someone-else"), member_id)
        with pytest.raises(NotFound):
            services.inbox.mark_read(uow, owner, member_id, 999999, Renderer())
        assert services.inbox.mark_all_read(uow, owner, member_id) == {"marked": 2}
        assert queries.inbox(uow.session, owner, member_id, {**PAGE, "unread": True}, Renderer())["total"] == 0


def test_an_erased_members_inbox_is_gone(store):
    from notifications.testing import member_deleted

    recipient = member()
    consume(store, recipient, member_deleted(profile_of(recipient)["id"]))
    with store.unit_of_work() as uow, pytest.raises(Gone):
        queries.inbox(uow.session, ADMIN, profile_of(recipient)["id"], PAGE, Renderer())


# --- a delivery's life cycle -----------------------------------------------------------------------

def test_a_delivery_is_leased_retried_then_failed_with_its_event(store, clock):
    recipient = member(sector="automotive", topics=[])
    member_id = profile_of(recipient)["id"]
    consume(store, recipient, scheduled(joint_event(target_sectors=["automotive"], topics=[])))

    for _ in (1, 2):
        with store.unit_of_work() as uow:
            [due] = deliveries.due(uow.session, "email", uow.now(), 10)
            deliveries.lease([due], uow.now() + timedelta(minutes=1))
            deliveries.retry_or_fail(uow, due, "421 try later", (60,))
        clock.advance(minutes=2)
    [failed] = deliveries_of(store, member_id)
    gave_up = clock() - timedelta(minutes=2)
    assert (failed.status, failed.attempts, domain.utc(failed.finished_at)) == ("failed", 2, gave_up)
    [event] = store.relay.publisher.of_type("notification.failed")
    assert event["subject"] == member_id and event["data"]["attempts"] == 2
    assert event["data"]["error"] == "gave up after 2 attempts: 421 try later"
    assert event["source"] == "/verbund/notifications"
