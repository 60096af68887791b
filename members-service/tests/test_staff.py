"""Staff accounts as use cases: invitation, sign-in by e-mail link (also for an address that is a
member's contact too), revocation (SQLite file, fixed clock, no broker)."""
import uuid

import pytest

from members import queries, services
from members.schemas import StaffSchema
from verbund import auth
from verbund.auth import Principal
from verbund.errors import BadRequest, Conflict, Unauthorized

ADMIN_CLI = Principal("cli", "admin")


def add(store, **body):
    data = StaffSchema().load({"email": f"s-{uuid.uuid4().hex[:6]}@cluster.example", "name": "Olga Organa",
                               "role": "organizer", "association": "it-cluster", **body})
    with store.unit_of_work() as uow:
        account = services.add_staff(uow, data, "cli")
        link = services.invite_link(uow, account["id"])
    return account, link


def exchange(store, secret):
    with store.unit_of_work() as uow:
        return services.exchange_sign_in_token(uow, secret)


def test_an_invited_organizer_signs_in_with_the_invitation_link_once(use_cases):
    account, link = add(use_cases, email="Olga@IT-Cluster.example", language="en")
    assert account["email"] == "olga@it-cluster.example" and account["status"] == "active"
    assert (account["role"], account["association"], account["invited_by"]) == ("organizer", "it-cluster", "cli")
    assert link["expires_hours"] == 72 and link["organisation"] == "the organizer account of the IT cluster"
    answer = exchange(use_cases, link["token"])
    assert {key: answer[key] for key in ("role", "association", "staff_id", "language")} == {
        "role": "organizer", "association": "it-cluster", "staff_id": account["id"], "language": "en"}
    principal = auth.verify(answer["token"])
    assert (principal.role, principal.association, principal.staff_id) == ("organizer", "it-cluster", account["id"])
    with pytest.raises(BadRequest):
        exchange(use_cases, link["token"])


def test_an_admin_has_no_association_and_the_same_address_is_one_active_account(use_cases):
    account, _ = add(use_cases, email="root@verbund.example", role="admin", association="it-cluster")
    assert account["association"] is None and account["language"] == "de"
    with pytest.raises(Conflict):
        add(use_cases, email="ROOT@verbund.example", role="admin")
    with pytest.raises(Exception) as error:
        StaffSchema().load({"email": "x@y.example", "name": "X", "role": "organizer"})
    assert "association" in error.value.messages


def test_a_sign_in_request_sends_one_link_per_account_and_each_opens_its_own(use_cases, register, member_input):
    member = register(use_cases, member_input(contact={"name": "Jana Keller", "email": "jana@both.example",
                                                       "language": "de"}))
    account, _ = add(use_cases, email="jana@both.example", language="de", association="automotive-cluster")
    with use_cases.unit_of_work() as uow:
        recipients = services.request_sign_in(uow, "Jana@Both.example", "203.0.113.9")
    assert [("member_id" in r, r["organisation"]) for r in recipients] == [
        (True, member["name"]), (False, "den Organisator-Zugang im Automobilcluster")]
    with use_cases.unit_of_work() as uow:
        links = [services.issue_sign_in_link(uow, recipient) for recipient in recipients]
    assert exchange(use_cases, links[0]["token"])["role"] == "member"
    assert exchange(use_cases, links[1]["token"])["staff_id"] == account["id"]


def test_revocation_voids_links_and_me_and_is_not_for_oneself(use_cases):
    account, link = add(use_cases)
    admin, _ = add(use_cases, role="admin")
    me = Principal(f"staff:{admin['id']}", "admin", staff_id=admin["id"])
    with use_cases.unit_of_work() as uow:
        with pytest.raises(Conflict):
            services.revoke_staff(uow, me, admin["id"])
    with use_cases.unit_of_work() as uow:
        assert queries.me(uow.session, Principal("x", "organizer", association="it-cluster",
                                                 staff_id=account["id"]))["name"] == "Olga Organa"
        revoked = services.revoke_staff(uow, me, account["id"])
    assert revoked["status"] == "revoked" and revoked["revoked_at"]
    with pytest.raises(BadRequest):
        exchange(use_cases, link["token"])
    with use_cases.unit_of_work() as uow:
        assert not queries.staff_active(uow.session, account["id"])
        with pytest.raises(Unauthorized):
            queries.me(uow.session, Principal("x", "organizer", association="it-cluster", staff_id=account["id"]))
        assert services.request_sign_in(uow, account["email"], "203.0.113.10") == []  # no link for it
    # Invited again: a new account, so the revoked one's tokens (naming its id) stay void.
    again, _ = add(use_cases, email=account["email"], role="admin")
    assert (again["status"], again["role"]) == ("active", "admin") and again["id"] != account["id"]
    with use_cases.unit_of_work() as uow:
        assert not queries.staff_active(uow.session, account["id"]) and queries.staff_active(uow.session, again["id"])
