"""Meetings at matchmaking days (issue 18): who hears of ``meeting.*`` and how (rules), the mails in
both languages, and the use cases on SQLite with a fixed clock: coalescing a request accepted and
scheduled into one mail, reminders (one per meeting, again only after a later move, none when
cancelled), the daily summary of open requests (at most one a day) and the survey after the event."""
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from notifications import dispatch, domain, meetings, queries, services
from notifications.config import Config
from notifications.models import Delivery, Notification
from notifications.rendering import Renderer, context_for
from notifications.testing import RecordingSender, joint_event, member, profile_of, scheduled
from verbund import envelope
from verbund.auth import Principal
from verbund.testing import FixedClock, use_case_store

EV = str(uuid.uuid4())
T0 = datetime(2027, 3, 3, 7, 0, tzinfo=UTC)  # 8:00 in Berlin, the fair's morning


# --- helpers -----------------------------------------------------------------------------------------

def meeting(event_id, requester, recipient, **overrides):
    body = {"id": str(uuid.uuid4()), "event_id": event_id, "requester_id": requester, "recipient_id": recipient,
            "status": "pending", "slot": None, "starts_at": None, "ends_at": None, "table": None, "version": 1}
    body.update(overrides)
    return body


def meeting_event(type_, body, at=None, **extra):
    return envelope.new_event(type_, "/verbund/meetings", body["id"], {"meeting": dict(body), **extra}, time=at)


def placed(body, start, table=7, **changes):
    return {**body, "status": "accepted", "slot": 3, "table": table, "starts_at": envelope.isoformat(start),
            "ends_at": envelope.isoformat(start + timedelta(minutes=20)), **changes}


# --- rules ---------------------------------------------------------------------------------------------

def test_each_step_reaches_the_other_side():
    body = meeting(EV, "asker", "asked")
    assert domain.plan(meeting_event("meeting.requested", body)).member_ids == ("asked",)
    assert domain.plan(meeting_event("meeting.accepted", {**body, "status": "accepted"})).member_ids == ("asker",)
    assert domain.plan(meeting_event("meeting.declined", {**body, "status": "declined"})).member_ids == ("asker",)
    assert domain.plan(meeting_event("meeting.scheduled", body)).member_ids == ("asker", "asked")
    cancelled = {**body, "status": "cancelled"}
    assert domain.plan(meeting_event("meeting.cancelled", cancelled, cancelled_by="asked")).member_ids == ("asker",)
    assert domain.plan(meeting_event("meeting.cancelled", cancelled, cancelled_by=None)).member_ids == ("asker",
                                                                                                       "asked")


def test_the_policy_of_meeting_kinds():
    for kind in ("meeting_requested", "meeting_accepted", "meeting_scheduled", "meeting_cancelled",
                 "meeting_reminder", "meeting_requests_pending", "meeting_survey"):
        assert domain.mail_mode(kind, None, "weekly") == "immediately", kind
    assert domain.mail_mode("meeting_declined", None, "weekly") == "digest"
    assert domain.action_path("meeting_requested", {"meeting": {"event_id": "e1"}}) == "/events/e1/matchmaking"


def test_a_reminder_is_due_once_and_again_only_after_a_later_move():
    start = T0 + timedelta(minutes=30)
    assert not domain.reminder_due("accepted", start, None, T0, 15)  # too early
    assert domain.reminder_due("accepted", start, None, start - timedelta(minutes=15), 15)
    assert not domain.reminder_due("accepted", start, start, start - timedelta(minutes=10), 15)  # sent already
    assert not domain.reminder_due("cancelled", start, None, start - timedelta(minutes=10), 15)
    assert not domain.reminder_due("accepted", start, None, start, 15)  # it has begun
    earlier = start - timedelta(minutes=5)
    assert not domain.reminder_due("accepted", earlier, start, earlier - timedelta(minutes=5), 15)
    later = start + timedelta(hours=1)
    assert domain.reminder_due("accepted", later, start, later - timedelta(minutes=5), 15)


def test_summary_survey_and_merge_rules():
    assert domain.summary_slot(T0 - timedelta(minutes=1), 8, "Europe/Berlin") is None
    assert domain.summary_slot(T0, 8, "Europe/Berlin") == T0
    assert domain.open_request("pending", T0 - timedelta(hours=13), T0 + timedelta(days=1), T0, 12)
    assert not domain.open_request("pending", T0 - timedelta(hours=1), None, T0, 12)  # mailed just now
    assert not domain.open_request("pending", T0 - timedelta(days=2), T0 - timedelta(minutes=1), T0, 12)  # expired
    assert not domain.survey_due(T0, None, T0 + timedelta(days=181), 182)
    assert domain.survey_due(T0, None, T0 + timedelta(days=182), 182)
    assert not domain.survey_due(T0, "cancelled", T0 + timedelta(days=400), 182)
    body = meeting(EV, "a", "b")
    steps = [meeting_event("meeting.accepted", body), meeting_event("meeting.scheduled", body)]
    assert domain.merge(steps, False).steps == ("meeting.accepted", "meeting.scheduled")
    withdrawn = [meeting_event("meeting.requested", body), meeting_event("meeting.cancelled", body)]
    assert not domain.merge(withdrawn, False).send


@pytest.mark.parametrize("lang", ["de", "en"])
def test_the_mails_read_well_in_both_languages(lang):
    start = datetime(2027, 3, 3, 8, 30, tzinfo=UTC)
    body = placed(meeting("e1", "asker", "asked"), start)
    data = {"meeting": body, "cancelled_by": "asked",
            "context": {"event": {"id": "e1", "title": "Matchmaking Tag", "timezone": "Europe/Berlin"},
                        "names": {"asker": "Muster Antriebstechnik GmbH", "asked": "Datenwerk AG"}}}
    renderer = Renderer(portal_url="https://portal.example")
    scheduled_ctx = context_for("meeting.scheduled", data, lang,
                                domain.Merged(True, count=2, steps=("meeting.accepted", "meeting.scheduled")),
                                reader="asker")
    text = renderer.render("meeting_scheduled", lang, scheduled_ctx, footer={"recipient_name": None,
                                                                             "unsubscribe_url": "u"})
    assert "Datenwerk AG" in text.subject and "Muster" not in text.text.split("--")[0]
    assert ("9:30–9:50 Uhr" if lang == "de" else "09:30–09:50") in text.text  # the event's zone, Babel's format
    assert ("Tisch: 7" if lang == "de" else "Table: 7") in text.text
    assert ("angenommen" if lang == "de" else "accepted") in text.subject  # accepted and scheduled: one mail
    assert "https://portal.example/events/e1/agenda\n" in text.text  # "Ihr Ablaufplan": the agenda page
    cancelled = renderer.render("meeting_cancelled", lang, context_for("meeting.cancelled", data, lang,
                                                                      reader="asker"))
    assert cancelled.subject.startswith("Gespräch mit Datenwerk AG" if lang == "de" else "Meeting with Datenwerk AG")
    assert "Datenwerk AG" in cancelled.summary  # it was the other side that cancelled
    survey = {"member_id": "asker", "event_id": "e1", "meetings": [body, {**body, "id": "m2"}],
              "context": data["context"]}
    mail = renderer.render("meeting_survey", lang, context_for("meeting.survey", survey, lang),
                           footer={"recipient_name": None, "unsubscribe_url": "u"})
    # the portal's page of a meeting's outcome lives under its event
    assert f"https://portal.example/events/e1/meetings/{body['id']}/outcome" in mail.text
    assert "https://portal.example/events/e1/meetings/m2/outcome" in mail.text
    assert ("Ihren 2 Gesprächen" if lang == "de" else "your 2 meetings") in mail.summary
    for rendered in (text, cancelled, mail):
        assert "asker" not in rendered.text + rendered.subject and "_" not in rendered.subject


WITHDRAWN = {  # (cancelled_by, cause, reader) -> (subject, summary) of a request that never was a meeting
    ("asker", "member_cancelled", "asked"): {
        "de": ("Gesprächsanfrage von Muster GmbH zurückgezogen",
               "Muster GmbH hat die Gesprächsanfrage an Sie bei „Matchmaking Tag“ zurückgezogen."),
        "en": ("Meeting request from Muster GmbH withdrawn",
               "Muster GmbH withdrew their meeting request at \"Matchmaking Tag\".")},
    ("asker", "member_left", "asked"): {
        "de": ("Gesprächsanfrage von Muster GmbH hinfällig",
               "Die Gesprächsanfrage von Muster GmbH bei „Matchmaking Tag“ ist hinfällig, weil Muster GmbH nicht "
               "mehr am Matchmaking teilnimmt."),
        "en": ("Meeting request from Muster GmbH lapsed",
               "Muster GmbH's meeting request at \"Matchmaking Tag\" lapsed because Muster GmbH left the "
               "matchmaking.")},
    ("asked", "member_left", "asker"): {
        "de": ("Gesprächsanfrage an Datenwerk AG hinfällig",
               "Ihre Gesprächsanfrage an Datenwerk AG bei „Matchmaking Tag“ ist hinfällig, weil Datenwerk AG nicht "
               "mehr am Matchmaking teilnimmt."),
        "en": ("Meeting request to Datenwerk AG lapsed",
               "Your meeting request to Datenwerk AG at \"Matchmaking Tag\" lapsed because Datenwerk AG left the "
               "matchmaking.")},
    (None, "organizers", "asker"): {
        "de": ("Gesprächsanfrage an Datenwerk AG aufgehoben",
               "Die Veranstalter haben Ihre Gesprächsanfrage an Datenwerk AG bei „Matchmaking Tag“ aufgehoben."),
        "en": ("Meeting request to Datenwerk AG withdrawn by the organizers",
               "The organizers withdrew your meeting request to Datenwerk AG at \"Matchmaking Tag\".")},
}


@pytest.mark.parametrize("lang", ["de", "en"])
@pytest.mark.parametrize("case", list(WITHDRAWN), ids=lambda case: "-".join(map(str, case)))
def test_a_request_that_ends_before_it_was_accepted_is_no_cancelled_meeting(lang, case):
    """meeting.cancelled with ``was_accepted`` false: the other side reads that a request was withdrawn or
    lapsed (and why), in the mail and the inbox entry alike, never that a meeting was cancelled."""
    by, cause, reader = case
    data = {"meeting": meeting("e1", "asker", "asked", status="cancelled", version=2), "cancelled_by": by,
            "was_scheduled": False, "was_accepted": False, "cause": cause,
            "context": {"event": {"id": "e1", "title": "Matchmaking Tag", "timezone": "Europe/Berlin"},
                        "names": {"asker": "Muster GmbH", "asked": "Datenwerk AG"}}}
    rendered = Renderer(portal_url="https://portal.example").render(
        "meeting_cancelled", lang, context_for("meeting.cancelled", data, lang, reader=reader),
        footer={"recipient_name": None, "unsubscribe_url": "u"})
    subject, summary = WITHDRAWN[case][lang]
    assert (rendered.subject, rendered.summary) == (subject, summary)
    assert summary in rendered.text and "https://portal.example/events/e1/matchmaking" in rendered.text
    assert not any(word in rendered.text for word in ("abgesagt", "cancelled"))


@pytest.mark.parametrize("was_accepted", [True, None])  # None: an event from before the field
def test_an_accepted_meeting_or_an_older_event_still_reads_as_cancelled(was_accepted):
    data = {"meeting": meeting("e1", "asker", "asked", status="cancelled", version=3), "cancelled_by": "asker",
            "context": {"names": {"asker": "Muster GmbH"}}}
    if was_accepted is not None:
        data |= {"was_accepted": True, "cause": "member_left"}
    rendered = Renderer(portal_url="https://portal.example").render(
        "meeting_cancelled", "de", context_for("meeting.cancelled", data, "de", reader="asked"))
    assert rendered.subject == "Gespräch mit Muster GmbH abgesagt"
    assert rendered.summary == "Muster GmbH hat das Gespräch abgesagt."


# --- use cases ------------------------------------------------------------------------------------------

@pytest.fixture
def clock():
    return FixedClock(T0)


@pytest.fixture
def store(tmp_path, clock):
    with use_case_store("notifications", tmp_path, clock=clock) as store:
        yield store


@pytest.fixture
def fair(store):
    asker = member(language="de", name="Muster Antriebstechnik GmbH")
    asked = member(language="en", name="Datenwerk AG")
    joint = joint_event(starts_at="2027-03-03T08:00:00Z", ends_at="2027-03-03T16:00:00Z")
    for event in (asker, asked, scheduled(joint)):
        store.handle(event, services.on_event)
    return profile_of(asker)["id"], profile_of(asked)["id"], joint


CONFIG = Config(coalesce_seconds=30)


def send(store, clock, seconds=31):
    """Run the e-mail timer once, ``seconds`` later on the injected clock: [(to, subject)] it sent."""
    clock.advance(seconds=seconds)
    sender = RecordingSender(clock)
    dispatch.send_due_emails(store, CONFIG, Renderer(portal_url=CONFIG.portal_url), "secret", sender, limit=100,
                             pacer=dispatch.Pacer(0))
    return [(mail.to, mail.subject) for mail in sender.sent]


def move(clock, moment):
    clock.moment = moment


def mails_of(store, member_id, **where):
    with store.unit_of_work() as uow:
        return list(uow.session.execute(select(Delivery).where(
            Delivery.channel == "email", Delivery.target == member_id,
            *(getattr(Delivery, k) == v for k, v in where.items())).order_by(Delivery.id)).scalars())


def notify(uow, event):
    services.fanout.notify(uow, event, CONFIG.policy)


def test_accepted_and_scheduled_within_the_window_are_one_mail(store, clock, fair):
    asker, asked, joint = fair
    body = meeting(joint["id"], asker, asked)
    store.handle(meeting_event("meeting.requested", body), services.on_event)
    [request_mail] = send(store, clock)
    assert "Muster Antriebstechnik GmbH" in request_mail[1] and request_mail[1].startswith("Meeting request")  # en
    accepted = {**body, "status": "accepted", "version": 2}
    store.handle(meeting_event("meeting.accepted", accepted), services.on_event)
    clock.advance(seconds=5)
    store.handle(meeting_event("meeting.scheduled", placed(accepted, T0 + timedelta(hours=2), version=3)),
                 services.on_event)
    sent = send(store, clock)
    to_asker = [subject for _, subject in sent if "Datenwerk" in subject]
    assert len(to_asker) == 1 and "angenommen" in to_asker[0]  # German, one mail for both steps
    assert [d.status for d in mails_of(store, asker) if d.source_type.startswith("meeting.")] == ["cancelled",
                                                                                                 "delivered"]


def test_a_request_withdrawn_within_the_window_sends_nothing_and_a_decline_is_news(store, clock, fair):
    asker, asked, joint = fair
    body = meeting(joint["id"], asker, asked)
    store.handle(meeting_event("meeting.requested", body), services.on_event)
    store.handle(meeting_event("meeting.cancelled", {**body, "status": "cancelled", "version": 2},
                               cancelled_by=asker), services.on_event)
    assert send(store, clock) == []
    other = meeting(joint["id"], asker, asked)
    store.handle(meeting_event("meeting.declined", {**other, "status": "declined", "version": 2}), services.on_event)
    [held] = mails_of(store, asker, source_type="meeting.declined")
    assert held.status == "held"  # for the digest


def test_a_request_withdrawn_after_its_mail_left_says_so_in_mail_and_inbox(store, clock, fair):
    asker, asked, joint = fair
    body = meeting(joint["id"], asker, asked)
    store.handle(meeting_event("meeting.requested", body), services.on_event)
    assert len(send(store, clock)) == 1
    store.handle(meeting_event("meeting.cancelled", {**body, "status": "cancelled", "version": 2},
                               cancelled_by=asker, was_scheduled=False, was_accepted=False,
                               cause="member_cancelled"), services.on_event)
    assert [subject for _, subject in send(store, clock)] == ["Meeting request from Muster Antriebstechnik GmbH "
                                                             "withdrawn"]  # to the asked member, in English
    with store.unit_of_work() as uow:
        entries = queries.inbox(uow.session, Principal(f"member:{asked}", "member", member_id=asked), asked,
                                {"unread": False, "page": 1, "per_page": 10},
                                Renderer(portal_url=CONFIG.portal_url))["items"]
    withdrawn = next(e for e in entries if e["kind"] == "meeting_cancelled")
    assert withdrawn["summary"] == "Muster Antriebstechnik GmbH withdrew their meeting request at " \
                                   f"\"{joint['title']}\"."


def test_one_reminder_per_meeting_again_only_after_a_later_move(store, clock, fair):
    asker, asked, joint = fair
    start = T0 + timedelta(hours=1)
    body = placed(meeting(joint["id"], asker, asked), start, version=3)
    store.handle(meeting_event("meeting.scheduled", body), services.on_event)
    send(store, clock)
    times = CONFIG.meeting_times
    assert meetings.run_timers(store, times, notify, start - timedelta(minutes=20))["reminders"] == 0
    assert meetings.run_timers(store, times, notify, start - timedelta(minutes=14))["reminders"] == 2
    assert meetings.run_timers(store, times, notify, start - timedelta(minutes=13))["reminders"] == 0
    move(clock, start - timedelta(minutes=14) - timedelta(seconds=31))
    sent = send(store, clock)
    assert sorted(subject for _, subject in sent) == ["Gleich: Gespräch mit Datenwerk AG an Tisch 7",
                                                      "Soon: meeting with Muster Antriebstechnik GmbH at table 7"]
    earlier = start - timedelta(minutes=5)
    store.handle(meeting_event("meeting.scheduled", placed(body, earlier, version=4)), services.on_event)
    assert meetings.run_timers(store, times, notify, earlier - timedelta(minutes=3))["reminders"] == 0
    later = start + timedelta(hours=2)
    store.handle(meeting_event("meeting.scheduled", placed(body, later, version=5)), services.on_event)
    assert meetings.run_timers(store, times, notify, later - timedelta(minutes=10))["reminders"] == 2
    store.handle(meeting_event("meeting.cancelled", placed(body, later + timedelta(hours=1), status="cancelled",
                                                           version=6)), services.on_event)
    assert meetings.run_timers(store, times, notify, later + timedelta(minutes=50))["reminders"] == 0


def test_the_daily_summary_of_open_requests_comes_at_most_once_a_day(store, clock, fair):
    asker, asked, joint = fair
    for _ in range(2):
        body = meeting(joint["id"], asker, asked)
        store.handle(meeting_event("meeting.requested", body, at=T0 - timedelta(days=1),
                                   expires_at=envelope.isoformat(T0 + timedelta(days=3))), services.on_event)
    times = CONFIG.meeting_times
    assert meetings.run_timers(store, times, notify, T0 - timedelta(minutes=5))["summaries"] == 0  # before 8:00
    assert meetings.run_timers(store, times, notify, T0)["summaries"] == 1
    assert meetings.run_timers(store, times, notify, T0 + timedelta(hours=3))["summaries"] == 0
    with store.unit_of_work() as uow:
        [entry] = uow.session.execute(select(Notification).where(
            Notification.member_id == asked, Notification.source_type == "meeting.requests_pending")).scalars().all()
    move(clock, T0)
    subjects = [s for _, s in send(store, clock) if "await" in s]
    assert subjects == ["2 meeting requests await your answer"]
    assert meetings.run_timers(store, times, notify, T0 + timedelta(days=1))["summaries"] == 1  # the next day


def test_the_survey_lists_each_participants_meetings_once_after_the_delay(store, clock, fair):
    asker, asked, joint = fair
    held = placed(meeting(joint["id"], asker, asked), T0 + timedelta(hours=2), version=3)
    never = {**meeting(joint["id"], asked, asker), "status": "cancelled", "version": 2}
    for body, type_ in ((held, "meeting.scheduled"), (never, "meeting.cancelled")):
        store.handle(meeting_event(type_, body), services.on_event)
    times = CONFIG.meeting_times
    end = datetime(2027, 3, 3, 16, 0, tzinfo=UTC)
    assert meetings.run_timers(store, times, notify, end + timedelta(days=181))["surveys"] == 0
    assert meetings.run_timers(store, times, notify, end + timedelta(days=182))["surveys"] == 2
    assert meetings.run_timers(store, times, notify, end + timedelta(days=183))["surveys"] == 0
    move(clock, end + timedelta(days=182) - timedelta(seconds=31))
    sent = dict(send(store, clock))
    assert len(sent) == 2 and all("Gespräch" in s or "meetings" in s for s in sent.values())
    [survey] = mails_of(store, asker, source_type="meeting.survey")
    assert survey.status == "delivered"
