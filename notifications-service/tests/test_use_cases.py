"""The notifications use cases on a migrated SQLite file with a recording
publisher and a fixed clock (verbund.testing.use_case_store): no broker, no
PostgreSQL. The same use cases on both databases and the real broker are in
test_services.py."""
from datetime import timedelta

import pytest
from sqlalchemy import select

from notifications import deliveries, dispatch, domain, queries, services
from notifications.models import CalendarEntry, Delivery, Notification
from notifications.rendering import Renderer
from notifications.schemas import PreferencesSchema
from notifications.testing import (
    event_changed,
    joint_event,
    match_suggested,
    member,
    profile_of,
    project,
    registration,
    scheduled,
)
from verbund.auth import Principal
from verbund.errors import Forbidden, Gone, NotFound
from verbund.testing import FixedClock, use_case_store

ADMIN = Principal("admin", "admin")
PAGE = {"unread": False, "page": 1, "per_page": 50}


@pytest.fixture
def clock():
    return FixedClock()


@pytest.fixture(params=["one by one", "in one batch"])
def store(request, tmp_path, clock):
    """Every test here twice: events consumed one by one (``on_event``) and the events of each
    ``consume`` call as one consumed batch (``on_events``): the policy must not tell them apart."""
    with use_case_store("notifications", tmp_path, clock=clock) as store:
        store.in_batches = request.param == "in one batch"
        yield store


def consume(store, *events):
    """Consume ``events``; per event, True if it was handled (False: a redelivery, skipped)."""
    if not getattr(store, "in_batches", False):
        return [store.handle(event, services.on_event) for event in events]
    fresh = {event["id"] for event in store.handle_batch(list(events), services.on_events)}
    handled = []
    for event in events:
        handled.append(event["id"] in fresh)
        fresh.discard(event["id"])
    return handled


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
    for member_id in ids[:2]:  # news: held for the member's (weekly) digest
        [mail] = deliveries_of(store, member_id)
        assert (mail.channel, mail.status, mail.topic) == ("email", "held", f"event:{announcement['subject']}")
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
    assert item["link"] == f"/events/{joint['id']}"  # where the member acts on it, in the portal
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
        assert [i["title"].split(" on ")[0] for i in page["items"]] == [f"Invitation: Meetup {n}" for n in (2, 1, 0)]
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
    consume(store, recipient, registration("registration.confirmed", member_id, joint_event()))
    clock.advance(seconds=domain.MailPolicy().coalesce_seconds)  # the window for more changes is over

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


# --- fewer, better messages: the policy, coalescing, the budget, digests on the injected clock ----

SECRET = "use-case-secret"


@pytest.fixture
def mail(store, clock):
    """What the e-mail timers send on the injected clock: ``mail.due()`` runs the sender's timer once
    (``send_emails``), ``mail.digests()`` the digest timer, into a recording sender."""
    from notifications import dispatch
    from notifications.config import Config
    from notifications.testing import RecordingSender

    class Mail:
        config = Config(digest_timezone="Europe/Berlin", daily_budget=3)
        sender = RecordingSender(clock)

        def due(self):
            return dispatch.send_due_emails(store, self.config, Renderer(), SECRET, self.sender, limit=100,
                                            pacer=dispatch.Pacer(0))

        def digests(self):
            return dispatch.send_due_digests(store, self.config, Renderer(), SECRET, self.sender)

        def to(self, registered):
            return self.sender.to(profile_of(registered)["contact"]["email"])

    return Mail()


WINDOW = domain.MailPolicy().coalesce_seconds


def test_a_message_that_needs_the_member_leaves_when_its_window_is_over(store, clock, mail):
    someone = member()
    consume(store, someone, registration("registration.confirmed", profile_of(someone)["id"], joint_event()))
    assert mail.due() == 0  # changes of the same registration may still come
    clock.advance(seconds=WINDOW)
    assert mail.due() == 1 and mail.due() == 0
    [sent] = mail.to(someone)
    assert sent.subject.startswith("Anmeldung bestätigt:") and sent.at - clock() == timedelta(0)
    assert "http://localhost:8000/events/" in sent.text


def test_changes_of_one_registration_within_the_window_become_one_message(store, clock, mail):
    someone = member()
    member_id, joint = profile_of(someone)["id"], joint_event()
    consume(store, someone, registration("registration.waitlisted", member_id, joint))
    clock.advance(seconds=WINDOW / 2)
    consume(store, registration("registration.promoted", member_id, joint))
    clock.advance(seconds=WINDOW / 2)  # the first change's window is over: one message for both, now
    assert mail.due() == 1
    clock.advance(seconds=WINDOW)
    assert mail.due() == 0
    [sent] = mail.to(someone)
    assert sent.subject.startswith("Nachgerückt:")
    statuses = {d.source_type: (d.status, d.merged_into) for d in deliveries_of(store, member_id)}
    promoted = [d.id for d in deliveries_of(store, member_id) if d.source_type == "registration.promoted"][0]
    assert statuses == {"registration.waitlisted": ("cancelled", promoted),
                        "registration.promoted": ("delivered", None)}


def test_two_changes_of_an_event_become_one_message_naming_both(store, clock, mail):
    someone = member()
    member_id, joint = profile_of(someone)["id"], joint_event()
    first = event_changed("event.updated", joint, [member_id])
    first["data"]["changed"] = ["starts_at"]
    second = event_changed("event.updated", {**joint, "version": 2}, [member_id])
    second["data"]["changed"] = ["venue"]
    consume(store, someone, first)
    clock.advance(seconds=5)
    consume(store, second)
    clock.advance(seconds=WINDOW)
    assert mail.due() == 1
    [sent] = mail.to(someone)
    assert "Geändert: Beginn und Ort" in sent.text


def test_a_proposal_closed_before_its_message_left_is_never_mailed(store, clock, mail):
    a, b = member(), member()
    consume(store, a, b)
    ids = [profile_of(a)["id"], profile_of(b)["id"]]
    proposed = project("project.proposed", ids)
    consume(store, proposed)
    clock.advance(seconds=WINDOW / 3)
    consume(store, project("project.closed", ids, id=proposed["data"]["project"]["id"], closed_reason="superseded"))
    clock.advance(seconds=WINDOW)
    assert mail.due() == 0
    clock.advance(days=8, hours=1)  # and no digest brings it either
    assert mail.digests() == 0 and mail.sender.sent == []
    for member_id in ids:
        assert {(d.status, d.last_error) for d in deliveries_of(store, member_id) if d.channel == "email"} == {
            ("cancelled", domain.CLOSED_BEFORE_MAILED)}
        with store.unit_of_work() as uow:  # the inbox still shows both
            assert queries.inbox(uow.session, ADMIN, member_id, PAGE, Renderer())["total"] == 2


def test_a_closure_after_the_proposal_was_mailed_is_news_for_the_digest(store, clock, mail):
    a, b = member(), member()
    consume(store, a, b)
    ids = [profile_of(a)["id"], profile_of(b)["id"]]
    proposed = project("project.proposed", ids)
    consume(store, proposed)
    clock.advance(seconds=WINDOW)
    assert mail.due() == 2
    consume(store, project("project.closed", ids, id=proposed["data"]["project"]["id"]))
    clock.advance(seconds=WINDOW)
    assert mail.due() == 0
    clock.advance(days=8)
    assert mail.digests() == 2
    digest = [m for m in mail.to(a) if m.is_digest][0]
    assert "kommt nicht zustande: ein Beteiligter hat abgesagt" in digest.text and "declined" not in digest.text


def _suggestions(member_id, *partners):
    event = match_suggested(member_id)
    template = event["data"]["suggestions"][0]
    event["data"]["suggestions"] = [{**template, "partner_id": p, "partner_name": f"Partner {p}"} for p in partners]
    return event


def test_a_suggestion_list_that_changes_back_sends_nothing(store, clock, mail):
    someone = member()
    member_id = profile_of(someone)["id"]
    consume(store, someone)
    set_preferences(store, ADMIN, member_id, {"frequency": "immediately"})  # news each on its own
    consume(store, _suggestions(member_id, "a", "b"))
    clock.advance(seconds=WINDOW)
    assert mail.due() == 1  # the first list

    consume(store, _suggestions(member_id, "a", "c"))
    clock.advance(seconds=WINDOW / 2)
    consume(store, _suggestions(member_id, "a", "b"))  # back as it was
    clock.advance(seconds=WINDOW)
    assert mail.due() == 0 and len(mail.to(someone)) == 1

    consume(store, _suggestions(member_id, "a", "d"))
    clock.advance(seconds=WINDOW)
    assert mail.due() == 1
    changed = mail.to(someone)[-1]
    assert "* Partner d" in changed.text and "* Partner a" not in changed.text  # only who is new
    assert "Nicht mehr vorgeschlagen, weil sich ein Profil geändert hat: Partner b." in changed.text


def test_news_wait_for_one_weekly_digest_that_drops_what_changed_back(store, clock, mail):
    someone = member(sector="automotive", topics=[])
    member_id = profile_of(someone)["id"]
    clock.moment = clock.moment.replace(year=2027, month=3, day=2, hour=10)  # a Tuesday
    consume(store, someone, scheduled(joint_event(target_sectors=["automotive"], topics=[])))
    consume(store, _suggestions(member_id, "a"))
    clock.advance(hours=1)
    consume(store, _suggestions(member_id))  # and gone again before anyone was told
    clock.advance(days=1)
    assert mail.due() == 0 and mail.digests() == 0  # the Monday slot before it arrived does not count

    clock.moment = clock.moment.replace(day=8, hour=6, minute=1)  # Monday 7:01 in Berlin
    assert mail.digests() == 1 and mail.digests() == 0  # one digest per period
    [digest] = mail.to(someone)
    assert digest.subject == "Ihre wöchentliche Übersicht: 1 Neuigkeit"
    assert "Einladung:" in digest.text and "Partnervorschl" not in digest.text

    consume(store, scheduled(joint_event(target_sectors=["automotive"], topics=[])))
    clock.advance(days=1)
    assert mail.digests() == 0  # next Monday's
    clock.advance(days=6)
    assert mail.digests() == 1


def test_the_daily_budget_sends_overflow_to_the_digest_and_loses_nothing(store, clock, mail):
    someone = member()
    member_id = profile_of(someone)["id"]
    consume(store, someone)
    clock.moment = clock.moment.replace(year=2027, month=3, day=2, hour=10)
    for _ in range(5):  # five registrations for five events in one morning; the budget is 3
        consume(store, registration("registration.confirmed", member_id, joint_event()))
    clock.advance(seconds=WINDOW)
    assert mail.due() == 3
    over = [d for d in deliveries_of(store, member_id) if d.status == "held"]
    assert len(over) == 2 and {d.last_error for d in over} == {dispatch_over_budget()}
    clock.moment = clock.moment.replace(day=8, hour=6, minute=1)
    assert mail.digests() == 1
    digest = [m for m in mail.to(someone) if m.is_digest][0]
    assert digest.text.count("Anmeldung bestätigt:") == 2
    assert {d.status for d in deliveries_of(store, member_id)} == {"delivered"}
    # A new day, a new budget.
    consume(store, registration("registration.confirmed", member_id, joint_event()))
    clock.advance(seconds=WINDOW)
    assert mail.due() == 1


def dispatch_over_budget():
    from notifications import dispatch
    return dispatch.OVER_BUDGET


def test_a_member_changes_a_kind_in_its_preferences(store, clock, mail):
    someone = member(sector="automotive", topics=[])
    member_id = profile_of(someone)["id"]
    consume(store, someone)
    view = set_preferences(store, ADMIN, member_id, {"kinds": {"event_announced": "immediately",
                                                               "registration_confirmed": "inbox"}})
    assert view["frequency"] == "weekly" and view["kinds_changed"] == ["event_announced", "registration_confirmed"]
    assert view["kinds"]["event_announced"] == "immediately" and view["kinds"]["match_suggested"] == "digest"
    assert view["kinds"]["contact_requested"] == "immediately"
    consume(store, scheduled(joint_event(target_sectors=["automotive"], topics=[])),
            registration("registration.confirmed", member_id, joint_event()))
    assert [(d.source_type, d.status) for d in deliveries_of(store, member_id)] == [("event.scheduled", "pending")]
    view = set_preferences(store, ADMIN, member_id, {"kinds": {"event_announced": None}})
    assert view["kinds"]["event_announced"] == "digest" and view["kinds_changed"] == ["registration_confirmed"]


def test_an_invitation_not_yet_sent_shows_the_event_as_it_now_is_or_nothing_once_cancelled(store, clock, mail):
    invited, registered = member(sector="automotive", topics=[]), member(sector="automotive", topics=[])
    ids = [profile_of(invited)["id"], profile_of(registered)["id"]]
    clock.moment = clock.moment.replace(year=2027, month=3, day=2, hour=10)  # a Tuesday
    joint = joint_event(target_sectors=["automotive"], topics=[])
    consume(store, invited, registered, scheduled(joint), registration("registration.confirmed", ids[1], joint))
    clock.advance(seconds=WINDOW)
    assert mail.due() == 1  # the registration's confirmation (the invitation merged into it)
    moved = event_changed("event.updated", {**joint, "version": 2, "title": "Batterie-Werkstatt (neuer Termin)"},
                          [ids[1]])
    consume(store, moved)
    clock.advance(seconds=WINDOW)
    assert mail.due() == 1  # registered: the change at once; only invited: news for its digest
    assert [m.subject.split(":")[0] for m in mail.to(registered)] == ["Anmeldung bestätigt", "Geändert"]
    clock.moment = clock.moment.replace(day=8, hour=6, minute=1)
    assert mail.digests() == 1
    [digest] = mail.to(invited)
    assert "Einladung: Batterie-Werkstatt (neuer Termin)" in digest.text and "Geändert" not in digest.text

    other = joint_event(target_sectors=["automotive"], topics=[])
    consume(store, scheduled(other), event_changed("event.cancelled", other, []))
    clock.advance(days=7)
    assert mail.digests() == 0  # cancelled before its invitation left: never mailed
    assert {d.last_error for d in deliveries_of(store, ids[0]) if d.subject == other["id"]} == {
        domain.CANCELLED_BEFORE_INVITED}


# --- fewer messages: findings of a new-user test ----------------------------------------------------

def test_an_event_cancellation_is_one_entry_and_one_mail_that_says_the_registration_ended_too(store, clock, mail):
    """events-service emits ``event.cancelled`` and, per registration, ``registration.cancelled`` (reason
    ``event_cancelled``): the registrant hears of it once ("abgesagt", and that its registration ended
    with it); a registration cancelled on its own is still told."""
    registered, invited = member(sector="automotive", topics=[]), member(sector="automotive", topics=[])
    ids = [profile_of(registered)["id"], profile_of(invited)["id"]]
    joint = joint_event(target_sectors=["automotive"], topics=[])
    consume(store, registered, invited, scheduled(joint), registration("registration.confirmed", ids[0], joint))
    clock.advance(days=8)
    mail.due(), mail.digests()
    mailed_before = len(mail.to(registered))
    cancelled = event_changed("event.cancelled", joint, [ids[0]])
    consume(store, cancelled, registration("registration.cancelled", ids[0], cancelled["data"]["event"],
                                           reason="event_cancelled"))
    clock.advance(seconds=WINDOW)
    mail.due()
    with store.unit_of_work() as uow:
        entries = queries.inbox(uow.session, ADMIN, ids[0], {**PAGE, "unread": True}, Renderer())["items"]
        invitee = queries.inbox(uow.session, ADMIN, ids[1], {**PAGE, "unread": True}, Renderer())["items"]
    [entry] = [e for e in entries if e["type"] in ("event.cancelled", "registration.cancelled")]
    assert entry["type"] == "event.cancelled" and entry["title"].startswith("Abgesagt")
    assert "Ihre Anmeldung" in entry["summary"] and "storniert" in entry["summary"], entry["summary"]
    [letter] = mail.to(registered)[mailed_before:]
    assert letter.subject.startswith("Abgesagt") and "Ihre Anmeldung" in letter.text
    assert "Anmeldung storniert" not in letter.subject
    # Only invited: told of the cancellation (news, in its digest), not of a registration it never had.
    [told] = [e for e in invitee if e["type"] == "event.cancelled"]
    assert "Ihre Anmeldung" not in told["summary"] and not [e for e in invitee if e["type"].startswith("registration.")]
    # A registration cancelled on its own (the member, an organizer) still has its entry.
    other = joint_event(target_sectors=["automotive"], topics=[])
    consume(store, registration("registration.confirmed", ids[0], other))
    clock.advance(seconds=WINDOW)
    consume(store, registration("registration.cancelled", ids[0], other))
    with store.unit_of_work() as uow:
        types = [e["type"] for e in queries.inbox(uow.session, ADMIN, ids[0], PAGE, Renderer())["items"]]
    assert types.count("registration.cancelled") == 1


def test_suggestion_lists_within_the_window_make_one_unread_inbox_entry(store, clock, mail):
    someone = member()
    member_id = profile_of(someone)["id"]
    consume(store, someone)
    for partners in (("a",), ("a", "b"), ("a", "b", "c")):  # a burst of registrations: 1, 2, 3 partners
        consume(store, _suggestions(member_id, *partners))
        clock.advance(seconds=WINDOW / 3)
    with store.unit_of_work() as uow:
        page = queries.inbox(uow.session, ADMIN, member_id, PAGE, Renderer())
    [entry] = page["items"]
    assert page["unread"] == 1 and entry["link"] == "/suggestions"
    assert entry["summary"].startswith("3 passende Partner")  # the newest list
    # Once read, the next list is an entry of its own; so is one after the window.
    with store.unit_of_work() as uow:
        services.inbox.mark_read(uow, as_member(profile_of(someone)), member_id, entry["id"], Renderer())
    consume(store, _suggestions(member_id, "a", "d"))
    clock.advance(seconds=WINDOW + 1)
    consume(store, _suggestions(member_id, "d"))
    with store.unit_of_work() as uow:
        assert queries.inbox(uow.session, ADMIN, member_id, PAGE, Renderer())["total"] == 3
    # The mails (held for the digest) still say what changed since the member last heard.
    clock.advance(days=8)
    assert mail.digests() == 1
    [digest] = mail.to(someone)
    assert digest.text.count("Partnervorschläge") == 1


def test_a_registration_cancelled_within_the_window_sends_no_mail_at_all(store, clock, mail):
    someone = member()
    member_id, joint = profile_of(someone)["id"], joint_event()
    consume(store, someone, registration("registration.confirmed", member_id, joint))
    clock.advance(seconds=WINDOW / 2)
    consume(store, registration("registration.cancelled", member_id, joint))
    clock.advance(seconds=WINDOW)
    assert mail.due() == 0
    clock.advance(days=8)
    assert mail.digests() == 0 and mail.sender.sent == []  # no "Anmeldung storniert", no METHOD:CANCEL
    assert {(d.status, d.last_error) for d in deliveries_of(store, member_id) if d.channel == "email"} == {
        ("cancelled", domain.REGISTERED_AND_CANCELLED)}


def test_a_cancellation_of_a_registration_the_member_heard_of_is_mailed(store, clock, mail):
    someone = member()
    member_id, joint = profile_of(someone)["id"], joint_event()
    consume(store, someone, registration("registration.confirmed", member_id, joint))
    clock.advance(seconds=WINDOW)
    assert mail.due() == 1
    # Cancelled, registered again and cancelled again within one window: it last heard "confirmed".
    consume(store, registration("registration.cancelled", member_id, joint))
    consume(store, registration("registration.confirmed", member_id, joint))
    consume(store, registration("registration.cancelled", member_id, joint))
    clock.advance(seconds=WINDOW)
    assert mail.due() == 1
    assert mail.to(someone)[-1].subject.startswith("Anmeldung storniert:")


def _moved(member_id, here, there, status="confirmed"):
    """A move as events-service emits it in one transaction: cancelled here (reason moved, moved_to),
    then confirmed or waitlisted there."""
    cancelled = registration("registration.cancelled", member_id, here, reason="moved", moved_to=there["id"])
    return cancelled, registration(f"registration.{status}", member_id, there)


@pytest.mark.parametrize("status, line_de, subject_en", [
    ("confirmed", "Ihre Anmeldung für „Batterie-Werkstatt (2. Termin)“ ist bestätigt.", None),
    ("waitlisted", None, "Your registration was moved: from "),
])
def test_a_moved_registration_is_one_message_with_both_calendar_files(store, clock, mail, status, line_de,
                                                                       subject_en):
    someone = member(language="en") if subject_en else member()
    member_id = profile_of(someone)["id"]
    here = joint_event()
    there = joint_event(title="Batterie-Werkstatt (2. Termin)", starts_at="2027-04-07T08:00:00Z",
                        ends_at="2027-04-07T15:00:00Z")
    consume(store, someone, registration("registration.confirmed", member_id, here))
    clock.advance(seconds=WINDOW)
    assert mail.due() == 1  # it knows of its registration here
    consume(store, *_moved(member_id, here, there, status))
    clock.advance(seconds=WINDOW)
    assert mail.due() == 1 and mail.due() == 0
    moved = mail.to(someone)[-1]
    if subject_en:
        assert moved.subject.startswith(subject_en) and "Batterie-Werkstatt (2. Termin)" in moved.subject
        assert "your registration is on its waiting list at position 3" in moved.text
    else:
        assert moved.subject == ("Ihre Anmeldung wurde verschoben: von Batterie-Werkstatt: Zellfertigung "
                                 "trifft Logistik am Mi., 3. März 2027 zu Batterie-Werkstatt (2. Termin) "
                                 "am Mi., 7. April 2027")
        assert line_de in moved.text and "storniert" not in moved.text
    calendars = [part for part in moved.message.iter_attachments() if part.get_content_type() == "text/calendar"]
    assert [part.get_param("method") for part in calendars] == ["CANCEL", "PUBLISH"]
    assert here["id"] in calendars[0].get_content() and there["id"] in calendars[1].get_content()
    assert "STATUS:CANCELLED" in calendars[0].get_content()
    emails = [d for d in deliveries_of(store, member_id) if d.channel == "email"]
    assert [(d.source_type, d.status) for d in emails][1:] == [
        ("registration.cancelled", "cancelled"), (f"registration.{status}", "delivered")]


def test_a_cancellation_with_reason_moved_alone_says_so(store, clock, mail):
    """The registration there not (yet) consumed within the window: the cancellation tells of the move."""
    someone = member()
    member_id, here, there = profile_of(someone)["id"], joint_event(), joint_event()
    consume(store, someone, registration("registration.confirmed", member_id, here))
    clock.advance(seconds=WINDOW)
    mail.due()
    consume(store, _moved(member_id, here, there)[0])
    clock.advance(seconds=WINDOW)
    assert mail.due() == 1
    assert "(verschoben auf einen anderen Termin)" in mail.to(someone)[-1].text


def test_a_burst_of_project_invitations_mails_one_and_keeps_the_rest_for_the_digest(store, clock, mail):
    popular, *others = [member() for _ in range(4)]
    consume(store, popular, *others)
    popular_id = profile_of(popular)["id"]
    clock.moment = clock.moment.replace(year=2027, month=3, day=2, hour=9)  # a Tuesday morning
    for other in others:  # three registrations within ten minutes, each proposing a team with it
        consume(store, project("project.proposed", [profile_of(other)["id"], popular_id]))
        clock.advance(seconds=WINDOW)
        mail.due()
        clock.advance(minutes=3)
    invitations = [m for m in mail.to(popular) if not m.is_digest]
    assert len(invitations) == 1 and invitations[0].subject.startswith("Einladung zu einem Partnerprojekt")
    assert all(len(mail.to(other)) == 1 for other in others)  # each anchor hears of its own team
    held = [d for d in deliveries_of(store, popular_id) if d.channel == "email" and d.status == "held"]
    assert [d.last_error for d in held] == [dispatch.INVITED_TODAY] * 2
    with store.unit_of_work() as uow:  # the inbox has every invitation at once
        assert queries.inbox(uow.session, ADMIN, popular_id, PAGE, Renderer())["total"] == 3
    # The next day an invitation goes at once again; the held ones come in the weekly digest.
    clock.advance(days=1)
    consume(store, project("project.proposed", [profile_of(others[0])["id"], popular_id]))
    clock.advance(seconds=WINDOW)
    mail.due()
    assert len([m for m in mail.to(popular) if not m.is_digest]) == 2
    clock.advance(days=6)
    assert mail.digests() >= 1
    [digest] = [m for m in mail.to(popular) if m.is_digest]
    assert digest.text.count("Einladung zu einem Partnerprojekt") == 2
