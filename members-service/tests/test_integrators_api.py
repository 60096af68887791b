"""Integrator accounts over HTTP (the admin pages use these): create on the real RabbitMQ with the
connection URI and token shown once, list, revoke (the RabbitMQ user, its queues and its tokens go).
Each test uses an integrator name of its own and revokes it at the end."""
import subprocess
import uuid

import pytest
import requests
from amqp.exceptions import AccessRefused
from kombu import Connection, Queue, binding

from verbund.testing import bearer
from verbund.tools import integrators

pytestmark = pytest.mark.integration


def users() -> list[str]:
    return subprocess.run(["rabbitmqctl", "-q", "list_users"], capture_output=True, text=True).stdout.split()


@pytest.fixture
def name(members_api):
    name = f"it-{uuid.uuid4().hex[:8]}"
    yield name
    requests.post(f"{members_api.url}/integrators/{name}/revoke", headers=bearer("admin"), timeout=60)
    subprocess.run(["rabbitmqctl", "-q", "delete_user", integrators.user_name(name)], capture_output=True)


def create(api, body: dict) -> requests.Response:
    return requests.post(f"{api.url}/integrators", json=body, headers=bearer("admin"), timeout=60)


def test_create_use_and_revoke(members_api, name):
    made = create(members_api, {"name": name, "events": ["event.*", "registration.*"], "personal": False})
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["events"] == ["event.*", "registration.*"] and body["personal"] is False and body["revoked_at"] is None
    assert body["uri"].startswith(f"amqp://integrator-{name}:") and "<unchanged" not in body["uri"]
    assert integrators.user_name(name) in users()
    token = {"Authorization": f"Bearer {body['token']}"}
    assert requests.get(f"{members_api.url}/members", headers=token, timeout=10).status_code == 200
    # The URI works: the integrator declares its own queue within its scope.
    queue = f"integrator.{name}.inbox"
    with Connection(body["uri"]) as connection:
        Queue(queue, durable=True, bindings=[binding(integrators.EXISTING_EXCHANGE, routing_key="event.*")])(
            connection.channel()).declare()
    listed = requests.get(f"{members_api.url}/integrators", headers=bearer("admin"), timeout=10).json()["items"]
    shown = next(item for item in listed if item["name"] == name)
    assert "token" not in shown and "uri" not in shown  # shown once, kept nowhere
    # The same name again while it is active: a conflict at the field, nothing changed.
    again = create(members_api, {"name": name, "events": ["#"], "personal": True})
    assert again.status_code == 409 and again.json()["field"] == "name"

    revoked = requests.post(f"{members_api.url}/integrators/{name}/revoke", headers=bearer("admin"), timeout=60)
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked_at"] and revoked.json()["removed_queues"] == [queue]
    assert integrators.user_name(name) not in users()
    refused = requests.get(f"{members_api.url}/members", headers=token, timeout=10)
    assert refused.status_code == 401 and "revoked" in refused.json()["error"]
    with pytest.raises(AccessRefused):
        with Connection(body["uri"]) as connection:
            connection.connect()
    # Made again under the same name: a new serial, so the first token stays void.
    renewed = create(members_api, {"name": name, "events": ["event.*"], "personal": False})
    assert renewed.status_code == 201 and renewed.json()["serial"] > body["serial"]
    assert requests.get(f"{members_api.url}/members", headers=token, timeout=10).status_code in (401, 403)
    fresh = {"Authorization": f"Bearer {renewed.json()['token']}"}
    assert requests.get(f"{members_api.url}/members", headers=fresh, timeout=10).status_code == 200


@pytest.mark.parametrize("body, field", [
    ({"name": "Bad Name", "events": ["event.*"]}, "name"),
    ({"name": "ok-name", "events": []}, "events"),
    ({"name": "ok-name", "events": ["nothing.*"]}, "events"),
    ({"name": "ok-name"}, "events"),
])
def test_bad_input_is_a_422_at_the_field_and_creates_nothing(members_api, body, field):
    response = create(members_api, body)
    assert response.status_code == 422 and field in response.json()["fields"], response.text
    assert "integrator-ok-name" not in users()


def test_only_an_admin_manages_integrators(members_api):
    for method, path in (("GET", "/integrators"), ("POST", "/integrators"), ("POST", "/integrators/crm/revoke")):
        assert requests.request(method, f"{members_api.url}{path}", json={}, timeout=10).status_code == 401
        organizer = bearer("organizer", association="it-cluster")
        assert requests.request(method, f"{members_api.url}{path}", json={}, headers=organizer,
                                timeout=10).status_code == 403
    assert requests.post(f"{members_api.url}/integrators/nobody-here/revoke", headers=bearer("admin"),
                         timeout=10).status_code == 404
