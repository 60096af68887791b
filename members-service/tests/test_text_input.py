"""Text input and hostile bodies at the members HTTP API of a real process, on
SQLite and PostgreSQL: control characters are field errors, text is stored
NFC and trimmed, deep JSON is a 400, and search ignores case and composition."""
import uuid

import pytest
import requests

from verbund.testing import bearer

pytestmark = pytest.mark.integration

ADMIN = bearer("admin")
DEEP_BODIES = [b"[" * 5000 + b"]" * 5000, b'{"a":' * 5000 + b"1" + b"}" * 5000]


def tagged(member_input, **overrides):
    tag = uuid.uuid4().hex[:8]
    return tag, member_input(**{"name": f"Firma {tag} GmbH", **overrides})


def register(api, body):
    response = requests.post(f"{api.url}/members", json=body, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()


def search(api, **params):
    response = requests.get(f"{api.url}/members", params=params, headers=ADMIN, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("change, path", [
    ({"contact": {"name": "Jana\x0bKeller", "email": "j.keller@example.org", "language": "de"}}, ("contact", "name")),
    ({"name": "Firma\x00 GmbH"}, ("name",)),
    ({"name": "Firma\u202egnp.exe GmbH"}, ("name",)),
    ({"region": {"state": "BW", "postcode": "88662", "city": "Über\x85lingen"}}, ("region", "city")),
    ({"offers": [{"label": "Druck\x1bguss"}]}, ("offers", "0", "label")),
    ({"needs": [{"label": "Tourenplanung", "description": "Zeile\x0cZwei"}]}, ("needs", "0", "description")),
])
def test_control_characters_are_field_errors_that_leave_no_trace(members_api, member_input, change, path):
    tag, body = tagged(member_input, **change)
    response = requests.post(f"{members_api.url}/members", json=body, timeout=10)
    assert response.status_code == 422, response.text
    errors = response.json()["fields"]
    for key in path:
        errors = errors[key if key in errors else int(key)]
    assert "U+" in errors[0]
    assert search(members_api, q=tag)["total"] == 0


def test_a_patch_with_a_control_character_is_refused(members_api, member_input):
    _, body = tagged(member_input)
    created = register(members_api, body)
    response = requests.patch(f"{members_api.url}/members/{created['id']}", json={"contact": {"name": "A\x0bB"}},
                              headers=ADMIN, timeout=10)
    assert response.status_code == 422 and "name" in response.json()["fields"]["contact"]


def test_text_is_stored_composed_and_trimmed_and_descriptions_keep_their_lines(members_api, member_input):
    tag, body = tagged(member_input, contact={"name": "  Jana Mu\u0308ller ", "email": "jm@example.org"},
                       offers=[{"label": " Druckguss\t", "description": "Aluminium\r\n\tbis 20 kg\n"}])
    body["name"] = f"  Mu\u0308ller {tag} GmbH "
    created = register(members_api, body)
    stored = requests.get(f"{members_api.url}/members/{created['id']}", headers=ADMIN, timeout=10).json()
    assert stored["name"] == f"M\u00fcller {tag} GmbH"
    assert stored["contact"]["name"] == "Jana M\u00fcller"
    assert stored["offers"][0]["label"] == "Druckguss"
    assert stored["offers"][0]["description"] == "Aluminium\n\tbis 20 kg"


@pytest.mark.parametrize("path, params", [("/members", {"city": "Ulm\x0b"}), ("/members", {"q": "A\x00"}),
                                          ("/members", {"competency": "Druck\x1bguss"}),
                                          ("/vocabulary", {"q": "Guss\x0b"})])
def test_a_query_string_with_a_control_character_is_a_field_error(members_api, path, params):
    response = requests.get(f"{members_api.url}{path}", params=params, headers=ADMIN, timeout=10)
    assert response.status_code == 422 and set(params) == set(response.json()["fields"]), response.text


def test_the_vocabulary_is_searched_with_the_trimmed_query(members_api):
    response = requests.get(f"{members_api.url}/vocabulary", params={"q": "  Druckguss "}, timeout=10)
    assert response.status_code == 200 and response.json()["competencies"]


@pytest.mark.parametrize("body", DEEP_BODIES, ids=["arrays", "objects"])
def test_a_deeply_nested_body_is_a_400(members_api, body):
    for method, url in (("POST", "/members"), ("PATCH", f"/members/{uuid.uuid4()}")):
        response = requests.request(method, f"{members_api.url}{url}", data=body,
                                    headers={**ADMIN, "Content-Type": "application/json"}, timeout=10)
        assert response.status_code == 400, response.text
        assert "deeper than 64" in response.json()["error"]


def test_search_ignores_case_and_composition(members_api, member_input):
    tag = uuid.uuid4().hex[:8]
    surgery = register(members_api, member_input(
        name=f"Ärztehaus {tag}", region={"state": "BW", "postcode": "88662", "city": "Überlingen"},
        offers=[{"label": f"Ölanalytik-Software {tag}"}]))
    assert [m["id"] for m in search(members_api, q=f"ärztehaus {tag}")["items"]] == [surgery["id"]]
    assert [m["id"] for m in search(members_api, q=tag, city="überlingen")["items"]] == [surgery["id"]]
    assert [m["id"] for m in search(members_api, q=tag, city="ÜBERLINGEN")["items"]] == [surgery["id"]]
    assert [m["id"] for m in search(members_api, offers=f"ÖLANALYTIK-SOFTWARE {tag.upper()}")["items"]] \
        == [surgery["id"]]
    decomposed = register(members_api, member_input(name=f"Mu\u0308ller Förderbänder {tag}"))
    assert [m["id"] for m in search(members_api, q=f"Müller F\u00d6RDERB\u00c4NDER {tag}")["items"]] \
        == [decomposed["id"]]
    # LIKE's wildcards are text like any other.
    assert search(members_api, q=f"%{tag}")["total"] == 0 and search(members_api, q=f"_rztehaus {tag}")["total"] == 0


@pytest.mark.parametrize("label", ["🚚📦🔥💸", "?!...,;:-–—"])
def test_a_competency_without_a_letter_or_digit_is_a_field_error(members_api, member_input, label):
    tag, body = tagged(member_input, needs=[{"label": "Tourenplanung"}, {"label": label}])
    response = requests.post(f"{members_api.url}/members", json=body, timeout=10)
    assert response.status_code == 422, response.text
    assert "letter or digit" in response.json()["fields"]["needs"]["1"]["label"][0]
    assert search(members_api, q=tag)["total"] == 0
    ok = requests.post(f"{members_api.url}/members", json=tagged(member_input, needs=[{"label": "Öl"}])[1],
                       timeout=10)
    assert ok.status_code == 201, ok.text  # a short word is a word
