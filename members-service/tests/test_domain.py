import pytest

from members import domain
from verbund.auth import Principal
from verbund.errors import Forbidden, Unprocessable


@pytest.mark.parametrize("employees, turnover, balance, category", [
    (9, None, None, "micro"),
    (9, 1_900_000, None, "micro"),
    (9, 3_000_000, None, "small"),          # too much turnover for micro
    (9, 3_000_000, 1_500_000, "micro"),     # ... but the balance sheet qualifies
    (49, 10_000_000, None, "small"),
    (50, None, None, "medium"),
    (249, 50_000_000, None, "medium"),
    (249, 60_000_000, 43_000_000, "medium"),
    (249, 60_000_000, 44_000_000, "large"),
    (250, 1_000_000, None, "large"),        # headcount alone makes it large
])
def test_eu_sme_definition(employees, turnover, balance, category):
    assert domain.size_category(employees, turnover, balance) == category
    assert domain.size_profile(employees, turnover, balance)["sme"] is (category != "large")


@pytest.mark.parametrize("a, b", [
    ("Müller Logistik GmbH", "müller logistik"),
    ("Müller Logistik GmbH & Co. KG", "MUELLER-Logistik"),
    ("IT-Haus Nord AG", "IT Haus Nord"),
    ("Verein Digitale Region e.V.", "Verein digitale Region"),
])
def test_the_same_organisation_has_the_same_key(a, b):
    assert domain.organisation_key(a, "70173") == domain.organisation_key(b, "70173")


def test_different_organisations_or_places_have_different_keys():
    assert domain.organisation_key("Müller Logistik", "70173") != domain.organisation_key("Müller Logistik", "80331")
    assert domain.organisation_key("Müller Logistik", "70173") != domain.organisation_key("Meier Logistik", "70173")


def test_competencies_link_to_the_vocabulary_and_drop_duplicates():
    terms = {"zellfertigung": "battery-cell-manufacturing"}
    resolved = domain.resolve_competencies(
        [{"label": "Zellfertigung"}, {"term": "battery-cell-manufacturing"}, {"label": "Eigenes", "description": "x"}],
        lambda text: terms.get(text.lower()), lambda term: "Battery cell manufacturing")
    assert resolved == [
        {"term": "battery-cell-manufacturing", "label": "Zellfertigung", "description": None},
        {"term": None, "label": "Eigenes", "description": "x"},
    ]


def test_merge_patch_merges_objects_and_replaces_lists():
    current = {"region": {"state": "BW", "postcode": "70173", "city": "Stuttgart"}, "topics": ["ai"]}
    patched = domain.merge_patch(current, {"region": {"city": "Esslingen"}, "topics": ["hydrogen"]})
    assert patched == {"region": {"state": "BW", "postcode": "70173", "city": "Esslingen"}, "topics": ["hydrogen"]}
    assert current["region"]["city"] == "Stuttgart"  # the input is left alone


def test_changed_fields_names_what_changed():
    before = {"name": "A", "topics": ["ai"], "region": {"city": "X"}}
    assert domain.changed_fields(before, {**before, "topics": ["ai", "hydrogen"]}) == ["topics"]
    assert domain.changed_fields(before, dict(before)) == []


def test_who_may_do_what():
    admin = Principal("a", "admin")
    own = Principal("m", "member", member_id="m1")
    other = Principal("o", "member", member_id="m2")
    organizer = Principal("org", "organizer", association="it-cluster")
    integrator = Principal("i", "integrator")
    assert domain.can_read(own, "m1") and not domain.can_read(other, "m1")
    assert domain.can_read(integrator, "m1") and domain.can_read(organizer, "m1")
    assert domain.can_change(own, "m1", []) and not domain.can_change(other, "m1", ["it-cluster"])
    assert domain.can_change(organizer, "m1", ["it-cluster"]) and not domain.can_change(organizer, "m1", [])
    assert not domain.can_change(integrator, "m1", ["it-cluster"])
    assert domain.can_delete(admin, "m1") and domain.can_delete(own, "m1")
    assert not domain.can_delete(organizer, "m1")


def test_the_authorization_checks_refuse_with_a_403():
    own, other = Principal("m", "member", member_id="m1"), Principal("o", "member", member_id="m2")
    domain.authorize_read(own, "m1")
    domain.authorize_change(own, "m1", [])
    domain.authorize_erase(own, "m1")
    domain.authorize_key(None)  # a service over the internal RPC
    domain.authorize_key(Principal("crm", "integrator", events=("member.*",), personal=True, grant=1),
                         {"events": ["member.*"], "personal": True, "serial": 1})
    for check in (lambda: domain.authorize_read(other, "m1"), lambda: domain.authorize_change(other, "m1", []),
                  lambda: domain.authorize_erase(Principal("o", "organizer", association="it-cluster"), "m1"),
                  lambda: domain.authorize_key(own), lambda: domain.authorize_key(Principal("crm", "integrator"))):
        with pytest.raises(Forbidden):
            check()


def test_read_only_fields_may_be_sent_back_unchanged_only():
    before = {"id": "m1", "version": 3, "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-02T00:00:00Z",
              "name": "A"}
    domain.check_read_only(before, {**before, "name": "B"})
    with pytest.raises(Unprocessable) as refused:
        domain.check_read_only(before, {"version": 4})
    assert refused.value.details["fields"] == {"version": ["read-only"]}
    assert domain.without_read_only(before) == {"name": "A"}


def test_integrators_see_the_contact_person_only_when_entitled():
    profile = {"name": "A", "contact": {"name": "Jana", "email": "j@a.example", "language": "en"}}
    hidden = domain.visible(Principal("crm", "integrator"), profile)
    assert hidden["contact"] == {"name": None, "email": None, "language": "en"} and hidden["name"] == "A"
    assert domain.visible(Principal("crm", "integrator", personal=True, grant=1), profile,
                          {"events": ["#"], "personal": True, "serial": 1}) == profile
    # A personal claim without a grant claim (a token issued before grants) is the default: no person.
    assert domain.visible(Principal("crm", "integrator", personal=True), profile) == hidden
    assert domain.visible(Principal("o", "organizer", association="it-cluster"), profile) == profile
