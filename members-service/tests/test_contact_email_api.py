"""The contact e-mail rules and the teams of formed partner projects through a real members-service
process on the real broker, on SQLite and PostgreSQL."""
import uuid

import pytest
import requests

from verbund import envelope
from verbund.broker import Publisher
from verbund.testing import token, wait_for

pytestmark = pytest.mark.integration


def unique(member_input, email=None):
    tag = uuid.uuid4().hex[:8]
    return member_input(name=f"Firma {tag} GmbH", contact={"name": f"Person {tag}",
                                                           "email": email or f"p-{tag}@example.org"})


def register(api, body):
    response = requests.post(f"{api.url}/members", json=body, timeout=10)
    assert response.status_code == 201, response.text
    created = response.json()
    return created, {"Authorization": f"Bearer {created['access_token']}"}


def test_a_contact_e_mail_of_another_organisation_is_a_409_at_the_field(members_api, member_input):
    first, auth = register(members_api, unique(member_input))
    second, second_auth = register(members_api, unique(member_input))
    again = requests.post(f"{members_api.url}/members", timeout=10,
                          json=unique(member_input, email=first["contact"]["email"].upper()))
    assert again.status_code == 409 and list(again.json()["fields"]) == ["contact"]
    assert again.json()["fields"]["contact"]["email"]
    taken = requests.patch(f"{members_api.url}/members/{second['id']}", headers=second_auth, timeout=10,
                           json={"contact": {"email": first["contact"]["email"]}})
    assert taken.status_code == 409 and "email" in taken.json()["fields"]["contact"]


def test_a_changed_e_mail_is_pending_until_confirmed(members_api, member_input):
    member, auth = register(members_api, unique(member_input))
    new = f"neu-{uuid.uuid4().hex[:8]}@example.org"
    changed = requests.patch(f"{members_api.url}/members/{member['id']}", headers=auth, timeout=10,
                             json={"contact": {"email": new}})
    assert changed.status_code == 200, changed.text
    assert changed.json()["contact"]["email"] == member["contact"]["email"]
    assert changed.json()["contact"]["pending_email"] == new
    assert changed.headers["ETag"] == f'"{changed.json()["version"]}"'
    for body in ({"token": "x" * 43}, {"token": ""}, {}):
        refused = requests.post(f"{members_api.url}/auth/email-confirmations", json=body, timeout=10)
        assert refused.status_code in (400, 422) and "fields" in refused.json(), refused.text
    shown = requests.get(f"{members_api.url}/members/{member['id']}", headers=auth, timeout=10).json()
    assert shown["contact"]["email"] == member["contact"]["email"] and shown["contact"]["pending_email"] == new
    withdrawn = requests.patch(f"{members_api.url}/members/{member['id']}", headers=auth, timeout=10,
                               json={"contact": {"pending_email": None}})
    assert withdrawn.status_code == 200 and "pending_email" not in withdrawn.json()["contact"]


def project_formed(member_ids, status="formed"):
    project_id = str(uuid.uuid4())
    project = {"id": project_id, "version": 2, "title": "Batteriepässe für Rücktransporte", "topic": None,
               "status": status, "score": 0.7, "explanation": [],
               "members": [{"member_id": m, "sector": "it", "response": "accepted"} for m in member_ids]}
    event = envelope.new_event(f"project.{status}", "/verbund/matching", project_id, {"project": project})
    envelope.validate(event)
    return event


def test_members_of_a_formed_project_see_each_others_contact_person(members_api, member_input, amqp_uri):
    (a, a_auth), (b, b_auth), (c, c_auth) = (register(members_api, unique(member_input)) for _ in range(3))
    publisher = Publisher(amqp_uri)
    try:
        proposed = project_formed([a["id"], c["id"]], status="proposed")
        publisher.publish(proposed["type"], envelope.dumps(proposed), message_id=proposed["id"])
        formed = project_formed([a["id"], b["id"]])
        publisher.publish(formed["type"], envelope.dumps(formed), message_id=formed["id"])
    finally:
        publisher.close()

    def contact(auth, member_id):
        return requests.get(f"{members_api.url}/members/{member_id}/contact", headers=auth, timeout=10)

    wait_for(lambda: contact(a_auth, b["id"]).status_code == 200, timeout=30, message="project.formed taken in")
    assert contact(b_auth, a["id"]).json() == {"contact_name": a["contact"]["name"],
                                               "contact_email": a["contact"]["email"]}
    assert contact(c_auth, a["id"]).status_code == 403  # only proposed together (bound to project.formed only)
    listed = requests.get(f"{members_api.url}/members/{a['id']}/contacts", headers=a_auth, timeout=10)
    assert listed.status_code == 200
    [item] = listed.json()["items"]
    assert item["member_id"] == b["id"] and item["via"][0]["title"] == "Batteriepässe für Rücktransporte"
    others = requests.get(f"{members_api.url}/members/{a['id']}/contacts", headers=b_auth, timeout=10)
    organizer = requests.get(f"{members_api.url}/members/{a['id']}/contacts", timeout=10,
                             headers={"Authorization": f"Bearer {token('organizer', association='it-cluster')}"})
    assert others.status_code == 403 and organizer.status_code == 403
