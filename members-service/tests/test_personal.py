"""The member's personal data in its events: the contact person travels only encrypted under the
member's own key; erasure deletes the key in the same transaction (crypto-shredding), and only
services (RPC) and entitled integrators (HTTP) get keys. Use cases on SQLite and PostgreSQL,
HTTP and RPC against a real members-service process."""
import json
import uuid

import pytest
import requests
from sqlalchemy import func, select

from members import queries, services
from members.models import MemberKey
from members.schemas import MemberSchema
from verbund import outbox, personal
from verbund.auth import Principal
from verbund.errors import Forbidden, Gone, NotFound
from verbund.testing import bearer

pytestmark = pytest.mark.integration

ADMIN = Principal("admin", "admin")


def outbox_bodies(store) -> list[str]:
    with store.engine.connect() as conn:
        return list(conn.execute(select(outbox.outbox_table.c.body).order_by(outbox.outbox_table.c.seq)).scalars())


def key_count(store) -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(MemberKey)).scalar()


def test_events_carry_the_contact_person_only_encrypted(store, member_input):
    body = member_input(contact={"name": "Zora Quendt", "email": "z.quendt@vertraulich.example", "language": "en"})
    with store.unit_of_work() as uow:
        member = services.register(uow, MemberSchema().load(body))
    with store.unit_of_work() as uow:
        services.update(uow, ADMIN, member["id"], {"contact": {"name": "Zora Quendt-Ilse"}})
    bodies = outbox_bodies(store)
    assert len(bodies) == 2
    for raw in bodies:
        assert "Quendt" not in raw and "vertraulich.example" not in raw
    registered, updated = (json.loads(raw) for raw in bodies)
    assert registered["data"]["profile"]["contact"] == {"language": "en"}
    assert updated["data"]["changed"] == ["contact"]
    with store.unit_of_work() as uow:
        key = personal.key_from_jwk(queries.member_key(uow.session, ADMIN, member["id"]))
    assert personal.member_profile(updated, {member["id"]: key}.get)["contact"] == {
        "name": "Zora Quendt-Ilse", "email": "z.quendt@vertraulich.example", "language": "en"}
    # Each member has its own key: another's does not open it.
    with store.unit_of_work() as uow:
        other = services.register(uow, MemberSchema().load(member_input(name="Andere Firma GmbH")))
        other_key = personal.key_from_jwk(queries.member_key(uow.session, ADMIN, other["id"]))
    with pytest.raises(personal.UnreadablePersonalData):
        personal.decrypt(updated["data"]["profile"]["personal"], other_key)


def test_erasure_deletes_the_key_with_the_member(store, member_input):
    with store.unit_of_work() as uow:
        member = services.register(uow, MemberSchema().load(member_input()))
    ciphertext = json.loads(outbox_bodies(store)[0])["data"]["profile"]["personal"]
    assert key_count(store) == 1
    with store.unit_of_work() as uow:
        services.erase(uow, ADMIN, member["id"])
    assert key_count(store) == 0
    with pytest.raises(Gone):
        with store.unit_of_work() as uow:
            queries.member_key(uow.session, ADMIN, member["id"])
    assert ciphertext.count(".") == 4  # the ciphertext may live on elsewhere; nothing can open it now


def test_an_erasure_that_fails_keeps_the_key(store, member_input):
    with store.unit_of_work() as uow:
        member = services.register(uow, MemberSchema().load(member_input()))
    with pytest.raises(Forbidden):
        with store.unit_of_work() as uow:
            services.erase(uow, Principal("x", "member", member_id="someone-else"), member["id"])
    assert key_count(store) == 1


@pytest.mark.parametrize("principal, grant, allowed", [
    (ADMIN, None, True),
    (Principal("crm", "integrator", personal=True, grant=1), {"events": ["#"], "personal": True}, True),
    (Principal("crm", "integrator", events=("member.*",), personal=True, grant=1),
     {"events": ["member.*"], "personal": True}, True),
    (Principal("crm", "integrator"), None, False),  # no personal-data grant: the default
    (Principal("crm", "integrator", personal=True), None, False),  # no grant claim: the default, whatever it says
    (Principal("crm", "integrator", events=("event.*",), personal=True, grant=1),
     {"events": ["event.*"], "personal": True}, False),  # not scoped to member.*
    (Principal("olga", "organizer", association="automotive-cluster"), None, False),
])
def test_who_may_have_a_members_key(store, member_input, principal, grant, allowed):
    with store.unit_of_work() as uow:
        member = services.register(uow, MemberSchema().load(member_input()))
        if grant:
            services.record_grant(uow, principal.subject, grant)
    with store.unit_of_work() as uow:
        if allowed:
            assert queries.member_key(uow.session, principal, member["id"])["kid"] == member["id"]
        else:
            with pytest.raises(Forbidden):
                queries.member_key(uow.session, principal, member["id"])
    # The member itself neither: its own contact it reads from its profile.
    with pytest.raises(Forbidden):
        with store.unit_of_work() as uow:
            queries.member_key(uow.session, Principal("m", "member", member_id=member["id"]), member["id"])


def test_a_key_for_no_member_is_not_found(store):
    with pytest.raises(NotFound):
        with store.unit_of_work() as uow:
            queries.member_key(uow.session, ADMIN, str(uuid.uuid4()))


# --- over HTTP and RPC, against the running service ------------------------------------------------

def test_keys_over_http_for_entitled_integrators_and_gone_after_erasure(members_api, member_input, event_tap):
    tap = event_tap("member.registered")
    created = requests.post(f"{members_api.url}/members", json=member_input(name=f"Firma {uuid.uuid4().hex[:8]}"),
                            timeout=10).json()
    [event] = tap.wait("member.registered", subject=created["id"])
    url = f"{members_api.url}/members/{created['id']}/key"
    granted = requests.put(f"{members_api.url}/integrators/crm-keys/grant", headers=bearer("admin"), timeout=10,
                           json={"events": ["member.*", "event.*"], "personal": True})
    assert granted.status_code == 200, granted.text
    entitled = bearer("integrator", subject="crm-keys", events=("member.*", "event.*"), personal=True,
                      grant=granted.json()["serial"])

    response = requests.get(url, headers=entitled, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "private, max-age=300"
    key = personal.key_from_jwk(response.json())
    assert personal.decrypt(event["data"]["profile"]["personal"], key) == {
        "contact": {"name": created["contact"]["name"], "email": created["contact"]["email"]}}

    assert requests.get(url, headers=bearer("integrator"), timeout=10).status_code == 403
    assert requests.get(url, headers={"Authorization": f"Bearer {created['access_token']}"},
                        timeout=10).status_code == 403
    assert requests.get(url, timeout=10).status_code == 401
    assert requests.get(f"{members_api.url}/members/{uuid.uuid4()}/key", headers=entitled,
                        timeout=10).status_code == 404

    own = {"Authorization": f"Bearer {created['access_token']}"}
    assert requests.delete(f"{members_api.url}/members/{created['id']}", headers=own, timeout=10).status_code == 204
    gone = requests.get(url, headers=entitled, timeout=10)
    assert gone.status_code == 410 and gone.json()["error"]
    assert requests.get(url, headers=bearer("admin"), timeout=10).status_code == 410


def test_keys_over_rpc_for_services_refused_after_erasure(members_api, member_input, amqp_uri):
    from nameko.exceptions import RemoteError
    from nameko.standalone.rpc import ClusterRpcProxy

    created = requests.post(f"{members_api.url}/members", json=member_input(name=f"Firma {uuid.uuid4().hex[:8]}"),
                            timeout=10).json()
    with ClusterRpcProxy({"AMQP_URI": amqp_uri}, timeout=10) as cluster:
        jwk = cluster.members.member_key(created["id"])
        assert jwk["kid"] == created["id"] and len(personal.key_from_jwk(jwk)) == 32
        requests.delete(f"{members_api.url}/members/{created['id']}",
                        headers={"Authorization": f"Bearer {created['access_token']}"}, timeout=10)
        with pytest.raises(personal.KeyErased):
            cluster.members.member_key(created["id"])
        with pytest.raises(personal.KeyErased):
            cluster.members.member_key(str(uuid.uuid4()))
        # A batch's keys in one call: the erased and the unknown answered with None, the others with
        # their key.
        other = requests.post(f"{members_api.url}/members",
                              json=member_input(name=f"Firma {uuid.uuid4().hex[:8]}"), timeout=10).json()
        unknown = str(uuid.uuid4())
        keys = cluster.members.member_keys([other["id"], created["id"], unknown])
        assert keys[created["id"]] is None and keys[unknown] is None
        assert keys[other["id"]]["kid"] == other["id"] and len(personal.key_from_jwk(keys[other["id"]])) == 32
        assert keys[other["id"]] == cluster.members.member_key(other["id"])  # the same key either way
        with pytest.raises(RemoteError, match="ValueError"):
            cluster.members.member_keys([other["id"]] * (personal.KEYS_PER_CALL + 1))
        with pytest.raises(RemoteError, match="ValueError"):
            cluster.members.member_keys(other["id"])


def test_integrators_read_profiles_without_the_person_unless_entitled(members_api, member_input):
    created = requests.post(f"{members_api.url}/members", json=member_input(name=f"Firma {uuid.uuid4().hex[:8]}"),
                            timeout=10).json()
    url = f"{members_api.url}/members/{created['id']}"
    listing = f"{members_api.url}/members?q={created['name'].split()[1]}"
    plain = bearer("integrator")
    for response in (requests.get(url, headers=plain, timeout=10).json(),
                     requests.get(listing, headers=plain, timeout=10).json()["items"][0]):
        assert response["contact"] == {"name": None, "email": None, "language": "de"}
        assert response["name"] == created["name"]
    serial = requests.put(f"{members_api.url}/integrators/crm-profiles/grant", headers=bearer("admin"), timeout=10,
                          json={"events": ["#"], "personal": True}).json()["serial"]
    entitled = bearer("integrator", subject="crm-profiles", personal=True, grant=serial)
    assert requests.get(url, headers=entitled, timeout=10).json()["contact"] == created["contact"]
    assert requests.get(listing, headers=entitled, timeout=10).json()["items"][0]["contact"] == created["contact"]
    assert requests.get(url, headers=bearer("organizer", association="automotive-cluster"),
                        timeout=10).json()["contact"] == created["contact"]
