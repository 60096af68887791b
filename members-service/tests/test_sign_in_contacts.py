"""Sign-in by e-mail link and contact requests as use cases: a migrated SQLite file, events to a
recording publisher, time from a fixed clock (links expire, limits slide, requests expire)."""
import hashlib
import uuid

import pytest
from sqlalchemy import select

from members import services
from members.domain import ContactPolicy, SignInPolicy
from members.models import SignInAttempt, SignInToken
from verbund import auth
from verbund.auth import Principal
from verbund.errors import BadRequest, Conflict, Forbidden, TooManyRequests, Unprocessable

POLICY = SignInPolicy()
CONTACTS = ContactPolicy()


def member(principal_id):
    return Principal(f"member:{principal_id}", "member", member_id=principal_id)


@pytest.fixture
def two(use_cases, register, member_input):
    a = register(use_cases, member_input(name="Alpha Zulieferer GmbH",
                                         contact={"name": "Ada Alpha", "email": "Ada@Alpha.example",
                                                  "language": "en"}))
    b = register(use_cases, member_input(name="Beta Logistik GmbH",
                                         region={"state": "HH", "postcode": "20457", "city": "Hamburg"},
                                         contact={"name": "Bert Beta", "email": "bert@beta.example"}))
    return a, b


def ask(store, email="ada@alpha.example", client="203.0.113.5", policy=POLICY):
    """A sign-in request and the links made for it afterwards (as the entrypoint does)."""
    with store.unit_of_work() as uow:
        recipients = services.request_sign_in(uow, email, client, policy)
    links = []
    for recipient in recipients:
        with store.unit_of_work() as uow:
            links.append(services.issue_sign_in_link(uow, recipient, policy))
    return links


def exchange(store, secret):
    with store.unit_of_work() as uow:
        return services.exchange_sign_in_token(uow, secret, POLICY)


def test_a_known_address_gets_a_hashed_single_use_link_that_gives_a_member_token(use_cases, two):
    a, _ = two
    [link] = ask(use_cases, " ADA@alpha.EXAMPLE ")  # case and spaces do not matter
    assert link["member_id"] == a["id"] and link["language"] == "en" and link["expires_minutes"] == 15
    assert link["email"] == "Ada@Alpha.example" and link["organisation"] == "Alpha Zulieferer GmbH"
    with use_cases.engine.connect() as conn:
        [stored] = conn.execute(select(SignInToken.token_hash)).scalars().all()
        attempts = conn.execute(select(SignInAttempt.key)).scalars().all()
    assert stored == hashlib.sha256(link["token"].encode()).hexdigest() != link["token"]  # only the hash
    assert "ada@alpha.example" not in attempts  # the limits keep hashes too

    answer = exchange(use_cases, link["token"])
    assert answer["member_id"] == a["id"] and answer["role"] == "member" and answer["language"] == "en"
    assert answer["expires_in"] == 30 * 24 * 3600
    principal = auth.verify(answer["token"])
    assert principal.is_member(a["id"])
    with pytest.raises(BadRequest) as again:  # single use
        exchange(use_cases, link["token"])
    assert "not valid" in again.value.message


def test_an_unknown_address_gets_no_link_and_counts_all_the_same(use_cases, two):
    assert ask(use_cases, "nobody@nowhere.example") == []
    for _ in range(POLICY.per_address - 1):
        ask(use_cases, "nobody@nowhere.example")
    with pytest.raises(TooManyRequests):
        ask(use_cases, "nobody@nowhere.example")


def test_unknown_used_and_expired_links_get_one_message(use_cases, two):
    [old] = ask(use_cases)
    use_cases.clock.advance(minutes=15)  # 15 minutes later it has expired
    messages = set()
    for secret in ("made-up-" + uuid.uuid4().hex, old["token"]):
        with pytest.raises(BadRequest) as refused:
            exchange(use_cases, secret)
        messages.add(refused.value.message)
    [fresh] = ask(use_cases)
    use_cases.clock.advance(minutes=14, seconds=59)
    exchange(use_cases, fresh["token"])
    with pytest.raises(BadRequest) as used:
        exchange(use_cases, fresh["token"])
    messages.add(used.value.message)
    assert len(messages) == 1


def test_signing_in_uses_up_the_other_open_links(use_cases, two):
    first, second = ask(use_cases)[0], ask(use_cases)[0]
    exchange(use_cases, second["token"])
    with pytest.raises(BadRequest):
        exchange(use_cases, first["token"])


def test_limits_per_address_and_per_client_slide_with_the_clock(use_cases, two):
    for _ in range(5):
        ask(use_cases)
    with pytest.raises(TooManyRequests) as limited:
        ask(use_cases, client="198.51.100.7")  # another client: the address's limit still holds
    assert limited.value.status == 429 and 0 < limited.value.retry_after <= 3600
    assert "address" in limited.value.message
    use_cases.clock.advance(seconds=limited.value.retry_after)
    assert ask(use_cases)  # the oldest request left the window

    client = "192.0.2.44"
    for n in range(SignInPolicy().per_client):
        ask(use_cases, f"someone{n}@example.org", client=client)
    with pytest.raises(TooManyRequests) as by_client:
        ask(use_cases, "someone-else@example.org", client=client)
    assert "network" in by_client.value.message


def test_an_erased_member_cannot_sign_in_with_an_earlier_link(use_cases, two):
    a, _ = two
    [link] = ask(use_cases)
    with use_cases.unit_of_work() as uow:
        services.erase(uow, member(a["id"]), a["id"])
    with pytest.raises(BadRequest):
        exchange(use_cases, link["token"])
    assert ask(use_cases) == []


# --- contact requests ---------------------------------------------------------------------------------

def request(store, requester, recipient, message="Guten Tag, wir suchen einen Logistikpartner."):
    with store.unit_of_work() as uow:
        return services.request_contact(uow, member(requester), recipient, message, CONTACTS)


def answer(store, principal_id, request_id, accept):
    with store.unit_of_work() as uow:
        return services.answer_contact(uow, member(principal_id), request_id, accept)


def test_a_request_is_pending_then_accepted_and_the_events_carry_no_message(use_cases, two):
    a, b = two
    made = request(use_cases, a["id"], b["id"])
    assert made["status"] == "pending" and made["requester_name"] == "Alpha Zulieferer GmbH"
    assert made["recipient_name"] == "Beta Logistik GmbH" and made["message"].startswith("Guten Tag")
    assert made["expires_at"] == "2026-06-15T08:00:00Z"
    with pytest.raises(Forbidden):
        answer(use_cases, a["id"], made["id"], True)  # the requester cannot accept its own
    accepted = answer(use_cases, b["id"], made["id"], True)
    assert accepted["status"] == "accepted"
    with pytest.raises(Conflict):
        answer(use_cases, b["id"], made["id"], False)
    events = use_cases.relay.publisher.published
    assert [e["type"] for e in events if e["type"].startswith("contact.")] == ["contact.requested", "contact.accepted"]
    for event in events:
        assert "Guten Tag" not in str(event) and "bert@beta.example" not in str(event)
    with pytest.raises(Conflict, match="in contact with this member already"):
        request(use_cases, b["id"], a["id"])


def test_refusals_oneself_pending_and_a_recent_decline(use_cases, two):
    a, b = two
    with pytest.raises(Unprocessable):
        request(use_cases, a["id"], a["id"])
    made = request(use_cases, a["id"], b["id"])
    with pytest.raises(Conflict, match="already"):
        request(use_cases, a["id"], b["id"])
    with pytest.raises(Conflict, match="answer their request"):
        request(use_cases, b["id"], a["id"])
    answer(use_cases, b["id"], made["id"], False)
    use_cases.clock.advance(days=29)
    with pytest.raises(Conflict, match="declined"):
        request(use_cases, a["id"], b["id"])
    request(use_cases, b["id"], a["id"])  # the other way round is not paused


def test_an_unanswered_request_expires_after_14_days_and_may_be_made_again(use_cases, two):
    a, b = two
    made = request(use_cases, a["id"], b["id"])
    use_cases.clock.advance(days=14)
    with pytest.raises(Conflict, match="expired"):
        answer(use_cases, b["id"], made["id"], True)
    again = request(use_cases, a["id"], b["id"])
    assert again["status"] == "pending"


def test_ten_requests_a_day_per_member(use_cases, register, member_input):
    me = register(use_cases, member_input(name="Vielfrager GmbH"))
    others = [register(use_cases, member_input(name=f"Partner {n} GmbH"))["id"] for n in range(11)]
    for other in others[:10]:
        request(use_cases, me["id"], other)
    with pytest.raises(TooManyRequests) as limited:
        request(use_cases, me["id"], others[10])
    assert limited.value.retry_after == 24 * 3600
    use_cases.clock.advance(days=1)
    request(use_cases, me["id"], others[10])
