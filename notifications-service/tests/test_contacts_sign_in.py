"""Contact requests and sign-in links in notifications: who hears of a contact.* event, the mails'
words in both languages, the sign-in mail's format, and the fan-out as a use case (SQLite, recording
publisher, fixed clock)."""
import uuid

import pytest
from sqlalchemy import select

from notifications import domain, services, sign_in
from notifications.config import Config
from notifications.models import Delivery, Notification
from notifications.rendering import Renderer, context_for
from notifications.testing import contact_event, member, profile_of
from verbund.testing import use_case_store

A, B = str(uuid.uuid4()), str(uuid.uuid4())


@pytest.mark.parametrize("type_, told", [("contact.requested", B), ("contact.accepted", A),
                                         ("contact.declined", A)])
def test_the_member_asked_hears_of_a_request_and_the_requester_of_the_answer(type_, told):
    assert domain.plan(contact_event(type_, A, B)).member_ids == (told,)
    assert domain.about_member(contact_event(type_, A, B), A) and domain.about_member(contact_event(type_, A, B), B)


@pytest.mark.parametrize("lang", ["de", "en"])
@pytest.mark.parametrize("type_", ["contact.requested", "contact.accepted", "contact.declined"])
def test_contact_mails_name_the_organisation_and_link_to_the_contacts_page(type_, lang, monkeypatch):
    event = contact_event(type_, A, B)
    rendered = Renderer().render(domain.KINDS[type_], lang, context_for(type_, event["data"], lang),
                                 footer={"recipient_name": "Erika Muster", "unsubscribe_url": "https://u.example/x"})
    other = "Alpha Zulieferer GmbH" if type_ == "contact.requested" else "Beta Logistik GmbH"
    assert other in rendered.subject and other in rendered.summary
    assert "http://localhost:8000/contacts" in rendered.text
    assert "{{" not in rendered.text
    if type_ == "contact.declined":  # neutral words, no blame
        assert not any(word in rendered.text.lower() for word in ("abgelehnt", "rejected", "declined"))


def test_the_portal_address_comes_from_portal_url(monkeypatch):
    monkeypatch.setenv("PORTAL_URL", "https://verbund.example/")
    event = contact_event("contact.accepted", A, B)
    rendered = Renderer().render("contact_accepted", "de", context_for("contact.accepted", event["data"], "de"),
                                 footer={"recipient_name": None, "unsubscribe_url": "https://u.example/x"})
    assert "https://verbund.example/contacts" in rendered.text


@pytest.mark.parametrize("lang, subject, words", [("de", "Ihr Anmeldelink für Verbund", "gilt 15 Minuten"),
                                                  ("en", "Your sign-in link for Verbund", "for 15 minutes"),
                                                  ("fr", "Ihr Anmeldelink für Verbund", "gilt 15 Minuten")])
def test_the_sign_in_mail_carries_the_link_in_the_members_language_without_unsubscribe(lang, subject, words):
    link = "http://localhost:8000/sign-in/abc_DEF-123"
    message = sign_in.compose(Config(), Renderer(), email="jana@bäcker.example", contact_name="Jana Keller",
                              organisation="Bäckerei Keller GmbH", language=lang, link=link, expires_minutes=15)
    body = message.get_payload(decode=True).decode("utf-8")
    assert link in body and words in body and "Bäckerei Keller GmbH" in body
    assert str(message["Content-Language"]) == ("en" if lang == "en" else "de")
    assert "List-Unsubscribe" not in message and message["Auto-Submitted"] == "auto-generated"
    assert "xn--bcker-gra.example" in message["To"]
    from email.header import decode_header, make_header
    assert str(make_header(decode_header(message["Subject"]))) == subject


class FailingSender:
    def __init__(self, error):
        self.error, self.calls = error, 0

    def send(self, message, to):
        self.calls += 1
        raise self.error


def test_a_sign_in_mail_that_cannot_be_sent_is_tried_twice_and_reported_without_the_address(caplog):
    from notifications.channels.email import SendError

    sender = FailingSender(SendError("SMTP server down for x@example.org"))
    result = sign_in.send(Config(), Renderer(), sender, email="x@example.org", contact_name=None, organisation=None,
                          language="de", link="http://p/sign-in/secret", expires_minutes=15)
    assert result["sent"] is False and sender.calls == 2
    assert "x@example.org" not in result["error"] and "secret" not in caplog.text
    permanent = FailingSender(SendError("550 no such user", permanent=True))
    sign_in.send(Config(), Renderer(), permanent, email="x@example.org", contact_name=None, organisation=None,
                 language="de", link="http://p/sign-in/secret", expires_minutes=15)
    assert permanent.calls == 1


def test_a_contact_request_reaches_the_recipients_inbox_and_mail_at_once(tmp_path):
    with use_case_store("notifications", tmp_path) as store:
        requester, recipient = member(), member(language="en")
        for event in (requester, recipient):
            store.handle(event, services.on_event)
        a, b = profile_of(requester)["id"], profile_of(recipient)["id"]
        asked = contact_event("contact.requested", a, b)
        store.handle(asked, services.on_event)
        answered = contact_event("contact.declined", a, b, id=asked["data"]["request"]["id"])
        store.handle(answered, services.on_event)
        with store.unit_of_work() as uow:
            inbox = {(n.member_id, n.source_type) for n in uow.session.execute(select(Notification)).scalars()}
            mails = {(d.member_id, d.source_type, d.status) for d in uow.session.execute(
                select(Delivery).where(Delivery.channel == "email")).scalars()}
        assert inbox == {(b, "contact.requested"), (a, "contact.declined")}
        # The request needs the recipient: mailed at once; a decline is news and waits for the digest.
        assert mails == {(b, "contact.requested", "pending"), (a, "contact.declined", "held")}


@pytest.mark.parametrize("lang, role, association, invited_by, words", [
    ("en", "admin", None, None, ["You have been invited to Verbund", "as an admin of the platform", "72 hours"]),
    ("en", "organizer", "logistics-network", "Rita Root",
     ["Rita Root has invited you", "as an organizer (Logistics network)"]),
    ("de", "organizer", "automotive-cluster", None,
     ["Sie sind zu Verbund eingeladen", "als Organisator*in (Automobilcluster)", "72 Stunden"])])
def test_the_staff_invitation_says_who_invited_whom_as_what(lang, role, association, invited_by, words):
    link = "http://localhost:8000/sign-in/abc_DEF-123"
    message = sign_in.compose_invitation(Config(), Renderer(), email="olga@cluster.example", name="Olga Organa",
                                         role=role, association=association, language=lang, invited_by=invited_by,
                                         link=link, expires_hours=72)
    body = message.get_payload(decode=True).decode("utf-8")
    assert link in body and all(word in body for word in words), body
    assert str(message["Content-Language"]) == lang and "List-Unsubscribe" not in message


@pytest.mark.parametrize("purpose, lang, subject, words, reason", [
    ("welcome", "de", "Willkommen bei Verbund: bitte bestätigen Sie Ihre Adresse",
     "bestätigen Sie diese E-Mail-Adresse", "bei der Registrierung"),
    ("welcome", "en", "Welcome to Verbund: please confirm your address", "confirm this e-mail address",
     "when an organisation registered"),
    ("confirm_email", "de", "Bitte bestätigen Sie Ihre neue E-Mail-Adresse bei Verbund", "gilt 24 Stunden",
     "als neue Kontaktadresse"),
    ("confirm_email", "en", "Please confirm your new e-mail address for Verbund", "for 24 hours",
     "as the new contact address"),
    ("email_change_notice", "de", "Die Kontaktadresse Ihrer Organisation bei Verbund soll geändert werden",
     "erst, wenn sie mit dem Link bestätigt ist", "die Kontaktadresse einer Organisation ist"),
    ("email_change_notice", "en", "A change of your organisation's contact address at Verbund was requested",
     "only once it is confirmed", "is the contact address of an organisation"),
])
def test_the_account_mails_say_what_they_are_for_in_the_members_language(purpose, lang, subject, words, reason):
    link = "http://localhost:8000/somewhere/abc_DEF-123"
    message = sign_in.compose(Config(), Renderer(), email="jana@example.org", contact_name="Jana Keller",
                              organisation="Bäckerei Keller GmbH", language=lang, link=link, expires_minutes=15,
                              purpose=purpose)
    body = message.get_payload(decode=True).decode("utf-8")
    assert link in body and words in body and reason in body and "Bäckerei Keller GmbH" in body
    assert "Anmeldelink für diese Adresse angefordert" not in body and "asked the Verbund platform" not in body
    assert "List-Unsubscribe" not in message and message["Auto-Submitted"] == "auto-generated"
    from email.header import decode_header, make_header
    assert str(make_header(decode_header(message["Subject"]))) == subject


def test_an_unknown_purpose_is_not_mailed():
    with pytest.raises(ValueError):
        sign_in.compose(Config(), Renderer(), email="jana@example.org", contact_name=None, organisation=None,
                        language="de", link="http://x", expires_minutes=15, purpose="newsletter")
