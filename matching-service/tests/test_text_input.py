"""Text input and hostile bodies at the matching HTTP API of a real process, on
SQLite and PostgreSQL: control characters are field errors, deep JSON is a 400."""
import uuid

import pytest
import requests

from verbund.testing import bearer

pytestmark = pytest.mark.integration

ADMIN = bearer("admin")
ORGANIZER = bearer("organizer", association="automotive-cluster")
DEEP_BODIES = [b"[" * 5000 + b"]" * 5000, b'{"a":' * 5000 + b"1" + b"}" * 5000]


@pytest.mark.parametrize("body, field", [
    ({"topic": "hydro\x0bgen"}, "topic"),
    ({"topic": "hydrogen\u2066"}, "topic"),
    ({"member_id": "a\x0bb"}, "member_id"),
])
def test_a_proposal_request_with_a_control_character_is_a_field_error(matching_api, body, field):
    response = requests.post(f"{matching_api.url}/proposals", json=body, headers=ORGANIZER, timeout=10)
    assert response.status_code == 422, response.text
    assert "U+" in response.json()["fields"][field][0]


def test_a_response_naming_a_member_with_a_control_character_is_a_field_error(matching_api):
    response = requests.post(f"{matching_api.url}/proposals/{uuid.uuid4()}/responses",
                             json={"response": "accept", "member_id": "x\x1by"}, headers=ADMIN, timeout=10)
    assert response.status_code == 422 and "member_id" in response.json()["fields"], response.text


def test_a_query_string_with_a_control_character_is_a_field_error(matching_api):
    response = requests.get(f"{matching_api.url}/proposals", params={"member_id": "x\x0b"}, headers=ADMIN,
                            timeout=10)
    assert response.status_code == 422 and "member_id" in response.json()["fields"]


@pytest.mark.parametrize("body", DEEP_BODIES, ids=["arrays", "objects"])
def test_a_deeply_nested_body_is_a_400(matching_api, body):
    for url, headers in (("/proposals", ORGANIZER), (f"/proposals/{uuid.uuid4()}/responses", ADMIN),
                         ("/admin/rebuild", ADMIN)):
        response = requests.post(f"{matching_api.url}{url}", data=body,
                                 headers={**headers, "Content-Type": "application/json"}, timeout=10)
        assert response.status_code == 400, f"{url}: {response.text}"
        assert "deeper than 64" in response.json()["error"]
