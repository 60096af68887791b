"""Integrator grants: members-service holds each integrator's current grant (event types, personal
data, a serial in the tokens' ``grant`` claim). The key endpoint and the profiles apply one rule
(personal data granted AND member.* in scope, under the current grant), so narrowing a scope takes
back the tokens printed before. Rules directly; HTTP against a real members-service process on
SQLite and PostgreSQL."""
import uuid

import pytest
import requests

from members import domain
from verbund.auth import Principal
from verbund.errors import Forbidden
from verbund.testing import bearer

CURRENT = {"name": "crm", "events": ["member.*", "event.*"], "personal": True, "serial": 3}


def integrator(**claims) -> Principal:
    return Principal("crm", "integrator", **claims)


# --- the rule ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("principal, grant", [
    (integrator(events=("member.*",), personal=True, grant=2), CURRENT),  # an older grant
    (integrator(events=("member.*",), personal=True, grant=4), CURRENT),  # one that never was
    (integrator(events=("#",), grant=3), CURRENT),  # claims more event types than granted
    (integrator(events=("member.*",), personal=True, grant=3), {**CURRENT, "events": ["member.registered"]}),
])
def test_a_token_of_another_grant_or_claiming_more_is_refused(principal, grant):
    with pytest.raises(Forbidden) as refused:
        domain.check_grant(principal, grant)
    assert "new token" in refused.value.message


def test_a_token_claiming_personal_data_its_grant_no_longer_gives_is_refused():
    with pytest.raises(Forbidden):
        domain.can_read_personal(integrator(events=("member.*",), personal=True, grant=3),
                                 {**CURRENT, "personal": False})
    with pytest.raises(Forbidden):  # no grant recorded any more
        domain.can_read_personal(integrator(personal=True, grant=1), None)


def test_the_key_and_the_profile_follow_one_rule():
    profile = {"id": "m1", "contact": {"name": "Jana Keller", "email": "j@x.example", "language": "de"}}
    for principal, grant, entitled in [
        (integrator(events=("member.*",), personal=True, grant=3), CURRENT, True),
        (integrator(events=("event.*",), personal=True, grant=3), CURRENT, False),  # tester's no. 6
        (integrator(events=("member.*",), grant=3), CURRENT, False),
        (integrator(personal=True), None, False),  # issued before grants: the default
        (integrator(), None, False),
    ]:
        assert domain.can_read_personal(principal, grant) is entitled
        assert (domain.visible(principal, profile, grant)["contact"]["name"] == "Jana Keller") is entitled
    assert domain.visible(Principal("olga", "organizer", association="it-cluster"), profile)["contact"] == \
        profile["contact"]


# --- over HTTP ---------------------------------------------------------------------------------------

def grant(api, name: str, events: list[str], personal: bool) -> int:
    response = requests.put(f"{api.url}/integrators/{name}/grant", json={"events": events, "personal": personal},
                            headers=bearer("admin"), timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["events"] == events and response.json()["personal"] is personal
    return response.json()["serial"]


def token_of(name: str, events: tuple[str, ...], personal: bool, serial: int) -> dict:
    return bearer("integrator", subject=name, events=events, personal=personal, grant=serial)


def reads(api, headers: dict, member: dict) -> tuple[int, int, int, list]:
    """Status of the key, the profile and the list, and the contact names the profile and list showed."""
    key = requests.get(f"{api.url}/members/{member['id']}/key", headers=headers, timeout=10)
    profile = requests.get(f"{api.url}/members/{member['id']}", headers=headers, timeout=10)
    listed = requests.get(f"{api.url}/members", params={"q": member["name"]}, headers=headers, timeout=10)
    names = [profile.json()["contact"]["name"]] if profile.status_code == 200 else []
    names += [item["contact"]["name"] for item in listed.json()["items"]] if listed.status_code == 200 else []
    return key.status_code, profile.status_code, listed.status_code, names


@pytest.fixture
def member(members_api, member_input):
    created = requests.post(f"{members_api.url}/members", json=member_input(name=f"Firma {uuid.uuid4().hex[:8]}"),
                            timeout=10)
    assert created.status_code == 201, created.text
    return created.json()


def test_narrowing_a_grant_takes_back_the_old_token(members_api, member):
    """Tester's no. 5: --events member.registered --personal, then --events 'event.*' without --personal."""
    name = f"crm-{uuid.uuid4().hex[:6]}"
    first = grant(members_api, name, ["member.registered"], True)
    old = token_of(name, ("member.registered",), True, first)
    contact = member["contact"]["name"]
    assert reads(members_api, old, member) == (200, 200, 200, [contact, contact])

    second = grant(members_api, name, ["event.*"], False)
    assert second > first
    key = requests.get(f"{members_api.url}/members/{member['id']}/key", headers=old, timeout=10)
    assert key.status_code == 403 and "grant" in key.json()["error"] and "changed" in key.json()["error"]
    assert reads(members_api, old, member) == (403, 403, 403, [])
    # The new token reads what its grant gives: profiles without the contact person, no key.
    assert reads(members_api, token_of(name, ("event.*",), False, second), member) == (403, 200, 200, [None, None])
    # Even the same scope again voids the tokens of the run before.
    third = grant(members_api, name, ["event.*"], False)
    assert reads(members_api, token_of(name, ("event.*",), False, second), member)[1] == 403
    assert reads(members_api, token_of(name, ("event.*",), False, third), member)[1] == 200


def test_personal_data_needs_member_events_in_scope_for_the_profile_as_for_the_key(members_api, member):
    """Tester's no. 6: --events 'event.*' --personal gets no key, so no contact person in the profiles either."""
    name = f"web-{uuid.uuid4().hex[:6]}"
    serial = grant(members_api, name, ["event.*"], True)
    assert reads(members_api, token_of(name, ("event.*",), True, serial), member) == (403, 200, 200, [None, None])
    # A token claiming more than its grant (forged with the secret, or of a grant narrowed since): refused.
    assert reads(members_api, token_of(name, ("member.*",), True, serial), member)[:3] == (403, 403, 403)


def test_tokens_issued_before_grants_keep_the_documented_default(members_api, member):
    old = bearer("integrator", subject=f"old-{uuid.uuid4().hex[:6]}", personal=True)  # no grant claim
    assert reads(members_api, old, member) == (403, 200, 200, [None, None])


@pytest.mark.parametrize("name, body, status, field", [
    ("Bad Name", {"events": ["event.*"]}, 422, "name"),
    ("crm", {"events": []}, 422, "events"),
    ("crm", {"events": ["event.*,member.*"]}, 422, "events"),
    ("crm", {"events": ["event.*"], "personal": "yes"}, 422, "personal"),
    ("crm", {}, 422, "events"),
])
def test_a_bad_grant_is_a_422_with_the_field(members_api, name, body, status, field):
    response = requests.put(f"{members_api.url}/integrators/{name}/grant", json=body, headers=bearer("admin"),
                            timeout=10)
    assert response.status_code == status and field in response.json()["fields"], response.text


def test_only_an_admin_records_grants(members_api):
    url = f"{members_api.url}/integrators/crm/grant"
    assert requests.put(url, json={"events": ["#"], "personal": True}, timeout=10).status_code == 401
    for role, claims in (("integrator", {"subject": "crm"}), ("organizer", {"association": "it-cluster"})):
        assert requests.put(url, json={"events": ["#"], "personal": True}, headers=bearer(role, **claims),
                            timeout=10).status_code == 403
