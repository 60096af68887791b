"""The notifications use cases on SQLite and PostgreSQL (migrated by
Alembic), with outcome events through the outbox to the real broker, mails
through a real SMTP server process and webhooks to a local HTTP server."""
import json
import random
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
from icalendar import Calendar
from marshmallow import ValidationError
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from notifications import deliveries, dispatch, domain, queries, services
from notifications.channels import webhook
from notifications.channels.email import SmtpSender
from notifications.models import (
    Delivery,
    DeliveryAttempt,
    Mailbox,
    Notification,
    Preference,
    PreferenceTopic,
    Recipient,
    RecipientTopic,
    SourceEvent,
    WebhookEndpoint,
)
from notifications.rendering import Renderer
from notifications.schemas import PreferencesSchema, WebhookPatchSchema, WebhookSchema
from notifications.testing import (
    event_changed,
    joint_event,
    match_suggested,
    member,
    member_deleted,
    member_updated,
    profile_of,
    project,
    registration,
    scheduled,
)
from verbund import personal
from verbund.auth import Principal
from verbund.errors import Forbidden, Gone, NotFound, Unprocessable
from verbund.testing import free_port, outbox_events

pytestmark = pytest.mark.integration

ADMIN = Principal("admin", "admin")
SECRET = "unsubscribe-test-secret"
PAGE = {"unread": False, "page": 1, "per_page": 50}


def set_preferences(uow, principal, member_id, body):
    """The use case with its input loaded as the PUT entrypoint loads it."""
    return services.preferences.set_preferences(uow, principal, member_id, PreferencesSchema().load(body))


def create_webhook(uow, principal, body):
    """The use case with its input loaded as the POST entrypoint loads it."""
    return services.webhooks.create_webhook(uow, principal, WebhookSchema().load(body))


def update_webhook(uow, principal, endpoint_id, body):
    """The use case with its input loaded as the PATCH entrypoint loads it."""
    return services.webhooks.update_webhook(uow, principal, endpoint_id, WebhookPatchSchema().load(body))


# These tests are about sending: every mail leaves at once (the policy's own tests are in test_use_cases).
AT_ONCE = domain.MailPolicy(default_frequency="immediately", coalesce_seconds=0, daily_budget=0)


def consume(store, *events):
    return [store.handle(event, partial(services.on_event, policy=AT_ONCE)) for event in events]


def rows(store, model, *conditions):
    with store.engine.connect() as conn:
        return conn.execute(select(model).where(*conditions)).all()


def count(store, model, *conditions):
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(model).where(*conditions)).scalar()


def send_emails(store, config, renderer=None):
    with SmtpSender("127.0.0.1", config.smtp_port, timeout=5) as sender:
        return dispatch.send_due_emails(store, config, renderer or Renderer(), SECRET, sender, limit=500)


def as_member(profile):
    return Principal(f"member:{profile['id']}", "member", member_id=profile["id"])


# --- the read model --------------------------------------------------------------------------------

def test_the_recipient_read_model_follows_members_and_ignores_stale_versions(store):
    registered = member(sector="it", topics=["ai"], language="en")
    member_id = profile_of(registered)["id"]
    consume(store, registered, member_updated(registered, 3, sector="logistics", topics=["green-logistics"]))
    consume(store, member_updated(registered, 2, sector="automotive", topics=["hydrogen"]))  # late, older
    [recipient] = rows(store, Recipient, Recipient.member_id == member_id)
    assert (recipient.version, recipient.sector, recipient.language) == (3, "logistics", "en")
    assert [r.topic for r in rows(store, RecipientTopic, RecipientTopic.member_id == member_id)] == ["green-logistics"]


def test_the_recipient_address_is_decrypted_with_the_members_key(store):
    from verbund.testing import member_event_v2, member_profile

    profile, key = member_profile(contact={"name": "Pia Lorenz", "email": "p.lorenz@firma.example",
                                           "language": "en"}), personal.new_key()
    store.handle(member_event_v2(profile, key), partial(services.on_event, keys={profile["id"]: key}.get))
    [recipient] = rows(store, Recipient, Recipient.member_id == profile["id"])
    assert (recipient.contact_name, recipient.email, recipient.language, recipient.consent_email) == \
        ("Pia Lorenz", "p.lorenz@firma.example", "en", True)


def test_an_update_after_the_key_was_erased_keeps_no_address_and_mails_nobody(store):
    """The member was erased while its member.updated waited in the queue: the key is gone, the
    recipient keeps no address (and so gets no mail) and nothing fails; member.deleted follows."""
    from verbund.testing import member_event_v2, member_profile

    profile, key = member_profile(), personal.new_key()
    keys = {profile["id"]: key}
    store.handle(member_event_v2(profile, key), partial(services.on_event, keys=keys.get))
    del keys[profile["id"]]
    update = member_event_v2({**profile, "version": 2, "topics": ["ai"]}, key, "member.updated", ["topics"])
    assert store.handle(update, partial(services.on_event, keys=keys.get)) is True
    [recipient] = rows(store, Recipient, Recipient.member_id == profile["id"])
    assert (recipient.version, recipient.contact_name, recipient.email, recipient.consent_email) == \
        (2, None, None, False)
    store.handle(member_deleted(profile["id"], 3), partial(services.on_event, keys=keys.get))
    [recipient] = rows(store, Recipient, Recipient.member_id == profile["id"])
    assert recipient.deleted and recipient.name is None


def test_erasure_forgets_the_member_everywhere_and_stays_erased(store, config):
    kept = member(sector="automotive")
    leaving = member(sector="automotive", topics=["battery-value-chain"])
    leaving_id, kept_id = profile_of(leaving)["id"], profile_of(kept)["id"]
    consume(store, kept, leaving)
    with store.unit_of_work() as uow:
        set_preferences(uow, as_member(profile_of(leaving)), leaving_id, {"frequency": "daily"})
        create_webhook(uow, ADMIN, {"url": "http://127.0.0.1:9/hook", "member_id": leaving_id,
                                                 "allow_private": True})
    consume(store, scheduled(joint_event()), match_suggested(kept_id, partner_id=leaving_id),
            project("project.proposed", [kept_id, leaving_id]))
    send_emails(store, config)
    assert count(store, Notification, Notification.member_id == leaving_id) == 2
    consume(store, member_deleted(leaving_id, version=2))

    for model in (Notification, Preference, PreferenceTopic, RecipientTopic, WebhookEndpoint):
        assert count(store, model, model.member_id == leaving_id) == 0, model.__name__
    assert count(store, Delivery, Delivery.member_id == leaving_id) == 0
    assert count(store, DeliveryAttempt) == count(store, Delivery, Delivery.status.in_(("delivered", "failed")))
    [tombstone] = rows(store, Recipient, Recipient.member_id == leaving_id)
    assert tombstone.deleted and tombstone.email is None and tombstone.name is None and tombstone.version == 2
    # What the remaining member still sees no longer names the erased one.
    for source in rows(store, SourceEvent):
        assert leaving_id not in source.body and profile_of(leaving)["contact"]["email"] not in source.body
    assert count(store, Notification, Notification.member_id == kept_id) == 3
    # A late update of the erased member does not bring it back, and nothing reaches it any more.
    consume(store, member_updated(leaving, 2, name="Zombie GmbH"), scheduled(joint_event()))
    assert rows(store, Recipient, Recipient.member_id == leaving_id)[0].deleted
    assert count(store, Notification, Notification.member_id == leaving_id) == 0


# --- who hears of what -----------------------------------------------------------------------------

def test_an_announcement_reaches_exactly_the_members_the_rule_selects(store):
    rng = random.Random(5)
    topics = ["ai", "hydrogen", "e-mobility", "battery-value-chain"]
    population = []
    for _ in range(60):
        event = member(sector=rng.choice(["automotive", "it", "logistics", "research"]),
                       topics=rng.sample(topics, rng.randint(0, 2)), consent_email=rng.random() < 0.7)
        preferred = rng.choice([None, None, ["ai"], ["hydrogen", "e-mobility"]])
        frequency = rng.choice(["immediately", "immediately", "daily"])
        population.append((event, preferred, frequency))
        consume(store, event)
        with store.unit_of_work() as uow:
            set_preferences(uow, ADMIN, profile_of(event)["id"],
                                     {"topics": preferred, "frequency": frequency})
    erased = population[0][0]
    consume(store, member_deleted(profile_of(erased)["id"]))
    joint = joint_event(target_sectors=["automotive", "research"], topics=["ai", "e-mobility"])
    with store.unit_of_work() as uow:
        counts = services.fanout.notify(uow, scheduled(joint), AT_ONCE)

    expected = {profile_of(e)["id"] for e, preferred, _ in population[1:] if domain.wants_announcement(
        profile_of(e)["sector"], profile_of(e)["topics"], preferred, joint["target_sectors"], joint["topics"])}
    reached = {row.member_id for row in rows(store, Notification)}
    assert reached == expected and 0 < len(expected) < 59
    emails = {row.member_id: row.status for row in rows(store, Delivery, Delivery.channel == "email")}
    consenting = {profile_of(e)["id"]: f for e, _, f in population if profile_of(e)["consent"]["email"]}
    assert emails == {m: "held" if consenting[m] == "daily" else "pending" for m in expected if m in consenting}
    assert counts["inbox"] == len(expected) and counts["email"] + counts["held"] == len(emails)


def test_named_members_hear_of_changes_registrations_and_projects(store):
    first, second, gone = member(), member(language="en"), member()
    ids = [profile_of(m)["id"] for m in (first, second, gone)]
    consume(store, first, second, gone, member_deleted(ids[2]))
    joint = joint_event()
    consume(store, event_changed("event.updated", joint, ids), registration("registration.confirmed", ids[1], joint),
            project("project.formed", ids[:2]))
    by_member = {}
    for row in rows(store, Notification):
        by_member.setdefault(row.member_id, []).append(row.source_type)
    assert by_member == {ids[0]: ["event.updated", "project.formed"],
                         ids[1]: ["event.updated", "registration.confirmed", "project.formed"]}


def _hook(uow, member_id, enabled=True):
    endpoint = create_webhook(uow, ADMIN, {"url": "http://127.0.0.1:9/hook", "member_id": member_id,
                                           "allow_private": True})
    if not enabled:
        update_webhook(uow, ADMIN, endpoint["id"], {"enabled": False})
    return endpoint["id"]


def test_a_named_event_writes_each_members_deliveries_by_its_consent_preferences_and_endpoints(store):
    plain, digest, quiet, refused, erased = (member(), member(), member(), member(consent_email=False), member())
    ids = {name: profile_of(m)["id"] for name, m in
           [("plain", plain), ("digest", digest), ("quiet", quiet), ("refused", refused), ("erased", erased)]}
    ids["early"], ids["stranger"] = str(uuid.uuid4()), str(uuid.uuid4())  # registrations not arrived yet
    consume(store, plain, digest, quiet, refused, erased)
    with store.unit_of_work() as uow:
        hooks = {"plain": _hook(uow, ids["plain"]), "digest": _hook(uow, ids["digest"]),
                 "quiet": _hook(uow, ids["quiet"]), "refused": _hook(uow, ids["refused"]),
                 "erased": _hook(uow, ids["erased"]), "early": _hook(uow, ids["early"])}
        _hook(uow, ids["digest"], enabled=False)
        set_preferences(uow, ADMIN, ids["digest"], {"frequency": "weekly", "kinds": {"event_updated": "digest"}})
        set_preferences(uow, ADMIN, ids["quiet"], {"channels": {"email": False, "webhook": False}})
        crm = create_webhook(uow, ADMIN, {
            "url": "http://127.0.0.1:9/crm", "event_types": ["event.*"], "allow_private": True})["id"]
    consume(store, member_deleted(ids["erased"]))
    updated = event_changed("event.updated", joint_event(), list(ids.values()))
    with store.unit_of_work() as uow:
        counts = services.fanout.notify(uow, updated)

    assert counts == {"inbox": 6, "email": 1, "held": 1, "webhook": 4, "integrator": 1}
    inbox = {row.member_id: row.id for row in rows(store, Notification)}
    assert set(inbox) == {member_id for name, member_id in ids.items() if name != "erased"}
    written = {(d.channel, d.target, d.member_id, d.notification_id, d.status, d.source_type, d.subject)
               for d in rows(store, Delivery, Delivery.source_event_id == updated["id"])}
    subject = updated["subject"]
    assert written == {
        ("email", ids["plain"], ids["plain"], inbox[ids["plain"]], "pending", "event.updated", subject),
        ("email", ids["digest"], ids["digest"], inbox[ids["digest"]], "held", "event.updated", subject),
        *{("webhook", hooks[name], ids[name], inbox[ids[name]], "pending", "event.updated", subject)
          for name in ("plain", "digest", "refused", "early")},
        ("webhook", crm, None, None, "pending", "event.updated", subject),
    }
    assert [row.id for row in rows(store, SourceEvent)] == [updated["id"]]
    # A suggestion for an erased member alone writes nothing at all.
    with store.unit_of_work() as uow:
        assert services.fanout.notify(uow, match_suggested(ids["erased"])) == {
            "inbox": 0, "email": 0, "held": 0, "webhook": 0, "integrator": 0}
    assert count(store, SourceEvent) == 1


def test_named_and_announced_events_apply_the_same_delivery_rules(store):
    """A named event's deliveries are decided in Python, an announcement's and the calendar holders'
    in SQL: both as ``domain.email_status`` says, per kind, frequency and the member's choice."""
    rng = random.Random(11)
    population = [member(sector="automotive", consent_email=rng.random() < 0.7) for _ in range(40)]
    consume(store, *population)
    ids = [profile_of(m)["id"] for m in population]
    consent = {profile_of(m)["id"]: profile_of(m)["consent"]["email"] for m in population}
    chosen = {}
    with store.unit_of_work() as uow:
        for member_id in ids:
            body = {"frequency": rng.choice(["immediately", "daily", "weekly"]),
                    "channels": {"email": rng.random() < 0.8, "webhook": rng.random() < 0.8},
                    "kinds": {kind: rng.choice([None, "immediately", "digest", "inbox"])
                              for kind in ("event_announced", "event_updated")}}
            chosen[member_id] = body
            set_preferences(uow, ADMIN, member_id, body)
            for _ in range(rng.choice([0, 0, 1, 2])):
                _hook(uow, member_id, enabled=rng.random() < 0.8)
    consume(store, *(member_deleted(member_id) for member_id in ids[:3]))
    joint = joint_event(target_sectors=["automotive"], topics=[])
    announced = scheduled(joint)
    named, holders = (event_changed("event.updated", joint, ids[:20]), event_changed("event.updated", joint, []))
    with store.unit_of_work() as uow:
        counts = [services.fanout.notify(uow, event) for event in (announced, named, holders)]

    def expected(kind, members):
        return {(m, status) for m in members if (status := domain.email_status(
            consent[m], "x", chosen[m]["channels"]["email"], chosen[m]["frequency"], kind, chosen[m]["kinds"][kind]))}

    def emails(event):
        return {(d.target, d.status) for d in rows(store, Delivery, Delivery.source_event_id == event["id"],
                                                    Delivery.channel == "email")}

    def hooks(event):
        return {(d.target, d.member_id, d.status) for d in rows(
            store, Delivery, Delivery.source_event_id == event["id"], Delivery.channel == "webhook",
            Delivery.member_id.is_not(None))}

    assert counts[0]["inbox"] == 37 and counts[0]["webhook"] > 0
    live = ids[3:]
    assert emails(announced) == expected("event_announced", live)
    # A change: named (registered) members by the policy of changes, members only invited (calendar
    # holders) by the policy of announcements (domain.holder_kind).
    assert emails(named) == expected("event_updated", ids[3:20]) | expected("event_announced", ids[20:])
    assert emails(holders) == expected("event_announced", live)
    assert expected("event_updated", live) != expected("event_announced", live)
    assert hooks(announced) == hooks(named) == hooks(holders)
    assert {s for _, s in emails(named)} == {"pending", "held"}


def test_a_redelivered_event_changes_nothing(store):
    consume(store, member(sector="automotive"), member(sector="automotive"))
    announcement = scheduled(joint_event())
    assert consume(store, announcement, announcement) == [True, False]
    assert count(store, Notification) == 2 and count(store, Delivery) == 2
    # Even past the inbox claim, the unique keys refuse a second notification of the same event.
    with pytest.raises(IntegrityError):
        with store.unit_of_work() as uow:
            services.fanout.notify(uow, announcement, AT_ONCE)
    assert count(store, Notification) == 2


# --- e-mail ----------------------------------------------------------------------------------------

def test_mails_go_out_through_smtp_with_their_calendar_and_are_reported(store, config, mailcatcher, event_tap):
    tap = event_tap("notification.*")
    german, english, silent = member(), member(language="en", contact_name="Sam Smith"), member(consent_email=False)
    consume(store, german, english, silent)
    # Two joint events: mails about one and the same event would become one message (test_use_cases).
    announced, joint = joint_event(target_sectors=["automotive"]), joint_event(title="Speed-Dating", version=2)
    consume(store, scheduled(announced), registration("registration.confirmed", profile_of(english)["id"], joint))
    assert send_emails(store, config) == 3

    [invitation] = mailcatcher.wait(1, to=profile_of(german)["contact"]["email"])
    assert invitation["Subject"].startswith("Einladung: ") and invitation["Content-Language"] == "de"
    english_mails = mailcatcher.wait(2, to=profile_of(english)["contact"]["email"])
    assert sorted(m["Subject"].split(":")[0] for m in english_mails) == ["Invitation", "Registration confirmed"]
    assert not mailcatcher.mails(to=profile_of(silent)["contact"]["email"])  # no consent, no mail
    confirmation = next(m for m in english_mails if m["Subject"].startswith("Registration"))
    assert "Hello Sam Smith," in confirmation.get_body(("plain",)).get_content()
    [ics] = [part for part in confirmation.iter_attachments() if part.get_content_type() == "text/calendar"]
    [vevent] = Calendar.from_ical(ics.get_payload(decode=True)).walk("VEVENT")
    assert str(vevent["SUMMARY"]) == joint["title"] and vevent["SEQUENCE"] == joint["version"]

    assert {row.status for row in rows(store, Delivery)} == {"delivered"}
    delivered = tap.wait("notification.delivered", count=3)
    assert {e["data"]["channel"] for e in delivered} == {"email"}
    assert send_emails(store, config) == 0  # nothing is sent twice


def test_a_german_sender_and_recipient_arrive_as_names_and_addresses(store, config, mailcatcher):
    config = replace(config, mail_from="Verbund Geschäftsstelle <noreply@verbund.example>")
    umlauts = member(contact_name="Jürgen Müller-Lüdenscheidt")
    stored_badly = member()
    consume(store, umlauts, stored_badly)
    with store.engine.begin() as conn:  # a name stored before input was cleaned
        conn.execute(update(Recipient).where(Recipient.member_id == profile_of(stored_badly)["id"])
                     .values(contact_name="Anna\x0bBerg"))
    joint = joint_event()
    consume(store, *(registration("registration.confirmed", profile_of(each)["id"], joint)
                     for each in (umlauts, stored_badly)))
    assert send_emails(store, config) == 2

    for registered, name in ((umlauts, "Jürgen Müller-Lüdenscheidt"), (stored_badly, "Anna Berg")):
        address = profile_of(registered)["contact"]["email"]
        [mail] = mailcatcher.wait(1, to=address)
        [sender] = mail["From"].addresses
        assert (sender.display_name, sender.addr_spec) == ("Verbund Geschäftsstelle", "noreply@verbund.example")
        [recipient] = mail["To"].addresses
        assert (recipient.display_name, recipient.addr_spec) == (name, address)
        assert mail["Message-ID"].endswith("@verbund.example>")


def test_an_unreachable_mail_server_is_retried_then_reported_as_failed(store, config):
    consume(store, member(sector="automotive"), scheduled(joint_event()))
    down = replace(config, smtp_port=free_port())
    for _ in range(3):
        with SmtpSender("127.0.0.1", down.smtp_port, timeout=2) as sender:
            dispatch.send_due_emails(store, down, Renderer(), SECRET, sender)
    [delivery] = rows(store, Delivery)
    assert delivery.status == "failed" and delivery.attempts == 3 and "unavailable" in delivery.last_error
    assert [a.outcome for a in rows(store, DeliveryAttempt)] == ["retry", "retry", "failed"]
    [failed] = outbox_events(store, "notification.failed")
    assert failed["data"]["attempts"] == 3 and failed["data"]["channel"] == "email"
    with store.unit_of_work() as uow:
        assert queries.failures(uow.session, {"page": 1, "per_page": 10})["total"] == 1


def test_a_refusal_that_names_the_recipient_leaves_its_address_out_of_notification_failed(store):
    recipient = member(sector="automotive")
    address = profile_of(recipient)["contact"]["email"]
    consume(store, recipient, scheduled(joint_event()))
    with store.unit_of_work() as uow:
        delivery = uow.session.execute(select(Delivery)).scalar_one()
        deliveries.fail(uow, delivery, f"recipient refused: 550 b'5.1.1 <{address}>: Recipient address "
                                         f"rejected: User unknown in virtual mailbox table'")
    [failed] = outbox_events(store, "notification.failed")
    assert address not in json.dumps(failed)
    assert failed["data"]["error"] == ("recipient refused: 550 b'5.1.1 <<address>>: Recipient address rejected: "
                                       "User unknown in virtual mailbox table'")


def test_a_template_that_fails_lands_in_the_failure_log_not_in_a_crash(store, config, tmp_path, mailcatcher):
    (tmp_path / "de").mkdir()
    (tmp_path / "de" / "event_announced.txt").write_text(
        "{% block subject %}{{ event.missing }}{% endblock %}{% block summary %}{% endblock %}"
        "{% block content %}{% endblock %}")
    recipient = member(sector="automotive")
    consume(store, recipient, scheduled(joint_event()))
    send_emails(store, config, Renderer(str(tmp_path)))
    [delivery] = rows(store, Delivery)
    assert delivery.status == "failed" and "missing" in delivery.last_error
    assert not mailcatcher.mails(to=profile_of(recipient)["contact"]["email"])
    assert outbox_events(store, "notification.failed")[0]["data"]["error"].startswith("could not render")
    # The inbox still lists the entry, titled by its type.
    with store.unit_of_work() as uow:
        [entry] = queries.inbox(uow.session, ADMIN, profile_of(recipient)["id"], PAGE, Renderer(str(tmp_path)))["items"]
    assert entry["title"] == "event.scheduled"


def test_a_digest_groups_what_was_held_into_one_mail_at_its_hour(store, config, mailcatcher):
    recipient = member(sector="automotive")
    member_id, address = profile_of(recipient)["id"], profile_of(recipient)["contact"]["email"]
    consume(store, recipient)
    with store.unit_of_work() as uow:
        set_preferences(uow, as_member(profile_of(recipient)), member_id, {"frequency": "daily"})
    consume(store, scheduled(joint_event(title="Erstes Treffen")), scheduled(joint_event(title="Zweites Treffen")))
    assert send_emails(store, config) == 0  # held for the digest
    hour = replace(config, digest_hour=7, digest_timezone="UTC")
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    with store.unit_of_work() as uow:  # the last digest went out the morning before
        uow.session.add(Mailbox(member_id=member_id, budget_used=0,
                                last_digest_at=day - timedelta(hours=16, minutes=30)))
    with SmtpSender("127.0.0.1", config.smtp_port) as sender:
        def digests_at(hh, mm):
            return dispatch.send_due_digests(store, hour, Renderer(), SECRET, sender,
                                             now=day + timedelta(hours=hh, minutes=mm))

        assert [digests_at(6, 59), digests_at(7, 1), digests_at(7, 2)] == [0, 1, 0]
    [digest] = mailcatcher.wait(1, to=address)
    text = digest.get_body(("plain",)).get_content()
    assert digest["Subject"] == "Ihre tägliche Übersicht: 2 Neuigkeiten"
    assert "Erstes Treffen" in text and "Zweites Treffen" in text
    assert {row.status for row in rows(store, Delivery)} == {"delivered"}
    assert len(outbox_events(store, "notification.delivered")) == 2


# --- preferences, unsubscribe, inbox ---------------------------------------------------------------

@pytest.mark.parametrize("body, field", [
    ({"language": "fr"}, "language"), ({"topics": ["underwater-basket-weaving"]}, "topics"),
    ({"frequency": "hourly"}, "frequency"), ({"channels": {"inbox": False}}, "channels"),
    ({"channels": {"email": "maybe"}}, "channels"), ({"colour": "blue"}, "colour"),
])
def test_bad_preferences_are_refused_with_the_field(store, body, field):
    recipient = member()
    consume(store, recipient)
    with pytest.raises(ValidationError) as refused:
        with store.unit_of_work() as uow:
            set_preferences(uow, as_member(profile_of(recipient)), profile_of(recipient)["id"], body)
    assert field in refused.value.messages
    assert count(store, Preference) == 0


def test_preferences_are_a_members_own(store):
    mine, theirs = member(), member()
    consume(store, mine, theirs, member_deleted(profile_of(theirs)["id"]))
    with pytest.raises(Forbidden):
        with store.unit_of_work() as uow:
            set_preferences(uow, as_member(profile_of(mine)), profile_of(theirs)["id"], {})
    with pytest.raises(Gone):
        with store.unit_of_work() as uow:
            queries.get_preferences(uow.session, ADMIN, profile_of(theirs)["id"])
    with store.unit_of_work() as uow:
        view = set_preferences(uow, as_member(profile_of(mine)), profile_of(mine)["id"],
                                        {"channels": {"webhook": False}, "topics": ["ai"], "language": "en"})
    assert view["channels"] == {"inbox": True, "email": True, "webhook": False}
    assert view["topics"] == ["ai"] and view["effective_language"] == "en" and view["email_consent"] is True


def test_the_unsubscribe_token_turns_email_off_and_stops_waiting_mails(store, config):
    recipient = member(sector="automotive")
    member_id = profile_of(recipient)["id"]
    consume(store, recipient, scheduled(joint_event()))
    with pytest.raises(NotFound):
        with store.unit_of_work() as uow:
            services.preferences.unsubscribe(uow, domain.unsubscribe_token(member_id, "wrong secret"), SECRET)
    with store.unit_of_work() as uow:
        assert services.preferences.unsubscribe(uow, domain.unsubscribe_token(member_id, SECRET), SECRET) == member_id
        assert queries.get_preferences(uow.session, ADMIN, member_id)["channels"]["email"] is False
    assert send_emails(store, config) == 0
    assert rows(store, Delivery)[0].status == "cancelled"


def test_the_inbox_pages_newest_first_filters_unread_and_marks_read(store):
    recipient = member(sector="automotive", language="en")
    member_id = profile_of(recipient)["id"]
    owner = as_member(profile_of(recipient))
    consume(store, recipient, *[scheduled(joint_event(title=f"Meetup {n}")) for n in range(5)])
    renderer = Renderer()
    with store.unit_of_work() as uow:
        first = queries.inbox(uow.session, owner, member_id, {"unread": False, "page": 1, "per_page": 2}, renderer)
        assert first["total"] == 5 and first["unread"] == 5
        assert [item["title"].split(" on ")[0] for item in first["items"]] == ["Invitation: Meetup 4",
                                                                               "Invitation: Meetup 3"]
        marked = services.inbox.mark_read(uow, owner, member_id, first["items"][0]["id"], renderer)
        assert marked["read"] is True
        unread = queries.inbox(uow.session, owner, member_id, {"unread": True, "page": 1, "per_page": 10}, renderer)
        assert unread["total"] == 4 and first["items"][0]["id"] not in [i["id"] for i in unread["items"]]
        with pytest.raises(Forbidden):
            queries.inbox(uow.session, Principal("x", "member", member_id="someone-else"), member_id, PAGE, renderer)
        with pytest.raises(NotFound):
            services.inbox.mark_read(uow, owner, member_id, 999999, renderer)
        assert services.inbox.mark_all_read(uow, owner, member_id) == {"marked": 4}


# --- webhooks --------------------------------------------------------------------------------------

class ThreadPool:
    """What WebhookDispatcher needs of a pool, on threads (the service uses an eventlet GreenPool)."""

    def __init__(self, size: int):
        self.size, self.running, self.lock = size, 0, threading.Lock()
        self.executor = ThreadPoolExecutor(size)

    def free(self) -> int:
        return self.size - self.running

    def spawn_n(self, fn, *args):
        with self.lock:
            self.running += 1

        def run():
            try:
                fn(*args)
            finally:
                with self.lock:
                    self.running -= 1

        self.executor.submit(run)

    def idle(self) -> bool:
        return self.running == 0


def drain_webhooks(dispatcher, store, rounds=10):
    from verbund.testing import wait_for

    for _ in range(rounds):
        dispatcher.dispatch_due(store)
        wait_for(dispatcher.pool.idle, timeout=30, message="webhook tasks to finish")


def make_webhook(store, principal, **body):
    with store.unit_of_work() as uow:
        return create_webhook(uow, principal, body)


def test_webhook_targets_and_owners_are_checked(store):
    owner = member()
    consume(store, owner)
    principal = as_member(profile_of(owner))
    for url in ("http://127.0.0.1:8080/x", "http://10.0.0.7/x", "http://169.254.169.254/x", "gopher://x"):
        with pytest.raises(Unprocessable) as refused:
            make_webhook(store, principal, url=url)
        assert "url" in refused.value.details["fields"]
    with pytest.raises(Forbidden):
        make_webhook(store, principal, url="http://127.0.0.1:8080/x", allow_private=True)
    with pytest.raises(Forbidden):
        make_webhook(store, principal, url="https://93.184.215.14/x", member_id="another-member")
    with pytest.raises(ValidationError):
        make_webhook(store, Principal("crm", "integrator"), url="https://93.184.215.14/x",
                     event_types=["billing.*"])
    created = make_webhook(store, principal, url="https://93.184.215.14/x")
    assert created["secret"].startswith("whsec_") and created["owner"]["member_id"] == profile_of(owner)["id"]
    with store.unit_of_work() as uow:
        assert queries.list_webhooks(uow.session, Principal("crm", "integrator"))["items"] == []
        assert "secret" not in queries.get_webhook(uow.session, principal, created["id"])


def test_webhooks_are_signed_retried_and_a_410_disables_the_endpoint(store, config, receiver):
    owner, integrated = member(sector="automotive"), member(sector="it")
    consume(store, owner, integrated)
    hook = make_webhook(store, ADMIN, url=f"{receiver.url}/member", member_id=profile_of(owner)["id"],
                        allow_private=True)
    crm = make_webhook(store, ADMIN, url=f"{receiver.url}/crm", event_types=["event.*"], allow_private=True)
    receiver.script = {"/member": [500, 200], "/crm": [410]}
    consume(store, scheduled(joint_event()), scheduled(joint_event()))
    # One request at a time per endpoint, so the CRM's second delivery waits behind the first.
    dispatcher = dispatch.WebhookDispatcher(replace(config, webhook_per_endpoint=1), Renderer(), ThreadPool(4))
    drain_webhooks(dispatcher, store)

    posts = receiver.received("/member")
    assert len(posts) == 3  # two notifications, the first of which was answered 500 once
    for post in posts:
        webhook.verify(hook["secret"], post["headers"], post["body"])
        payload = json.loads(post["body"])
        assert payload["type"] == "event.scheduled" and payload["data"]["member_id"] == profile_of(owner)["id"]
        assert payload["data"]["title"].startswith("Einladung:")
    assert len({p["headers"]["webhook-id"] for p in posts}) == 2  # a retry keeps its message id
    with store.unit_of_work() as uow:
        log = queries.webhook_deliveries(uow.session, ADMIN, hook["id"], {"page": 1, "per_page": 10})
        assert sorted(len(item["log"]) for item in log["items"]) == [1, 2]
        assert {item["status"] for item in log["items"]} == {"delivered"}
        crm_view = queries.get_webhook(uow.session, ADMIN, crm["id"])
        assert crm_view["enabled"] is False and "410" in crm_view["disabled_reason"]
    assert len(receiver.received("/crm")) == 1  # disabled after the first answer; the second was never sent
    failed = outbox_events(store, "notification.failed")
    assert len(failed) == 2 and {e["data"]["endpoint_id"] for e in failed} == {crm["id"]}
    assert len(outbox_events(store, "notification.delivered")) == 2


def integrator_revoked(name: str, serial: int = 1) -> dict:
    """integrator.revoked as members-service publishes it."""
    from verbund import envelope

    return envelope.new_event("integrator.revoked", "/verbund/members", name,
                              {"name": name, "serial": serial, "revoked_at": "2026-12-06T09:30:00Z"})


def test_a_revoked_integrators_webhooks_are_disabled_and_hear_nothing_more(store):
    crm_principal, erp_principal = Principal("crm", "integrator"), Principal("erp", "integrator")
    crm = make_webhook(store, crm_principal, url="https://93.184.215.14/crm")
    crm_events = make_webhook(store, crm_principal, url="https://93.184.215.14/crm-events", event_types=["event.*"])
    erp = make_webhook(store, erp_principal, url="https://93.184.215.14/erp")
    consume(store, scheduled(joint_event()))  # a delivery waits for each endpoint

    with store.unit_of_work() as uow:
        assert services.on_event(uow, integrator_revoked("crm")) == {"disabled": 2}
    with store.unit_of_work() as uow:
        for hook in (crm, crm_events):
            view = queries.get_webhook(uow.session, ADMIN, hook["id"])
            assert view["enabled"] is False and view["disabled_reason"] == "integrator revoked"
            waiting = uow.session.execute(select(Delivery.status, Delivery.last_error)
                                          .where(Delivery.target == hook["id"])).all()
            assert [status for status, _ in waiting] == ["failed"] and "integrator revoked" in waiting[0][1]
        assert queries.get_webhook(uow.session, ADMIN, erp["id"])["enabled"] is True
    failed = outbox_events(store, "notification.failed")
    assert {e["data"]["endpoint_id"] for e in failed} == {crm["id"], crm_events["id"]}

    consume(store, scheduled(joint_event()))
    with store.unit_of_work() as uow:
        per_target = dict(uow.session.execute(select(Delivery.target, func.count()).group_by(Delivery.target)).all())
        types = set(uow.session.execute(select(Delivery.source_type)).scalars())
    assert per_target == {crm["id"]: 1, crm_events["id"]: 1, erp["id"]: 2}  # nothing new for the revoked one
    assert types == {"event.scheduled"}  # the revocation itself reaches no webhook
    # Announced again (a second revocation): nothing left to disable; no integrator asks for revocations.
    with store.unit_of_work() as uow:
        assert services.on_event(uow, integrator_revoked("crm")) == {"disabled": 0}
    with pytest.raises(ValidationError):
        make_webhook(store, erp_principal, url="https://93.184.215.14/x", event_types=["integrator.*"])


def test_an_integrator_receives_the_cloudevents_it_asked_for(store, config, receiver):
    crm = make_webhook(store, ADMIN, url=f"{receiver.url}/crm", event_types=["registration.*", "member.deleted"],
                       allow_private=True)
    registered = member()
    consume(store, registered)
    joint = joint_event()
    consume(store, scheduled(joint), registration("registration.confirmed", profile_of(registered)["id"], joint),
            member_deleted(profile_of(registered)["id"]))
    drain_webhooks(dispatch.WebhookDispatcher(config, Renderer(), ThreadPool(2)), store)
    # The registration was about the member, who left before it was sent: erasure took it back.
    types = [json.loads(p["body"])["data"]["type"] for p in receiver.received("/crm")]
    assert types == ["member.deleted"]
    for post in receiver.received("/crm"):
        webhook.verify(crm["secret"], post["headers"], post["body"])
