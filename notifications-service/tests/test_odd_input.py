"""Real-world input on the mail and webhook channels (issue 11): an address with an internationalised
domain, a sender named "… e.V.", a mail that breaks for an unexpected reason, a delivery whose sender
died, a webhook URL with a space, an unsubscribe link that is cut off or forged. Use cases on SQLite
and PostgreSQL, mails through the real mail catcher process."""
import json
from dataclasses import replace
from datetime import timedelta
from email import message_from_bytes, policy
from functools import partial

import pytest
from sqlalchemy import func, select, update

from notifications import deliveries, dispatch, domain, queries, services
from notifications.channels import email as mail
from notifications.channels import webhook
from notifications.channels.email import SmtpSender
from notifications.config import Config
from notifications.models import Delivery, DeliveryAttempt, SourceEvent, WebhookEndpoint
from notifications.rendering import Rendered, Renderer
from notifications.schemas import WebhookPatchSchema, WebhookSchema
from notifications.testing import joint_event, member, profile_of, registration
from verbund.auth import Principal
from verbund.errors import NotFound, Unprocessable

pytestmark = pytest.mark.integration

SECRET = "odd-input-secret"


# These tests are about sending: every mail leaves at once (the policy's own tests are in test_use_cases).
AT_ONCE = domain.MailPolicy(default_frequency="immediately", coalesce_seconds=0, daily_budget=0)


def consume(store, *events):
    for event in events:
        store.handle(event, partial(services.on_event, policy=AT_ONCE))


def send_emails(store, config, sender=None):
    with sender or SmtpSender("127.0.0.1", config.smtp_port, timeout=5) as smtp:
        return dispatch.send_due_emails(store, config, Renderer(), SECRET, smtp, limit=500)


def deliveries_by_address(store, members):
    with store.engine.connect() as conn:
        found = {d.target: d for d in conn.execute(select(Delivery)).all()}
    return {profile_of(m)["contact"]["email"]: found[profile_of(m)["id"]] for m in members}


def confirmations(store, *members):
    """Each member registered for the same event: one mail each, in one batch."""
    joint = joint_event()
    consume(store, *members, *(registration("registration.confirmed", profile_of(m)["id"], joint) for m in members))


# --- 2: an internationalised domain, and a batch that one mail cannot break ------------------------

def test_a_member_at_an_umlaut_domain_gets_its_mail_and_the_batch_goes_on(store, config, mailcatcher):
    mailcatcher.clear()  # the addresses below are the same on each database
    before, baker, street, after = (member(), member(email="info@bäcker.example", contact_name="Bäckerei Groß"),
                                    member(email="post@straße.example"), member())
    confirmations(store, before, baker, street, after)
    assert send_emails(store, config) == 4
    assert {d.status for d in deliveries_by_address(store, [before, baker, street, after]).values()} == {"delivered"}
    # The envelope and the To header carry the domain in IDNA 2008 (ß stays ß, as DENIC registers it).
    [to_baker] = mailcatcher.wait(1, to="info@xn--bcker-gra.example")
    [recipient] = to_baker["To"].addresses
    assert (recipient.display_name, recipient.addr_spec) == ("Bäckerei Groß", "info@xn--bcker-gra.example")
    mailcatcher.wait(1, to="post@xn--strae-oqa.example")
    for ascii_member in (before, after):
        mailcatcher.wait(1, to=profile_of(ascii_member)["contact"]["email"])


def test_envelope_addresses_are_ascii_and_a_domain_idna_refuses_is_no_address():
    assert mail.envelope_address("info@bäcker.example") == "info@xn--bcker-gra.example"
    assert mail.envelope_address("a@straße.de") == "a@xn--strae-oqa.de"
    assert mail.envelope_address("erika@example.org") == "erika@example.org"
    assert not mail.valid_address("a@bad\u200d-joiner..example")
    with pytest.raises(ValueError, match="internationalised"):
        mail.envelope_address("a@-\u00e4-.example")


class Breaking:
    """The real SMTP sender, except that mails to one address raise what no one expected."""

    def __init__(self, smtp: SmtpSender, address: str):
        self.smtp, self.address = smtp, address

    def send(self, message, to_address):
        if to_address == self.address:
            raise TypeError("'utf8' is an invalid keyword argument for Compat32")
        self.smtp.send(message, to_address)

    def close(self):
        self.smtp.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.smtp.close()


def test_an_unexpected_error_retries_only_its_mail_then_lands_in_the_failure_log(store, config, mailcatcher):
    first, broken, last = member(), member(), member()
    confirmations(store, first, broken, last)
    address = profile_of(broken)["contact"]["email"]
    smtp = SmtpSender("127.0.0.1", config.smtp_port, timeout=5)
    assert send_emails(store, config, Breaking(smtp, address)) == 2
    found = deliveries_by_address(store, [first, broken, last])
    assert [found[profile_of(m)["contact"]["email"]].status for m in (first, broken, last)] == \
        ["delivered", "pending", "delivered"]
    assert "unexpected error: TypeError" in found[address].last_error
    for _ in range(2):  # email_retry_delays (0, 0): two more attempts, then it gives up
        send_emails(store, config, Breaking(SmtpSender("127.0.0.1", config.smtp_port, timeout=5), address))
    [failed] = [d for d in deliveries_by_address(store, [broken]).values()]
    assert failed.status == "failed" and failed.attempts == 3
    with store.unit_of_work() as uow:
        [entry] = queries.failures(uow.session, {"page": 1, "per_page": 10})["items"]
    assert "gave up after 3 attempts: unexpected error: TypeError" in entry["last_error"]
    assert not mailcatcher.mails(to=address)


def test_a_delivery_whose_lease_keeps_running_out_is_retried_then_fails_with_the_reason(store, config, mailcatcher):
    stalled, exhausted = member(), member()
    confirmations(store, stalled, exhausted)
    past = store.clock() - timedelta(minutes=5)
    found = deliveries_by_address(store, [stalled, exhausted])
    with store.engine.begin() as conn:  # both were claimed by a sender that died; one has no tries left
        for address, attempts in ((profile_of(stalled)["contact"]["email"], 1),
                                  (profile_of(exhausted)["contact"]["email"], 3)):
            conn.execute(update(Delivery).where(Delivery.id == found[address].id)
                         .values(status="sending", lease_until=past, attempts=attempts))
    assert send_emails(store, config) == 1
    found = deliveries_by_address(store, [stalled, exhausted])
    again, given_up = found[profile_of(stalled)["contact"]["email"]], found[profile_of(exhausted)["contact"]["email"]]
    assert (again.status, again.attempts) == ("delivered", 2)
    assert given_up.status == "failed" and "lease ran out" in given_up.last_error
    with store.engine.connect() as conn:
        reasons = conn.execute(select(DeliveryAttempt.error).where(DeliveryAttempt.delivery_id == again.id,
                                                                  DeliveryAttempt.outcome == "retry")).scalars().all()
        assert reasons == [deliveries.STALLED]
        assert conn.execute(select(func.count()).select_from(Delivery)
                            .where(Delivery.status == "sending")).scalar() == 0
    assert not mailcatcher.mails(to=profile_of(exhausted)["contact"]["email"])


def spoil(store, source_event_id: str) -> None:
    """A kept event of a shape no template expects (stored by an older release, say)."""
    with store.engine.begin() as conn:
        body = json.loads(conn.execute(select(SourceEvent.body).where(SourceEvent.id == source_event_id)).scalar())
        body["data"]["event"] = None
        conn.execute(update(SourceEvent).where(SourceEvent.id == source_event_id).values(body=json.dumps(body)))


def test_a_mail_that_cannot_be_composed_fails_alone(store, config, mailcatcher):
    fine, spoiled = member(), member()
    joint = joint_event()
    consume(store, fine, spoiled)
    events = {m["id"]: registration("registration.confirmed", profile_of(m)["id"], joint) for m in (fine, spoiled)}
    consume(store, *events.values())
    spoil(store, events[spoiled["id"]]["id"])
    assert send_emails(store, config) == 1
    found = deliveries_by_address(store, [fine, spoiled])
    broken = found[profile_of(spoiled)["contact"]["email"]]
    assert found[profile_of(fine)["contact"]["email"]].status == "delivered"
    assert broken.status == "failed" and broken.last_error.startswith("could not")
    with store.unit_of_work() as uow:
        assert queries.failures(uow.session, {"page": 1, "per_page": 10})["total"] == 1


class InlinePool:
    """What WebhookDispatcher needs of a pool, running each task at once (the service uses a GreenPool)."""

    def free(self) -> int:
        return 10

    def spawn_n(self, fn, *args):
        fn(*args)


def test_an_unexpected_webhook_error_retries_only_its_delivery_then_fails_with_the_reason(store, config, receiver):
    admin = Principal("admin", "admin")
    good, broken = member(), member()
    consume(store, good, broken)
    endpoints = {}
    for who, path in ((good, "/good"), (broken, "/broken")):
        with store.unit_of_work() as uow:
            endpoints[path] = services.webhooks.create_webhook(uow, admin, WebhookSchema().load(
                {"url": f"{receiver.url}{path}", "member_id": profile_of(who)["id"], "allow_private": True}))["id"]
    with store.engine.begin() as conn:  # a secret damaged in storage: signing raises, no one expected that
        conn.execute(update(WebhookEndpoint).where(WebhookEndpoint.id == endpoints["/broken"])
                     .values(secret="whsec_%%%"))
    confirmations(store, good, broken)
    dispatcher = dispatch.WebhookDispatcher(replace(config, webhook_retry_delays=(0, 0)), Renderer(), InlinePool())
    spoiled = registration("registration.confirmed", profile_of(good)["id"], joint_event())
    consume(store, spoiled)
    spoil(store, spoiled["id"])  # composing this one raises: it fails, the others are sent
    for _ in range(3):
        dispatcher.dispatch_due(store)
    assert len(receiver.received("/good")) == 1 and not receiver.received("/broken")
    with store.engine.connect() as conn:
        hooks = conn.execute(select(Delivery).where(Delivery.channel == "webhook")).all()
    status = {d.target: d for d in hooks if d.source_event_id != spoiled["id"]}
    assert status[endpoints["/good"]].status == "delivered"
    [not_composed] = [d for d in hooks if d.source_event_id == spoiled["id"]]
    assert not_composed.status == "failed" and not_composed.last_error.startswith("could not")
    failed = status[endpoints["/broken"]]
    assert (failed.status, failed.attempts) == ("failed", 3) and "unexpected error" in failed.last_error
    assert dispatcher.in_flight == {}


# --- 11: MAIL_FROM with "e.V." ----------------------------------------------------------------------

@pytest.mark.parametrize("value, name", [
    ("Verbund e.V. <noreply@verbund.example>", "Verbund e.V."),
    ("IT-Cluster Sachsen e.V. <noreply@it-cluster.example>", "IT-Cluster Sachsen e.V."),
])
def test_mail_from_with_an_association_name_starts_and_is_quoted(monkeypatch, value, name):
    monkeypatch.setenv("NOTIFICATIONS_MAIL_FROM", value)
    config = Config.from_env()  # does not stop the service
    sent = mail.compose(mail_from=config.mail_from, to_address="erika@example.org", to_name=None,
                        rendered=Rendered("Betreff", "", "Text"), language="de", message_id="<m@x>",
                        unsubscribe_url="https://u.example/x")
    assert sent["From"] == f'"{name}" <{value.split("<")[1]}'
    header = message_from_bytes(sent.as_bytes(), policy=policy.default)["From"]
    [sender] = header.addresses
    assert sender.display_name == name and not header.defects  # quoted: no obsolete syntax on the wire


def test_a_mail_from_association_arrives_with_its_name(store, config, mailcatcher):
    config = replace(config, mail_from="Verbund e.V. <noreply@verbund.example>")
    recipient = member()
    confirmations(store, recipient)
    assert send_emails(store, config) == 1
    [arrived] = mailcatcher.wait(1, to=profile_of(recipient)["contact"]["email"])
    [sender] = arrived["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ("Verbund e.V.", "noreply@verbund.example")


@pytest.mark.parametrize("value, problem", [
    ("noreply@verbund.example, info@verbund.example", "it holds 2 addresses"),
    ("Verbund <noreply>", "needs a local part, an @ and a domain"),
    ("Verbund <noreply@verbund.example", "missing trailing '>'"),
    ("Verbund noreply@verbund.example", "local-part is not dot-atom"),
])
def test_a_bad_mail_from_is_refused_naming_the_problem(monkeypatch, value, problem):
    monkeypatch.setenv("NOTIFICATIONS_MAIL_FROM", value)
    with pytest.raises(SystemExit) as stopped:
        Config.from_env()
    assert problem in str(stopped.value) and value in str(stopped.value)


# --- 13a: a URL with a space ---------------------------------------------------------------------------

BAD_URLS = ["http://exa mple.com/", "https://example.com/hook path", "https://example.com/a%2", "https://example.com/<x>",
            "https://bäcker.example/hook"]


@pytest.mark.parametrize("url", BAD_URLS)
def test_a_webhook_url_that_is_no_uri_is_refused_on_create_and_update(store, url):
    owner = member()
    consume(store, owner)
    principal = Principal(f"member:{profile_of(owner)['id']}", "member", member_id=profile_of(owner)["id"])
    with pytest.raises(Unprocessable) as refused, store.unit_of_work() as uow:
        services.webhooks.create_webhook(uow, principal, WebhookSchema().load({"url": url}))
    assert "RFC 3986" in refused.value.details["fields"]["url"][0]
    with store.unit_of_work() as uow:
        created = services.webhooks.create_webhook(uow, principal, WebhookSchema().load(
            {"url": "https://93.184.215.14/hook%20path"}))
    with pytest.raises(Unprocessable) as refused, store.unit_of_work() as uow:
        services.webhooks.update_webhook(uow, principal, created["id"], WebhookPatchSchema().load({"url": url}))
    assert "url" in refused.value.details["fields"]
    with store.unit_of_work() as uow:  # nothing half-written
        assert queries.get_webhook(uow.session, principal, created["id"])["url"] == "https://93.184.215.14/hook%20path"


def test_the_url_check_names_the_character():
    assert webhook.url_syntax_problem("http://exa mple.com/").startswith("a space at position 11")
    assert webhook.url_syntax_problem("https://example.com/a%20b?x=1&y=%C3%A4#top") is None
    assert webhook.url_syntax_problem("http://[2001:db8::1]:8080/x") is None


# --- 13b: an invalid unsubscribe link ----------------------------------------------------------------

def test_an_invalid_unsubscribe_link_is_refused_before_the_button(store):
    known = member()
    consume(store, known)
    token = domain.unsubscribe_token(profile_of(known)["id"], SECRET)
    with store.unit_of_work() as uow:
        assert queries.unsubscribe_member(uow.session, token, SECRET) == profile_of(known)["id"]
        for bad in ("abc", token[:-3], domain.unsubscribe_token(profile_of(known)["id"], "another secret"),
                    domain.unsubscribe_token("unknown-member", SECRET)):
            with pytest.raises(NotFound) as refused:
                queries.unsubscribe_member(uow.session, bad, SECRET)
            assert "Abmeldelink" in refused.value.message and "unsubscribe link" in refused.value.message
