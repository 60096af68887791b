"""Who gets a sign-in link after an import: no one unless asked; with ``consented`` the imported
members whose row gave e-mail consent; with ``all`` every imported member (the organizer's choice).
A dry run invites no one, since it imports no one."""
from __future__ import annotations

import pytest

from members import services
from verbund.auth import Principal

ADMIN_PRINCIPAL = Principal("admin", "admin")


def rows() -> list[dict]:
    """Rows as the importer reads them from a file (columns by their names; German words in the cells)."""
    common = {"sector": "IT", "associations": "IT-Cluster", "state": "Sachsen", "postcode": "01067",
              "city": "Dresden", "employees": "12", "contact_name": "Eva Lang", "language": "Englisch"}
    return [{**common, "name": "Mit Einwilligung GmbH", "contact_email": "ja@mit.example", "email_consent": "ja"},
            {**common, "name": "Ohne Einwilligung GmbH", "contact_email": "nein@ohne.example", "email_consent": "nein"},
            {**common, "name": "Kaputt GmbH", "contact_email": "kein-mail"}]


@pytest.mark.parametrize("invite, expected", [("none", []), ("consented", ["ja@mit.example"]),
                                              ("all", ["ja@mit.example", "nein@ohne.example"])])
def test_who_is_invited_after_an_import(use_cases, invite, expected):
    with use_cases.unit_of_work() as uow:
        report = services.import_members(uow, ADMIN_PRINCIPAL, rows())
        invited = services.import_invitations(uow, report, invite)
    assert len(report["imported"]) == 2 and [e["row"] for e in report["errors"]] == [4]
    assert sorted(r["email"] for r in invited) == expected
    for recipient in invited:  # what issue_sign_in_link and the mail need, in the member's language
        assert recipient["language"] == "en" and recipient["contact_name"] == "Eva Lang"
        assert recipient["organisation"].endswith("GmbH") and recipient["member_id"]


def test_a_dry_run_invites_no_one(use_cases):
    with use_cases.unit_of_work() as uow:
        report = services.import_members(uow, ADMIN_PRINCIPAL, rows(), dry_run=True)
        assert services.import_invitations(uow, report, "all") == []


def test_an_invitation_is_a_single_use_sign_in_link(use_cases):
    with use_cases.unit_of_work() as uow:
        report = services.import_members(uow, ADMIN_PRINCIPAL, rows())
        [recipient] = services.import_invitations(uow, report, "consented")
    with use_cases.unit_of_work() as uow:
        link = services.issue_sign_in_link(uow, recipient)
    with use_cases.unit_of_work() as uow:
        token = services.exchange_sign_in_token(uow, link["token"])
    assert token["member_id"] == recipient["member_id"]
