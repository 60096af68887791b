"""Sign-in and contact requests through the HTTP API of a real members-service process, and the
single use of a sign-in link under concurrent exchanges, on SQLite and PostgreSQL."""
import threading
import uuid

import pytest
import requests

from members import services
from members.domain import SignInPolicy
from verbund.errors import BadRequest
from verbund.testing import FixedClock

pytestmark = pytest.mark.integration


def unique(member_input, **overrides):
    tag = uuid.uuid4().hex[:8]
    return member_input(name=f"Firma {tag} GmbH", contact={"name": f"Person {tag}", "email": f"p-{tag}@example.org",
                                                           "language": "en"}, **overrides)


def register(api, body):
    response = requests.post(f"{api.url}/members", json=body, timeout=10)
    assert response.status_code == 201, response.text
    created = response.json()
    return created["id"], {"Authorization": f"Bearer {created['access_token']}"}, created


def client():
    """A client address of this test's own (the test runs on 127.0.0.1, a trusted proxy)."""
    # A documentation prefix (RFC 3849) with 32 random bits: two tests do not share a client.
    return {"X-Forwarded-For": f"203.0.113.9, 2001:db8::{uuid.uuid4().hex[:4]}:{uuid.uuid4().hex[:4]}"}


def test_known_and_unknown_addresses_get_the_same_answer_then_429_with_retry_after(members_api, member_input):
    _, _, created = register(members_api, unique(member_input))
    url = f"{members_api.url}/auth/sign-in-requests"
    # The registration mailed the first link to its address: it counts, so four more are left there.
    for email, left in ((created["contact"]["email"], 4), (f"nobody-{uuid.uuid4().hex[:6]}@example.org", 5)):
        answers = [requests.post(url, json={"email": email, "language": "de"}, headers=client(), timeout=10)
                   for _ in range(left)]
        assert {(a.status_code, a.text) for a in answers} == {(202, '{"status": "sent"}')}
        limited = requests.post(url, json={"email": email}, headers=client(), timeout=10)
        assert limited.status_code == 429 and 3500 <= int(limited.headers["Retry-After"]) <= 3600
        assert "try again" in limited.json()["error"]
    bad = requests.post(url, json={"email": "not an address", "language": "fr"}, timeout=10)
    assert bad.status_code == 422 and set(bad.json()["fields"]) == {"email", "language"}


def test_the_limit_per_client_counts_the_forwarded_address_of_a_trusted_proxy(members_api):
    url = f"{members_api.url}/auth/sign-in-requests"
    one = client()
    for n in range(SignInPolicy().per_client):  # a room at a joint event behind one address
        assert requests.post(url, json={"email": f"x{n}-{uuid.uuid4().hex[:6]}@example.org"}, headers=one,
                             timeout=10).status_code == 202
    refused = requests.post(url, json={"email": "y@example.org"}, headers=one, timeout=10)
    assert refused.status_code == 429 and "network" in refused.json()["error"] and refused.headers["Retry-After"]
    assert requests.post(url, json={"email": "y@example.org"}, headers=client(), timeout=10).status_code == 202


def test_a_made_up_sign_in_token_is_a_400(members_api):
    response = requests.post(f"{members_api.url}/auth/tokens", json={"sign_in_token": "x" * 43}, timeout=10)
    assert response.status_code == 400 and "not valid" in response.json()["error"]
    assert requests.post(f"{members_api.url}/auth/tokens", json={}, timeout=10).status_code == 422


def test_contact_details_only_after_an_accepted_request(members_api, member_input):
    a, a_auth, _ = register(members_api, unique(member_input))
    b, b_auth, b_profile = register(members_api, unique(member_input))
    _, c_auth, _ = register(members_api, unique(member_input))
    url = members_api.url
    assert requests.get(f"{url}/members/{b}/contact", headers=a_auth, timeout=10).status_code == 403
    assert requests.post(f"{url}/members/{a}/contact-requests", json={"message": "hi"}, headers=a_auth,
                         timeout=10).status_code == 422  # oneself
    empty = requests.post(f"{url}/members/{b}/contact-requests", json={"message": ""}, headers=a_auth, timeout=10)
    assert empty.status_code == 422 and "message" in empty.json()["fields"]
    long = requests.post(f"{url}/members/{b}/contact-requests", json={"message": "x" * 1001}, headers=a_auth,
                         timeout=10)
    assert long.status_code == 422
    made = requests.post(f"{url}/members/{b}/contact-requests",
                         json={"message": "Guten Tag,\nwir suchen einen Partner für Batterietransporte."},
                         headers=a_auth, timeout=10)
    assert made.status_code == 201, made.text
    request = made.json()
    assert request["status"] == "pending" and request["recipient_name"] == b_profile["name"]
    assert requests.post(f"{url}/members/{b}/contact-requests", json={"message": "again"}, headers=a_auth,
                         timeout=10).status_code == 409
    incoming = requests.get(f"{url}/contact-requests", params={"direction": "incoming"}, headers=b_auth, timeout=10)
    assert [r["id"] for r in incoming.json()["items"]] == [request["id"]]
    assert incoming.json()["items"][0]["message"].startswith("Guten Tag")
    assert requests.get(f"{url}/contact-requests", params={"direction": "sideways"}, headers=b_auth,
                        timeout=10).status_code == 422
    for who in (a_auth, c_auth):  # only the member asked answers
        assert requests.post(f"{url}/contact-requests/{request['id']}/accept", headers=who,
                             timeout=10).status_code == 403
    accepted = requests.post(f"{url}/contact-requests/{request['id']}/accept", headers=b_auth, timeout=10)
    assert accepted.status_code == 200 and accepted.json()["status"] == "accepted"
    assert requests.post(f"{url}/contact-requests/{request['id']}/decline", headers=b_auth,
                         timeout=10).status_code == 409
    seen = requests.get(f"{url}/members/{b}/contact", headers=a_auth, timeout=10)
    assert seen.status_code == 200 and seen.json() == {"contact_name": b_profile["contact"]["name"],
                                                       "contact_email": b_profile["contact"]["email"]}
    assert requests.get(f"{url}/members/{a}/contact", headers=b_auth, timeout=10).status_code == 200  # both ways
    assert requests.get(f"{url}/members/{b}/contact", headers=c_auth, timeout=10).status_code == 403
    # The profile keeps the contact person to the member itself.
    assert requests.get(f"{url}/members/{b}", headers=a_auth, timeout=10).status_code == 403


def test_a_sign_in_link_works_once_when_exchanged_at_the_same_time(store, register, member_input):
    """Eight exchanges of one link at once, each in its own transaction: exactly one gets a token."""
    store.clock = FixedClock()
    register(store, unique(member_input))
    email = None
    with store.unit_of_work() as uow:
        from members.models import Member
        email = uow.session.query(Member.contact_email).first()[0]
    with store.unit_of_work() as uow:
        [recipient] = services.request_sign_in(uow, email, "203.0.113.9")
    with store.unit_of_work() as uow:
        link = services.issue_sign_in_link(uow, recipient)
    results, barrier = [], threading.Barrier(8)

    def exchange():
        barrier.wait()
        try:
            with store.unit_of_work() as uow:
                results.append(services.exchange_sign_in_token(uow, link["token"])["member_id"])
        except BadRequest:
            results.append("refused")

    threads = [threading.Thread(target=exchange) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(results) == sorted([link["member_id"]] + ["refused"] * 7)


def test_a_self_registration_stores_its_welcome_token_with_itself_and_a_refused_one_none(members_api, member_input):
    """The welcome link's token is written in the registration's own transaction: there as soon as the
    answer is, one for the new member; a registration refused (409, the organisation is there already)
    leaves no token behind."""
    from sqlalchemy import create_engine, text

    from verbund.database import normalize_url

    body = unique(member_input)
    member_id, _, _ = register(members_api, body)
    engine = create_engine(normalize_url(members_api.database_url))
    try:
        def tokens() -> int:
            with engine.connect() as connection:
                return connection.execute(text("SELECT count(*) FROM sign_in_tokens")).scalar()

        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM sign_in_tokens WHERE member_id = :m"),
                                      {"m": member_id}).scalar() == 1
        before = tokens()
        again = requests.post(f"{members_api.url}/members", json=body, timeout=10)
        assert again.status_code == 409
        assert tokens() == before
    finally:
        engine.dispose()
