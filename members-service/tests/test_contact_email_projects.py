"""The contact e-mail (one organisation per address, a change waits for confirmation) and the teams of
formed partner projects, as use cases: a migrated SQLite file, events to a recording publisher, time
from a fixed clock."""
import uuid

import pytest
from sqlalchemy import select, update

from members import queries, services
from members.domain import SignInPolicy
from members.models import Member
from members.schemas import MemberSchema
from verbund import envelope
from verbund.auth import Principal
from verbund.errors import BadRequest, Conflict, Forbidden, TooManyRequests

ADMIN = Principal("admin", "admin")
POLICY = SignInPolicy()


def member(member_id):
    return Principal(f"member:{member_id}", "member", member_id=member_id)


@pytest.fixture
def firm(use_cases, register, member_input):
    return register(use_cases, member_input(name="Alpha Zulieferer GmbH",
                                            contact={"name": "Ada Alpha", "email": "ada@alpha.example"}))


def change(store, member_id, patch, principal=None):
    mails = []
    with store.unit_of_work() as uow:
        profile = services.update(uow, principal or member(member_id), member_id, patch, mails=mails, policy=POLICY)
    return profile, mails


def confirm(store, token):
    with store.unit_of_work() as uow:
        return services.confirm_email(uow, token)


def updated_events(store):
    return store.relay.publisher.of_type("member.updated")


# --- one organisation per contact e-mail ------------------------------------------------------------

def test_a_second_organisation_with_the_same_contact_e_mail_is_a_conflict_at_that_field(use_cases, register,
                                                                                        member_input, firm):
    with pytest.raises(Conflict) as refused:
        register(use_cases, member_input(name="Beta GmbH", contact={"name": "B", "email": " ADA@Alpha.Example "}))
    assert refused.value.details["fields"] == {"contact": {"email": [refused.value.message]}}
    with use_cases.unit_of_work() as uow:
        assert uow.session.execute(select(Member.id)).scalars().all() == [firm["id"]]


def test_an_erased_organisations_address_is_free_again(use_cases, register, member_input, firm):
    with use_cases.unit_of_work() as uow:
        services.erase(uow, member(firm["id"]), firm["id"])
    again = register(use_cases, member_input(name="Alpha Neu GmbH",
                                             contact={"name": "A", "email": "ada@alpha.example"}))
    assert again["contact"]["email"] == "ada@alpha.example"


def test_a_self_registration_counts_against_the_addresss_limit_not_the_clients(use_cases, member_input):
    for n in range(POLICY.per_client):  # the portal's network has used up its links: no matter
        with use_cases.unit_of_work() as uow:
            services.request_sign_in(uow, f"someone-{n}@example.org", "203.0.113.5", SignInPolicy(per_address=100))
    for _ in range(POLICY.per_address):
        with use_cases.unit_of_work() as uow:
            services.request_sign_in(uow, "new@gamma.example", "198.51.100.7", SignInPolicy(per_client=100))
    body = MemberSchema().load(member_input(name="Gamma GmbH", contact={"name": "G", "email": "new@gamma.example"}))
    with pytest.raises(TooManyRequests), use_cases.unit_of_work() as uow:
        services.register(uow, body, mail_link=True, policy=POLICY)
    with use_cases.unit_of_work() as uow:
        assert uow.session.execute(select(Member.id)).scalars().all() == []  # nothing half-made
    use_cases.clock.advance(hours=1, seconds=1)
    with use_cases.unit_of_work() as uow:
        profile = services.register(uow, body, mail_link=True, policy=POLICY)
    assert services.registration_mail(profile) == {
        "member_id": profile["id"], "email": "new@gamma.example", "contact_name": "G", "organisation": "Gamma GmbH",
        "language": "de", "purpose": "welcome"}


def test_organisations_that_shared_an_address_before_keep_signing_in_one_link_each(use_cases, register, member_input,
                                                                                   firm):
    other = register(use_cases, member_input(name="Alpha Service GmbH", contact={"name": "A", "email": "a@x.example"}))
    with use_cases.unit_of_work() as uow:  # as rows from before the rule (the demo of an older version, imports)
        uow.session.execute(update(Member).where(Member.id == other["id"]).values(contact_email="Ada@alpha.example"))
    with use_cases.unit_of_work() as uow:
        recipients = services.request_sign_in(uow, "ada@alpha.example", "203.0.113.5", POLICY)
    assert sorted(r["member_id"] for r in recipients) == sorted([firm["id"], other["id"]])


def test_an_import_reports_an_address_in_use_or_twice_in_the_file_at_the_rows_e_mail(use_cases, firm):
    row = {"name": "Logistik Ost GmbH", "sector": "logistics", "state": "SN", "postcode": "04109", "city": "Leipzig",
           "employees": "60", "contact_name": "A", "contact_email": "a@ost.example"}
    rows = [row, {**row, "name": "Logistik West GmbH", "contact_email": "A@OST.example"},
            {**row, "name": "Logistik Süd GmbH", "contact_email": "ada@alpha.example"}]
    with use_cases.unit_of_work() as uow:
        report = services.import_members(uow, ADMIN, rows)
    assert [item["row"] for item in report["imported"]] == [2]
    assert report["errors"] == [
        {"row": 3, "errors": {"contact_email": ["dieselbe E-Mail-Adresse wie Zeile 2; jede Organisation braucht "
                                                "ihre eigene"]}},
        {"row": 4, "errors": {"contact_email": ["diese E-Mail-Adresse ist bereits die Adresse einer anderen "
                                                "Organisation"]}}]


# --- a changed contact e-mail waits for confirmation ----------------------------------------------------

def test_a_new_address_waits_until_the_link_mailed_to_it_is_used(use_cases, firm):
    profile, mails = change(use_cases, firm["id"], {"contact": {"email": "ada.neu@alpha.example"}, "topics": ["ai"]})
    assert profile["contact"]["email"] == "ada@alpha.example"
    assert profile["contact"]["pending_email"] == "ada.neu@alpha.example" and profile["topics"] == ["ai"]
    [event] = updated_events(use_cases)  # the topics; the new address is in no event while unconfirmed
    assert event["data"]["changed"] == ["topics"] and "pending_email" not in str(event["data"])
    [link, notice] = mails
    assert link["purpose"] == "confirm_email" and link["email"] == "ada.neu@alpha.example" and len(link["token"]) == 43
    assert notice == {**link, "purpose": "email_change_notice", "email": "ada@alpha.example", "token": None}
    with use_cases.unit_of_work() as uow:  # sign-in still goes to the confirmed address only
        assert services.request_sign_in(uow, "ada.neu@alpha.example", "203.0.113.5", POLICY) == []

    confirmed = confirm(use_cases, link["token"])
    assert confirmed["contact"] == {"name": "Ada Alpha", "email": "ada.neu@alpha.example", "language": "de"}
    assert confirmed["version"] == profile["version"] + 1
    event = updated_events(use_cases)[-1]
    assert event["data"]["changed"] == ["contact"] and event["data"]["profile"]["version"] == confirmed["version"]
    with pytest.raises(BadRequest):  # once only
        confirm(use_cases, link["token"])


def test_a_confirmation_link_lasts_24_hours_and_only_the_newest_works(use_cases, firm):
    _, [first, _] = change(use_cases, firm["id"], {"contact": {"email": "one@alpha.example"}})
    _, [second, _] = change(use_cases, firm["id"], {"contact": {"email": "two@alpha.example"}})
    with pytest.raises(BadRequest):
        confirm(use_cases, first["token"])
    use_cases.clock.advance(hours=24, seconds=1)
    with pytest.raises(BadRequest):
        confirm(use_cases, second["token"])
    with pytest.raises(BadRequest):
        confirm(use_cases, "not-a-token")
    assert get_profile(use_cases, firm["id"])["contact"]["email"] == "ada@alpha.example"


def get_profile(store, member_id):
    with store.unit_of_work() as uow:
        return queries.get(uow.session, ADMIN, member_id)


def test_a_pending_change_is_withdrawn_by_removing_the_pending_address(use_cases, firm):
    _, [link, _] = change(use_cases, firm["id"], {"contact": {"email": "other@alpha.example"}})
    profile, mails = change(use_cases, firm["id"], {"contact": {"email": "ada@alpha.example", "pending_email": None}})
    assert profile["contact"] == {"name": "Ada Alpha", "email": "ada@alpha.example", "language": "de"} and mails == []
    with pytest.raises(BadRequest):
        confirm(use_cases, link["token"])


def test_a_profile_sent_back_as_read_with_its_pending_address_changes_nothing(use_cases, firm):
    pending, _ = change(use_cases, firm["id"], {"contact": {"email": "other@alpha.example"}})
    events = len(use_cases.relay.publisher.published)
    again, mails = change(use_cases, firm["id"], {**pending, "contact": {**pending["contact"]}})
    assert again == pending and mails == [] and len(use_cases.relay.publisher.published) == events
    # A form that shows the confirmed address and sends it back (without pending_email) keeps the change too.
    again, mails = change(use_cases, firm["id"], {"contact": {"name": "Ada Alpha", "email": "ada@alpha.example"}})
    assert again == pending and mails == []


def test_another_organisations_address_is_refused_at_once_and_at_confirmation(use_cases, register, member_input, firm):
    other = register(use_cases, member_input(name="Beta GmbH", contact={"name": "B", "email": "b@beta.example"}))
    with pytest.raises(Conflict) as refused:
        change(use_cases, firm["id"], {"contact": {"email": "B@beta.example"}})
    assert list(refused.value.details["fields"]) == ["contact"]
    _, [link, _] = change(use_cases, firm["id"], {"contact": {"email": "shared@example.org"}})
    change(use_cases, other["id"], {"contact": {"email": "shared@example.org"}})
    # Beta confirms first; Alpha's link then finds the address taken.
    with use_cases.unit_of_work() as uow:
        from members.models import EmailConfirmation
        rows = uow.session.execute(select(EmailConfirmation).where(EmailConfirmation.member_id == other["id"],
                                                                   EmailConfirmation.used_at.is_(None))).scalars()
        assert len(list(rows)) == 1
    with use_cases.unit_of_work() as uow:  # Beta's link made to use here without its secret: set the row
        uow.session.execute(update(Member).where(Member.id == other["id"]).values(contact_email="shared@example.org"))
    with pytest.raises(Conflict):
        confirm(use_cases, link["token"])


def test_too_many_links_for_one_new_address_are_refused(use_cases, firm):
    for n in range(POLICY.per_address):
        address = "target@victim.example" if n % 2 == 0 else f"x{n}@a.example"
        change(use_cases, firm["id"], {"contact": {"email": address}})
    with pytest.raises(TooManyRequests):
        for _ in range(POLICY.per_address):
            change(use_cases, firm["id"], {"contact": {"email": "target@victim.example"}})


def test_a_sign_in_confirms_the_address_without_a_new_version(use_cases, firm):
    with use_cases.unit_of_work() as uow:
        [recipient] = services.request_sign_in(uow, "ada@alpha.example", "203.0.113.5", POLICY)
    with use_cases.unit_of_work() as uow:
        link = services.issue_sign_in_link(uow, recipient, POLICY)
    with use_cases.unit_of_work() as uow:
        services.exchange_sign_in_token(uow, link["token"], POLICY)
    with use_cases.unit_of_work() as uow:
        held = uow.session.get(Member, firm["id"])
        assert held.contact_confirmed_at is not None and held.version == firm["version"]


# --- formed partner projects -------------------------------------------------------------------------

def project_event(status, member_ids, title="Rückverfolgbarkeit für Batterietransporte", project_id=None):
    project = {"id": project_id or str(uuid.uuid4()), "version": 2, "title": title, "topic": None, "status": status,
               "members": [{"member_id": m, "sector": "it", "response": "accepted"} for m in member_ids],
               "score": 0.8, "explanation": []}
    return envelope.new_event(f"project.{status}", "/verbund/matching", project["id"], {"project": project})


@pytest.fixture
def team(use_cases, register, member_input):
    return [register(use_cases, member_input(name=f"Team {n} GmbH"))["id"] for n in range(3)]


def contact(store, principal, member_id):
    with store.unit_of_work() as uow:
        return queries.contact_details(uow.session, principal, member_id)


def test_members_of_a_formed_project_see_each_others_contact_person(use_cases, team):
    a, b, c = team
    use_cases.handle(project_event("proposed", [a, b]), services.on_project_formed)
    with pytest.raises(Forbidden):  # proposed is not formed
        contact(use_cases, member(a), b)
    event = project_event("formed", [a, b])
    assert use_cases.handle(event, services.on_project_formed)
    assert not use_cases.handle(event, services.on_project_formed)  # a redelivery adds nothing
    assert contact(use_cases, member(a), b)["contact_email"] == get_profile(use_cases, b)["contact"]["email"]
    assert contact(use_cases, member(b), a)["contact_name"] == "Jana Keller"
    with pytest.raises(Forbidden):  # not in the project
        contact(use_cases, member(c), a)
    with use_cases.unit_of_work() as uow:
        listed = queries.contacts(uow.session, member(a), a)
    [item] = listed["items"]
    assert item["member_id"] == b and item["name"] == "Team 1 GmbH"
    assert item["via"] == [{"kind": "project", "project_id": event["subject"],
                            "title": "Rückverfolgbarkeit für Batterietransporte", "since": "2026-06-01T08:00:00Z"}]
    with pytest.raises(Forbidden), use_cases.unit_of_work() as uow:
        queries.contacts(uow.session, member(c), a)


def test_an_erased_member_leaves_its_project_teams(use_cases, team):
    a, b, _ = team
    use_cases.handle(project_event("formed", [a, b]), services.on_project_formed)
    with use_cases.unit_of_work() as uow:
        services.erase(uow, member(b), b)
    with use_cases.unit_of_work() as uow:
        assert queries.contacts(uow.session, member(a), a) == {"items": []}
        from members.models import ProjectContact
        assert uow.session.execute(select(ProjectContact.member_id)).scalars().all() == [a]
