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


STAFF_PROBES = {"members": "/staff", "events": "/events", "matching": "/proposals", "notifications": "/failures"}


def test_a_revoked_staff_account_is_refused_by_every_service_within_the_check_bound(platform):
    """Revocation takes effect on the next request: at members-service at once, elsewhere within
    STAFF_CHECK_TTL_SECONDS (2 s) of cached "active" answers (verbund.staff)."""
    import time

    from verbund.staff import check_ttl_seconds

    created = requests.post(f"{platform['members']}/staff", headers=ROLE_HEADERS["admin"], timeout=30, json={
        "email": f"admin-{uuid.uuid4().hex[:8]}@verbund.example", "name": "Ada Admin", "role": "admin"})
    assert created.status_code == 201, created.text
    staff = bearer("admin", staff_id=created.json()["id"])
    probes = {service: platform[service] + path for service, path in STAFF_PROBES.items() if service in platform}
    for url in probes.values():  # every service now holds an "active" answer in its cache
        assert requests.get(url, headers=staff, timeout=30).status_code == 200, url
    revoked = requests.post(f"{platform['members']}/staff/{created.json()['id']}/revoke",
                            headers=ROLE_HEADERS["admin"], timeout=30)
    assert revoked.status_code == 200
    started = time.monotonic()
    assert requests.get(probes["members"], headers=staff, timeout=30).status_code == 401  # the very next request
    refused_after = {}
    wait_for(lambda: all(refused_after.setdefault(service, time.monotonic() - started)
                         if requests.get(url, headers=staff, timeout=30).status_code == 401 else False
                         for service, url in probes.items() if service not in refused_after) and
             len(refused_after) == len(probes), timeout=10, message="every service refuses the revoked token")
    bound = check_ttl_seconds() + 0.5  # the cache's bound, plus a request's time on a busy machine
    assert max(refused_after.values()) <= bound, refused_after


def test_a_revoked_integrators_token_is_refused_by_every_service(platform):
    """An integrator revoked in the admin pages (members-service POST /integrators/{name}/revoke): its
    token is refused (401) at members-service at once and by every other service once its cached
    answer of ``members.integrator_status`` runs out; its broker user is gone."""
    import subprocess

    name = f"sec-{uuid.uuid4().hex[:8]}"
    made = requests.post(f"{platform['members']}/integrators", headers=ROLE_HEADERS["admin"], timeout=60,
                         json={"name": name, "events": ["event.*"], "personal": False})
    assert made.status_code == 201, made.text
    try:
        token = {"Authorization": f"Bearer {made.json()['token']}"}
        probes = {"members": "/members", "events": "/events", "matching": "/ready", "notifications": "/ready"}
        probes = {service: platform[service] + path for service, path in probes.items() if service in platform}
        for url in probes.values():
            assert requests.get(url, headers=token, timeout=30).status_code == 200, url
        revoked = requests.post(f"{platform['members']}/integrators/{name}/revoke", headers=ROLE_HEADERS["admin"],
                                timeout=60)
        assert revoked.status_code == 200, revoked.text
        assert requests.get(probes["members"], headers=token, timeout=30).status_code == 401
        wait_for(lambda: all(requests.get(url, headers=token, timeout=30).status_code == 401
                             for url in probes.values()), timeout=10, message="every service refuses the token")
        users = subprocess.run(["rabbitmqctl", "-q", "list_users"], capture_output=True, text=True).stdout.split()
        assert f"integrator-{name}" not in users
    finally:
        subprocess.run(["rabbitmqctl", "-q", "delete_user", f"integrator-{name}"], capture_output=True)


STATS = {"members": ["/stats/members", "/stats/contacts"], "matching": ["/stats/matching"]}


@pytest.mark.parametrize("service, path", [(service, path) for service, paths in STATS.items() for path in paths])
def test_organizers_see_their_associations_figures_and_the_totals_admins_all(platform, service, path):
    if service not in platform:
        pytest.skip(f"{service} is not installed")
    url = platform[service] + path
    organizer = ROLE_HEADERS["organizer"]  # of the logistics-network
    for query, status in (("", 200), ("?association=logistics-network", 200), ("?association=it-cluster", 403)):
        assert requests.get(url + query, headers=organizer, timeout=30).status_code == status, (query, status)
    assert requests.get(url + "?association=it-cluster", headers=ROLE_HEADERS["admin"], timeout=30).status_code == 200


def test_the_staff_check_fails_closed_when_members_service_does_not_answer(fresh_amqp_uri, tmp_path):
    """events-service alone on a broker where no members-service answers: a staff token gets 503
    within the check's timeout, never a pass; command-line tokens (no staff account) are not checked."""
    import time

    events = ServiceProcess("events", fresh_amqp_uri, f"sqlite:///{tmp_path / 'events.db'}", tmp_path,
                            {"STAFF_CHECK_TIMEOUT_SECONDS": "1"}).start()
    try:
        started = time.monotonic()
        staff = bearer("organizer", association="it-cluster", staff_id=str(uuid.uuid4()))
        refused = requests.get(f"{events.url}/events", headers=staff, timeout=30)
        assert refused.status_code == 503 and "members-service" in refused.json()["error"]
        assert time.monotonic() - started < 5
        assert requests.get(f"{events.url}/events", headers=ROLE_HEADERS["organizer"], timeout=30).status_code == 200
    finally:
        events.stop()


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
