"""Text input and hostile bodies at the notifications HTTP API of a real process,
on SQLite and PostgreSQL: control characters are field errors, text is stored
NFC and trimmed, a webhook's description keeps its lines, deep JSON is a 400."""
import uuid

import pytest
import requests

from verbund.testing import ServiceProcess, bearer

pytestmark = pytest.mark.integration

ADMIN = bearer("admin")
INTEGRATOR = bearer("integrator", subject="crm-of-it-cluster")
DEEP_BODIES = [b"[" * 5000 + b"]" * 5000, b'{"a":' * 5000 + b"1" + b"}" * 5000]
PUBLIC_URL = "https://93.184.215.14/crm"  # an address literal: no name to resolve


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request, amqp_uri, tmp_path_factory):
    """notifications-service as a real process, once per database; these tests send it no events."""
    workdir = tmp_path_factory.mktemp("notifications-text")
    url = f"sqlite:///{workdir / 'notifications.db'}" if request.param == "sqlite" \
        else request.getfixturevalue("postgres").create()
    process = ServiceProcess("notifications", amqp_uri, url, workdir,
                             env={"SMTP_PORT": "9", "DIGEST_CHECK_SECONDS": "3600"}).start()
    yield process
    process.stop()


@pytest.mark.parametrize("change, field", [
    ({"description": "CRM\x0bSync"}, "description"),
    ({"description": "Zeile 1\nZeile\x00 2"}, "description"),
    ({"url": PUBLIC_URL + "\x0b"}, "url"),
    ({"url": PUBLIC_URL + "/\u202egpj"}, "url"),
    ({"event_types": ["event.*\x85"]}, "event_types"),
])
def test_a_webhook_with_a_control_character_is_a_field_error(api, change, field):
    body = {"url": PUBLIC_URL, "event_types": ["event.*"], **change}
    response = requests.post(f"{api.url}/webhooks", json=body, headers=INTEGRATOR, timeout=30)
    assert response.status_code == 422, response.text
    assert field in response.json()["fields"]
    listed = requests.get(f"{api.url}/webhooks", headers=INTEGRATOR, timeout=30).json()["items"]
    assert all("\x0b" not in (hook["description"] or "") + hook["url"] for hook in listed)


def test_webhook_text_is_stored_composed_and_trimmed_and_keeps_its_lines(api):
    body = {"url": f"  {PUBLIC_URL} ", "event_types": [" event.* "],
            "description": " CRM-Anbindung Mu\u0308ller\r\nZweite Zeile\n"}
    created = requests.post(f"{api.url}/webhooks", json=body, headers=INTEGRATOR, timeout=30)
    assert created.status_code == 201, created.text
    hook = requests.get(f"{api.url}/webhooks/{created.json()['id']}", headers=INTEGRATOR, timeout=30).json()
    assert hook["url"] == PUBLIC_URL and hook["event_types"] == ["event.*"]
    assert hook["description"] == "CRM-Anbindung M\u00fcller\nZweite Zeile"
    patched = requests.patch(f"{api.url}/webhooks/{hook['id']}", json={"description": "neu\x0b"},
                             headers=INTEGRATOR, timeout=30)
    assert patched.status_code == 422 and "description" in patched.json()["fields"]


def test_preferences_with_a_control_character_are_a_field_error(api):
    response = requests.put(f"{api.url}/members/{uuid.uuid4()}/preferences", json={"frequency": "daily\x0b"},
                            headers=ADMIN, timeout=30)
    assert response.status_code == 422 and "U+000B" in response.json()["fields"]["frequency"][0], response.text


@pytest.mark.parametrize("body", DEEP_BODIES, ids=["arrays", "objects"])
def test_a_deeply_nested_body_is_a_400(api, body):
    for method, url in (("POST", "/webhooks"), ("PATCH", f"/webhooks/{uuid.uuid4()}"),
                        ("PUT", f"/members/{uuid.uuid4()}/preferences")):
        response = requests.request(method, f"{api.url}{url}", data=body,
                                    headers={**ADMIN, "Content-Type": "application/json"}, timeout=30)
        assert response.status_code == 400, f"{method} {url}: {response.text}"
        assert "deeper than 64" in response.json()["error"]
