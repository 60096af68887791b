"""The members HTTP API of a real members-service process, on SQLite and
PostgreSQL, with its events observed on the real broker."""
import io
import uuid

import pytest
import requests

from verbund.testing import bearer

pytestmark = pytest.mark.integration

ADMIN = bearer("admin")
ORGANIZER = bearer("organizer", association="automotive-cluster")
OTHER_ORGANIZER = bearer("organizer", association="logistics-network")
INTEGRATOR = bearer("integrator")


def unique(member_input, **overrides):
    """A registration body for an organisation no other test uses."""
    return member_input(name=f"Firma {uuid.uuid4().hex[:8]} GmbH", **overrides)


def register(api, body, headers=None):
    response = requests.post(f"{api.url}/members", json=body, headers=headers or {}, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()


def test_a_member_registers_and_the_platform_hears_of_it(members_api, member_input, event_tap):
    tap = event_tap("member.*")
    created = register(members_api, unique(member_input))
    assert created["version"] == 1 and created["access_token"]
    [event] = tap.wait("member.registered", subject=created["id"])
    assert event["source"] == "/verbund/members" and event["data"]["profile"]["name"] == created["name"]

    own = {"Authorization": f"Bearer {created['access_token']}"}
    response = requests.get(f"{members_api.url}/members/{created['id']}", headers=own, timeout=10)
    assert response.status_code == 200 and response.headers["ETag"] == '"1"'
    assert response.json()["contact"]["email"] == created["contact"]["email"]


def test_a_member_changes_its_profile_with_an_etag(members_api, member_input, event_tap):
    tap = event_tap("member.updated")
    created = register(members_api, unique(member_input))
    own = {"Authorization": f"Bearer {created['access_token']}"}
    url = f"{members_api.url}/members/{created['id']}"
    response = requests.patch(url, json={"topics": ["hydrogen"]}, headers={**own, "If-Match": '"1"'}, timeout=10)
    assert response.status_code == 200 and response.json()["version"] == 2
    [event] = tap.wait("member.updated", subject=created["id"])
    assert event["data"]["changed"] == ["topics"]
    stale = requests.patch(url, json={"topics": ["ai"]}, headers={**own, "If-Match": '"1"'}, timeout=10)
    assert stale.status_code == 412


@pytest.mark.parametrize("body, status, field", [
    ({"sector": "aerospace"}, 422, "sector"),
    ({"contact": {"name": "X", "email": "x@@example", "language": "de"}}, 422, "contact"),
    ({"needs": {"label": "not a list"}}, 422, "needs"),
    ({"name": None}, 422, "name"),
    ({"id": "00000000-0000-0000-0000-000000000000"}, 422, "id"),  # the platform chooses the id
])
def test_bad_registrations_get_field_errors_and_leave_no_trace(members_api, member_input, event_tap, body, status,
                                                                field):
    tap = event_tap("member.*")
    name = f"Nie Registriert {uuid.uuid4().hex[:8]}"
    response = requests.post(f"{members_api.url}/members", json=member_input(**{"name": name, **body}), timeout=10)
    assert response.status_code == status
    assert field in response.json()["fields"]
    listed = requests.get(f"{members_api.url}/members", params={"q": name}, headers=ADMIN, timeout=10).json()
    assert listed["total"] == 0
    marker = register(members_api, unique(member_input))  # the next event on the stream is the marker's
    assert [event["subject"] for event in tap.wait("member.registered")] == [marker["id"]]


def test_malformed_and_oversized_bodies(members_api):
    url = f"{members_api.url}/members"
    not_json = requests.post(url, data=b"{name: 1", headers={"Content-Type": "application/json"}, timeout=10)
    assert not_json.status_code == 400 and "JSON" in not_json.json()["error"]
    a_list = requests.post(url, json=[1, 2], timeout=10)
    assert a_list.status_code == 400
    huge = requests.post(url, json={"name": "x" * 10_000_000}, timeout=30)
    assert huge.status_code == 413


def test_a_duplicate_registration_is_a_conflict(members_api, member_input):
    body = unique(member_input)
    register(members_api, body)
    again = requests.post(f"{members_api.url}/members", json={**body, "name": body["name"].replace(" GmbH", " AG")},
                          timeout=10)
    assert again.status_code == 409


def test_erasure_then_every_later_change_is_gone(members_api, member_input, event_tap):
    tap = event_tap("member.deleted")
    created = register(members_api, unique(member_input))
    own = {"Authorization": f"Bearer {created['access_token']}"}
    url = f"{members_api.url}/members/{created['id']}"
    assert requests.delete(url, headers=own, timeout=10).status_code == 204
    [event] = tap.wait("member.deleted", subject=created["id"])
    assert event["data"]["version"] == 2
    assert requests.patch(url, json={"topics": []}, headers=own, timeout=10).status_code == 410
    assert requests.get(url, headers=ADMIN, timeout=10).status_code == 410
    assert requests.delete(url, headers=own, timeout=10).status_code == 410


def test_who_may_see_and_change_a_profile(members_api, member_input):
    created = register(members_api, unique(member_input))
    stranger = register(members_api, unique(member_input))
    url = f"{members_api.url}/members/{created['id']}"
    stranger_auth = {"Authorization": f"Bearer {stranger['access_token']}"}

    assert requests.get(url, timeout=10).status_code == 401
    assert requests.get(url, headers={"Authorization": "Bearer forged"}, timeout=10).status_code == 401
    assert requests.get(url, headers=stranger_auth, timeout=10).status_code == 403
    assert requests.patch(url, json={"topics": []}, headers=stranger_auth, timeout=10).status_code == 403
    assert requests.delete(url, headers=stranger_auth, timeout=10).status_code == 403
    assert requests.get(url, headers=INTEGRATOR, timeout=10).status_code == 200
    assert requests.patch(url, json={"topics": []}, headers=INTEGRATOR, timeout=10).status_code == 403
    assert requests.patch(url, json={"topics": ["ai"]}, headers=OTHER_ORGANIZER, timeout=10).status_code == 403
    assert requests.patch(url, json={"topics": ["ai"]}, headers=ORGANIZER, timeout=10).status_code == 200
    assert requests.get(f"{members_api.url}/members", headers=stranger_auth, timeout=10).status_code == 403
    assert requests.get(f"{members_api.url}/members/{uuid.uuid4()}", headers=ADMIN, timeout=10).status_code == 404


def test_list_filters_and_pages(members_api, member_input):
    tag = uuid.uuid4().hex[:8]
    for i in range(3):
        register(members_api, member_input(name=f"Listentest {tag} {i}", sector="logistics",
                                           associations=["logistics-network"]))
    url = f"{members_api.url}/members"
    page = requests.get(url, params={"q": tag, "per_page": 2, "sector": "logistics"}, headers=INTEGRATOR,
                        timeout=10).json()
    assert page["total"] == 3 and len(page["items"]) == 2
    bad = requests.get(url, params={"sector": "aerospace", "per_page": 0}, headers=ADMIN, timeout=10)
    assert bad.status_code == 422 and set(bad.json()["fields"]) == {"sector", "per_page"}


def test_an_excel_member_list_is_imported_with_a_report(members_api, event_tap):
    from openpyxl import Workbook

    tap = event_tap("member.registered")
    tag = uuid.uuid4().hex[:8]
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["Name", "Sector", "State", "Postcode", "City", "Employees", "Contact", "Email", "Offers"])
    sheet.append([f"Spedition {tag} KG", "logistics", "HH", 20095, "Hamburg", 40, "Ole", "ole@s.example",
                  "Gefahrgutlogistik; Kontraktlogistik"])
    sheet.append([f"Falsch {tag}", "logistics", "HH", 20095, "Hamburg", 40, "Ole", "kein-mail", ""])
    buffer = io.BytesIO()
    workbook.save(buffer)
    response = requests.post(f"{members_api.url}/members/import", data=buffer.getvalue(), headers={
        **ORGANIZER, "Content-Type": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
        timeout=30)
    assert response.status_code == 200, response.text
    report = response.json()
    assert [item["row"] for item in report["imported"]] == [2]
    assert [(error["row"], list(error["errors"])) for error in report["errors"]] == [(3, ["contact_email"])]
    [event] = tap.wait("member.registered", subject=report["imported"][0]["id"])
    assert [offer["term"] for offer in event["data"]["profile"]["offers"]] == [
        "dangerous-goods-transport", "contract-logistics"]


def test_imports_are_for_staff_and_tables_only(members_api):
    url = f"{members_api.url}/members/import"
    assert requests.post(url, data=b"name\nX\n", headers={"Content-Type": "text/csv", **INTEGRATOR},
                         timeout=10).status_code == 403
    assert requests.post(url, data=b"%PDF", headers={"Content-Type": "application/pdf", **ADMIN},
                         timeout=10).status_code == 415


def test_the_vocabulary_is_public(members_api):
    response = requests.get(f"{members_api.url}/vocabulary", params={"q": "batterie"}, timeout=10)
    assert response.status_code == 200
    assert "battery-cell-manufacturing" in [term["id"] for term in response.json()["competencies"]]


def test_rpc_serves_profiles_to_other_services(members_api, member_input, amqp_uri):
    from nameko.standalone.rpc import ClusterRpcProxy

    created = register(members_api, unique(member_input))
    with ClusterRpcProxy({"AMQP_URI": amqp_uri}, timeout=10) as cluster:
        assert cluster.members.get_profile(created["id"])["name"] == created["name"]
        assert cluster.members.get_profile(str(uuid.uuid4())) is None
        batch = cluster.members.profiles_after(None, 1000)
    assert created["id"] in [profile["id"] for profile in batch["profiles"]]


def test_the_service_serves_its_openapi_document(members_api):
    import json
    from pathlib import Path

    committed = json.loads((Path(__file__).resolve().parents[2] / "docs" / "openapi" / "members.json").read_text())
    assert requests.get(f"{members_api.url}/openapi.json", timeout=10).json() == committed


def test_routing_errors_are_json_too(members_api):
    missing = requests.get(f"{members_api.url}/no-such-path", timeout=10)
    assert missing.status_code == 404 and missing.json()["error"]
    wrong = requests.put(f"{members_api.url}/members", json={}, headers=ADMIN, timeout=10)
    assert wrong.status_code == 405 and set(wrong.headers["Allow"].split(", ")) == {"GET", "HEAD", "POST"}
    not_an_id = requests.get(f"{members_api.url}/members/import", headers=ADMIN, timeout=10)
    assert not_an_id.status_code == 405  # /members/import is only POSTed to, never read as a member id


@pytest.mark.parametrize("size, field", [({"employees": 5, "turnover_eur": 10**20}, "turnover_eur"),
                                         ({"employees": 5, "balance_sheet_eur": 10**20}, "balance_sheet_eur"),
                                         ({"employees": 2**63}, "employees")])
def test_figures_beyond_the_database_are_a_422_on_registration_and_change(members_api, member_input, size, field):
    response = requests.post(f"{members_api.url}/members", json=unique(member_input, size=size), timeout=10)
    assert response.status_code == 422, response.text
    assert list(response.json()["fields"]["size"]) == [field]
    created = register(members_api, unique(member_input))
    own = {"Authorization": f"Bearer {created['access_token']}"}
    response = requests.patch(f"{members_api.url}/members/{created['id']}", json={"size": size}, headers=own,
                              timeout=10)
    assert response.status_code == 422, response.text
    assert requests.get(f"{members_api.url}/members/{created['id']}", headers=own, timeout=10).json()["version"] == 1


def test_a_contact_address_the_platform_cannot_mail_is_a_422(members_api, member_input):
    contact = {"name": "Jürgen Bäcker", "email": "jürgen@baecker.example", "language": "de"}
    response = requests.post(f"{members_api.url}/members", json=unique(member_input, contact=contact), timeout=10)
    assert response.status_code == 422, response.text
    assert "before the @" in response.json()["fields"]["contact"]["email"][0]
    created = register(members_api, unique(member_input, contact={**contact, "email": "juergen@bäcker.example"}))
    assert created["contact"]["email"] == "juergen@bäcker.example"  # an internationalised domain is sent as IDNA
