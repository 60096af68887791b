"""Text input and hostile bodies at the events HTTP API of a real process, on
SQLite and PostgreSQL: control characters are field errors, text is stored
NFC and trimmed, descriptions keep their lines, deep JSON is a 400."""
import uuid

import pytest
import requests

from verbund.testing import bearer

pytestmark = pytest.mark.integration

IT_ORGANIZER = bearer("organizer", association="it-cluster")
DEEP_BODIES = [b"[" * 5000 + b"]" * 5000, b'{"a":' * 5000 + b"1" + b"}" * 5000]


def titles(api) -> list[str]:
    return [item["title"] for item in requests.get(f"{api.url}/events", params={"per_page": 500},
                                                   timeout=10).json()["items"]]


@pytest.mark.parametrize("overrides, path", [
    ({"title": "Workshop\x0bKI"}, ("title",)),
    ({"description": "Zeile 1\nZeile\x00 2"}, ("description",)),
    ({"venue": {"name": "Digital\x85Hub", "city": "Hamburg"}}, ("venue", "name")),
    ({"venue": {"name": "Digital Hub", "city": "Ham\u202eburg"}}, ("venue", "city")),
    ({"topics": ["ai\x0b"]}, ("topics", "0")),
])
def test_control_characters_are_field_errors_that_leave_no_trace(events_api, event_input, overrides, path):
    tag = uuid.uuid4().hex[:8]
    body = event_input(**overrides)
    if "title" not in overrides:
        body["title"] = f"Nie geplant {tag}"
    response = requests.post(f"{events_api.url}/events", json=body, headers=IT_ORGANIZER, timeout=10)
    assert response.status_code == 422, response.text
    errors = response.json()["fields"]
    for key in path:
        errors = errors[key if key in errors else int(key)]
    assert "U+" in errors[0]
    assert body["title"] not in titles(events_api)


def test_an_attendee_name_with_a_control_character_is_a_field_error(events_api):
    member = str(uuid.uuid4())
    response = requests.post(f"{events_api.url}/events/{uuid.uuid4()}/registrations",
                             json={"seats": 2, "attendees": ["Jana Keller", "Max\x0bMuster"]},
                             headers=bearer("member", member_id=member, subject=f"member:{member}"), timeout=10)
    assert response.status_code == 422 and "1" in response.json()["fields"]["attendees"], response.text


def test_a_cancel_reason_with_a_control_character_is_a_field_error(events_api):
    response = requests.post(f"{events_api.url}/events/{uuid.uuid4()}/cancel", json={"reason": "Krank\x07"},
                             headers=IT_ORGANIZER, timeout=10)
    assert response.status_code == 422 and "reason" in response.json()["fields"]


def test_text_is_stored_composed_and_trimmed_and_the_description_keeps_its_lines(events_api, event_input):
    tag = uuid.uuid4().hex[:8]
    body = event_input(title=f"  Mu\u0308nchner Runde {tag}\t", description=" Programm:\r\n- KI\n- Logistik\n",
                       venue={"name": " Gießerei ", "address": "Hafenstraße 1", "city": "Mu\u0308nchen"})
    response = requests.post(f"{events_api.url}/events", json=body, headers=IT_ORGANIZER, timeout=10)
    assert response.status_code == 201, response.text
    stored = requests.get(f"{events_api.url}/events/{response.json()['id']}", timeout=10).json()
    assert stored["title"] == f"M\u00fcnchner Runde {tag}"
    assert stored["description"] == "Programm:\n- KI\n- Logistik"
    assert stored["venue"]["name"] == "Gießerei" and stored["venue"]["city"] == "M\u00fcnchen"


@pytest.mark.parametrize("body", DEEP_BODIES, ids=["arrays", "objects"])
def test_a_deeply_nested_body_is_a_400(events_api, body):
    event_id = uuid.uuid4()
    for method, url in (("POST", "/events"), ("PATCH", f"/events/{event_id}"),
                        ("POST", f"/events/{event_id}/registrations"), ("POST", f"/events/{event_id}/cancel")):
        response = requests.request(method, f"{events_api.url}{url}", data=body,
                                    headers={**bearer("admin"), "Content-Type": "application/json"}, timeout=10)
        assert response.status_code == 400, f"{method} {url}: {response.text}"
        assert "deeper than 64" in response.json()["error"]
