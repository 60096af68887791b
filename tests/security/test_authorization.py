"""Who may do what, across every service, against real processes.

1. The role matrix: every endpoint of every service, called by each role
   it does not admit, is refused (401 without a token, 403 with one).
2. A member can never read or change another member's profile,
   preferences, inbox, registrations or suggestions.
"""
import re
import uuid

import pytest
import requests

from verbund import envelope
from verbund.broker import Publisher
from verbund.openapi import endpoints
from verbund.testing import ServiceProcess, bearer, wait_for
from verbund.tools.cli import SERVICES, _service_class

pytestmark = pytest.mark.integration

ROLE_HEADERS = {
    "anonymous": {},
    "member": bearer("member", member_id=str(uuid.uuid4())),
    "organizer": bearer("organizer", association="logistics-network"),
    "integrator": bearer("integrator"),
    "admin": bearer("admin"),
}


@pytest.fixture(scope="module")
def platform(amqp_uri, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("platform")
    processes = {service: ServiceProcess(service, amqp_uri, f"sqlite:///{workdir / (service + '.db')}", workdir)
                 for service in SERVICES}
    for process in processes.values():
        process.start()
    yield {service: process.url for service, process in processes.items()}
    for process in processes.values():
        process.stop()


def _cases():
    for service in SERVICES:
        for name, endpoint, _ in endpoints(_service_class(service)):
            for role in ROLE_HEADERS:
                if role not in endpoint.roles:
                    yield pytest.param(service, endpoint.method, endpoint.url, role, id=f"{service}:{name}:{role}")


@pytest.mark.parametrize("service, method, url, role", list(_cases()))
def test_a_role_an_endpoint_does_not_admit_is_refused(platform, service, method, url, role):
    path = re.sub(r"<(?:int:)([a-z_]+)>", "1", url)
    path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", lambda _: str(uuid.uuid4()), path)
    response = requests.request(method, platform[service] + path, json={}, headers=ROLE_HEADERS[role], timeout=30)
    assert response.status_code == (401 if role == "anonymous" else 403), response.text


@pytest.fixture(scope="module")
def two_members(platform):
    """Members A and B, registered over HTTP, known to every service's read model."""
    members = []
    for name, postcode in (("Alpha Zulieferer GmbH", "70173"), ("Beta Logistik GmbH", "20457")):
        response = requests.post(f"{platform['members']}/members", timeout=30, json={
            "name": name, "sector": "automotive" if name.startswith("Alpha") else "logistics",
            "region": {"state": "BW", "postcode": postcode, "city": "Stadt"}, "size": {"employees": 20},
            "contact": {"name": "Kontakt", "email": f"kontakt@{postcode}.example", "language": "de"},
            "offers": [{"label": "Druckguss"}], "needs": [{"label": "Gefahrgutlogistik"}],
            "topics": ["e-mobility"], "consent": {"suggest_as_partner": True, "email": True}})
        assert response.status_code == 201, response.text
        members.append((response.json()["id"], {"Authorization": f"Bearer {response.json()['access_token']}"}))
    (a, a_auth), _ = members
    if "notifications" in platform:  # its read model has A once the event went through
        wait_for(lambda: requests.get(f"{platform['notifications']}/members/{a}/preferences", headers=a_auth,
                                      timeout=5).status_code == 200, timeout=30, message="A in notifications")
    return members


OTHERS_RESOURCES = [
    ("members", "GET", "/members/{a}"),
    ("members", "PATCH", "/members/{a}"),
    ("members", "DELETE", "/members/{a}"),
    ("members", "GET", "/members/{a}/contact"),
    ("members", "GET", "/members/{a}/contacts"),
    ("notifications", "GET", "/members/{a}/preferences"),
    ("notifications", "PUT", "/members/{a}/preferences"),
    ("notifications", "GET", "/members/{a}/notifications"),
    ("notifications", "POST", "/members/{a}/notifications/read"),
    ("events", "GET", "/members/{a}/registrations"),
    ("matching", "GET", "/members/{a}/suggestions"),
    ("matching", "GET", "/members/{a}/proposals"),
    ("matching", "POST", "/members/{a}/proposals"),
]


@pytest.mark.parametrize("service, method, template", OTHERS_RESOURCES,
                         ids=[f"{s}:{m} {t}" for s, m, t in OTHERS_RESOURCES])
def test_a_member_cannot_touch_another_members_data(platform, two_members, service, method, template):
    if service not in platform:
        pytest.skip(f"{service}-service is not installed")
    (a, a_auth), (_, b_auth) = two_members
    url = platform[service] + template.format(a=a)
    body = {"topics": ["hydrogen"]} if method in ("PATCH", "PUT") else {}
    refused = requests.request(method, url, json=body, headers=b_auth, timeout=30)
    assert refused.status_code == 403, refused.text
    if method == "GET":  # the same request is fine for A itself: the refusal was about B
        assert requests.get(url, headers=a_auth, timeout=30).status_code == 200


def test_contact_details_need_an_accepted_request_and_only_the_member_asked_answers(platform, two_members):
    """Privacy by relationship: B sees A's contact person neither before A answers nor after a decline; a
    third member can neither answer A's request nor see the contact once A and B are in contact."""
    (a, a_auth), (b, b_auth) = two_members
    members = platform["members"]
    third = requests.post(f"{members}/members", timeout=30, json={
        "name": f"Gamma IT {uuid.uuid4().hex[:6]} GmbH", "sector": "it",
        "region": {"state": "SN", "postcode": "01067", "city": "Dresden"}, "size": {"employees": 9},
        "contact": {"name": "Gina", "email": "gina@gamma.example", "language": "de"}})
    c_auth = {"Authorization": f"Bearer {third.json()['access_token']}"}

    def sees(who, whom):
        return requests.get(f"{members}/members/{whom}/contact", headers=who, timeout=30).status_code

    def ask(who, whom):
        made = requests.post(f"{members}/members/{whom}/contact-requests", json={"message": "Hallo"}, headers=who,
                             timeout=30)
        assert made.status_code == 201, made.text
        return made.json()["id"]

    declined = ask(b_auth, a)
    assert sees(b_auth, a) == 403 and sees(a_auth, b) == 403  # pending
    def answer(who, request_id, verb):
        return requests.post(f"{members}/contact-requests/{request_id}/{verb}", headers=who, timeout=30).status_code

    assert answer(b_auth, declined, "accept") == 403 and answer(c_auth, declined, "accept") == 403
    assert answer(a_auth, declined, "decline") == 200
    assert sees(b_auth, a) == 403 and sees(a_auth, b) == 403  # declined
    accepted = ask(a_auth, b)
    assert answer(b_auth, accepted, "accept") == 200
    assert sees(b_auth, a) == 200 and sees(a_auth, b) == 200
    assert sees(c_auth, a) == 403 and sees(c_auth, b) == 403  # their contact is theirs alone
    listed = requests.get(f"{members}/contact-requests", headers=c_auth, timeout=30).json()["items"]
    assert listed == []  # nor does it see their requests


def _project(status: str, member_ids: list[str]) -> dict:
    """A project.* event as matching-service publishes it."""
    project_id = str(uuid.uuid4())
    return envelope.new_event(f"project.{status}", "/verbund/matching", project_id, {"project": {
        "id": project_id, "version": 1 if status == "proposed" else 2, "title": f"Projekt {project_id[:6]}",
        "topic": None, "status": status, "score": 0.5, "explanation": [],
        "members": [{"member_id": m, "sector": "it", "response": "accepted" if status == "formed" else "pending"}
                    for m in member_ids]}})


def test_contact_details_between_members_of_a_formed_project_only(platform, amqp_uri):
    """A formed partner project introduces its members to each other; a proposal that has not formed
    (yet) does not, and nobody outside the team sees more than before."""
    members = platform["members"]
    team = []
    for n in range(4):
        made = requests.post(f"{members}/members", timeout=30, json={
            "name": f"Projektfirma {n} {uuid.uuid4().hex[:6]} GmbH", "sector": "it",
            "region": {"state": "SN", "postcode": "01067", "city": "Dresden"}, "size": {"employees": 9},
            "contact": {"name": "Kim", "email": f"kim-{uuid.uuid4().hex[:8]}@example.org", "language": "de"}})
        assert made.status_code == 201, made.text
        team.append((made.json()["id"], {"Authorization": f"Bearer {made.json()['access_token']}"}))
    (a, a_auth), (b, b_auth), (c, c_auth), (d, d_auth) = team

    def sees(who, whom):
        return requests.get(f"{members}/members/{whom}/contact", headers=who, timeout=30).status_code

    publisher = Publisher(amqp_uri)
    try:
        for event in (_project("proposed", [a, c]), _project("formed", [a, b])):
            publisher.publish(event["type"], envelope.dumps(event), message_id=event["id"])
    finally:
        publisher.close()
    wait_for(lambda: sees(a_auth, b) == 200, timeout=30, message="project.formed in members-service")
    assert sees(b_auth, a) == 200
    assert sees(a_auth, c) == 403 and sees(c_auth, a) == 403  # proposed, not formed
    assert sees(d_auth, a) == 403 and sees(d_auth, b) == 403 and sees(b_auth, c) == 403
