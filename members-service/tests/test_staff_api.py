"""Staff accounts through the HTTP API of a real members-service process (SQLite and PostgreSQL):
invite, list, revoke, and who a token is for; a revoked account's token is refused on the next request."""
import uuid

import pytest
import requests

from verbund.testing import bearer

pytestmark = pytest.mark.integration

ADMIN = bearer("admin")


def invite(api, headers=ADMIN, **body):
    body = {"email": f"staff-{uuid.uuid4().hex[:8]}@cluster.example", "name": "Olga Organa", "role": "organizer",
            "association": "logistics-network", **body}
    return requests.post(f"{api.url}/staff", json=body, headers=headers, timeout=10)


def test_an_admin_invites_lists_and_revokes_and_the_token_dies_on_the_next_request(members_api):
    created = invite(members_api, language="en")
    assert created.status_code == 201, created.text
    account = created.json()
    assert (account["role"], account["association"], account["status"], account["invited_by"]) == (
        "organizer", "logistics-network", "active", "cli")
    listed = requests.get(f"{members_api.url}/staff", headers=ADMIN, timeout=10).json()["items"]
    assert account["id"] in [item["id"] for item in listed]

    organizer = bearer("organizer", association="logistics-network", staff_id=account["id"])
    me = requests.get(f"{members_api.url}/auth/me", headers=organizer, timeout=10)
    assert me.status_code == 200 and me.json()["staff_id"] == account["id"] and me.json()["language"] == "en"
    assert requests.get(f"{members_api.url}/members", headers=organizer, timeout=10).status_code == 200

    revoked = requests.post(f"{members_api.url}/staff/{account['id']}/revoke", headers=ADMIN, timeout=10)
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    for path in ("/auth/me", "/members"):
        refused = requests.get(f"{members_api.url}{path}", headers=organizer, timeout=10)
        assert refused.status_code == 401 and "revoked" in refused.json()["error"]


def test_only_admins_manage_staff_and_not_their_own_account(members_api):
    admin = invite(members_api, role="admin").json()
    own = bearer("admin", staff_id=admin["id"])
    assert requests.post(f"{members_api.url}/staff/{admin['id']}/revoke", headers=own, timeout=10).status_code == 409
    organizer = bearer("organizer", association="it-cluster")
    assert invite(members_api, headers=organizer).status_code == 403
    assert requests.get(f"{members_api.url}/staff", headers=organizer, timeout=10).status_code == 403
    assert requests.get(f"{members_api.url}/staff", timeout=10).status_code == 401
    assert requests.post(f"{members_api.url}/staff/{uuid.uuid4()}/revoke", headers=ADMIN,
                         timeout=10).status_code == 404
    bad = invite(members_api, email="nope", role="organizer", association=None)
    assert bad.status_code == 422 and set(bad.json()["fields"]) == {"email", "association"}
    twice = invite(members_api, email=admin["email"])
    assert twice.status_code == 409
    unknown = bearer("organizer", association="it-cluster", staff_id=str(uuid.uuid4()))
    assert requests.get(f"{members_api.url}/auth/me", headers=unknown, timeout=10).status_code == 401


def test_me_answers_for_members_and_command_line_tokens(members_api, member_input):
    body = member_input(name=f"Firma {uuid.uuid4().hex[:8]} GmbH",
                        contact={"name": "A", "email": f"a-{uuid.uuid4().hex[:6]}@example.org", "language": "en"})
    created = requests.post(f"{members_api.url}/members", json=body, timeout=10).json()
    member = {"Authorization": f"Bearer {created['access_token']}"}
    me = requests.get(f"{members_api.url}/auth/me", headers=member, timeout=10).json()
    assert (me["role"], me["member_id"], me["name"], me["language"]) == ("member", created["id"], body["name"], "en")
    assert requests.get(f"{members_api.url}/auth/me", headers=ADMIN, timeout=10).json() == {
        "role": "admin", "subject": "test-admin"}
    assert requests.get(f"{members_api.url}/auth/me", timeout=10).status_code == 401


def test_verbund_staff_add_creates_the_first_admin(members_api, monkeypatch, capsys):
    from verbund.tools import cli

    monkeypatch.setenv("MEMBERS_URL", members_api.url)
    email = f"root-{uuid.uuid4().hex[:6]}@verbund.example"
    assert cli.main(["staff", "add", email, "--name", "Rita Root", "--role", "admin"]) == 0
    assert f"admin Rita Root <{email}> created" in capsys.readouterr().out
    listed = requests.get(f"{members_api.url}/staff", headers=ADMIN, timeout=10).json()["items"]
    assert [(item["role"], item["invited_by"]) for item in listed if item["email"] == email] == [("admin", "cli")]
    assert cli.main(["staff", "add", email, "--name", "Rita Root"]) == 1
    assert "409" in capsys.readouterr().err
    assert cli.main(["staff", "add", "x@verbund.example", "--name", "X", "--role", "organizer"]) == 1
    assert "association" in capsys.readouterr().err


def test_an_admin_signed_in_as_staff_is_recorded_as_the_inviter(members_api):
    admin = invite(members_api, role="admin", name="Rita Root").json()
    as_rita = bearer("admin", staff_id=admin["id"])
    created = invite(members_api, headers=as_rita, association="it-cluster")
    assert created.status_code == 201 and created.json()["invited_by"] == admin["id"]
    revoked = requests.post(f"{members_api.url}/staff/{created.json()['id']}/revoke", headers=as_rita, timeout=10)
    assert revoked.status_code == 200
