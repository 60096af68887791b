"""Dashboard figures on a known seeded data set: exact numbers, per association and for the
cooperation, and who may see which (use cases on SQLite with a fixed clock; the HTTP test in
test_staff_api.py runs them on PostgreSQL too)."""
from datetime import UTC, datetime

import pytest

from members import queries, services
from members.schemas import MemberSchema
from verbund import stats
from verbund.auth import Principal
from verbund.errors import Forbidden

# (name, sector, associations, state, employees, registered on)
SEED = [
    ("Alpha Guss GmbH", "automotive", ["automotive-cluster"], "BW", 8, datetime(2026, 1, 10, 9, tzinfo=UTC)),
    ("Beta Antriebe AG", "automotive", ["automotive-cluster", "it-cluster"], "BY", 300, datetime(2026, 1, 31, 23, 30,
                                                                                               tzinfo=UTC)),
    ("Gamma Software GmbH", "it", ["it-cluster"], "BW", 45, datetime(2026, 3, 2, 9, tzinfo=UTC)),
    ("Delta Logistik GmbH", "logistics", ["logistics-network"], "HH", 120, datetime(2026, 3, 15, 9, tzinfo=UTC)),
    ("Epsilon Spedition KG", "logistics", ["logistics-network", "automotive-cluster"], "NI", 20,
     datetime(2026, 4, 1, 9, tzinfo=UTC)),
    ("Zeta Forschung e.V.", "research", [], "SN", 60, datetime(2026, 4, 20, 9, tzinfo=UTC)),
]
NOW = datetime(2026, 5, 10, 12, tzinfo=UTC)


def body(name, sector, associations, state, employees, index):
    return MemberSchema().load({
        "name": name, "sector": sector, "associations": associations,
        "region": {"state": state, "postcode": f"{10000 + index:05d}", "city": "Stadt"},
        "size": {"employees": employees}, "contact": {"name": "K", "email": f"k{index}@seed.example"},
        "consent": {"suggest_as_partner": True, "email": True}})


@pytest.fixture
def seeded(use_cases):
    ids = []
    for index, (name, sector, associations, state, employees, moment) in enumerate(SEED):
        use_cases.clock.moment = moment
        with use_cases.unit_of_work() as uow:
            ids.append(services.register(uow, body(name, sector, associations, state, employees, index))["id"])
    use_cases.clock.moment = datetime(2026, 4, 25, 9, tzinfo=UTC)
    with use_cases.unit_of_work() as uow:  # one more, erased again: not counted
        gone = services.register(uow, body("Eta Weg GmbH", "it", ["it-cluster"], "BE", 5, 99))["id"]
    with use_cases.unit_of_work() as uow:
        services.erase(uow, Principal("cli", "admin"), gone)
    # Contact requests: alpha->gamma accepted, alpha->delta declined, epsilon->zeta pending but expired
    # by NOW (made 2026-04-25, 14 days), beta->delta pending (made 2026-05-01).
    a, b, g, d, e, z = ids

    def ask(requester, recipient):
        with use_cases.unit_of_work() as uow:
            asker = Principal("m", "member", member_id=requester)
            return services.request_contact(uow, asker, recipient, "Hallo")["id"]

    def answer(recipient, request_id, accept):
        with use_cases.unit_of_work() as uow:
            services.answer_contact(uow, Principal("m", "member", member_id=recipient), request_id, accept)

    answer(g, ask(a, g), True)
    answer(d, ask(a, d), False)
    ask(e, z)
    use_cases.clock.moment = datetime(2026, 5, 1, 9, tzinfo=UTC)
    ask(b, d)
    use_cases.clock.moment = NOW
    return use_cases


def figures(store, query, association=None):
    with store.unit_of_work() as uow:
        return query(uow.session, association, uow.now())


def test_members_of_the_cooperation_by_sector_region_size_and_month(seeded):
    assert figures(seeded, queries.member_stats) == {
        "scope": "cooperation", "total": 6,
        "by_sector": {"automotive": 2, "it": 1, "logistics": 2, "research": 1},
        "by_state": {"BW": 2, "BY": 1, "HH": 1, "NI": 1, "SN": 1},
        "by_size": {"micro": 1, "small": 2, "medium": 2, "large": 1}, "sme": 5,
        # Beta registered 2026-01-31 23:30 UTC, which is February in Berlin.
        "growth": [{"month": "2026-01", "joined": 1, "total": 1}, {"month": "2026-02", "joined": 1, "total": 2},
                   {"month": "2026-03", "joined": 2, "total": 4}, {"month": "2026-04", "joined": 2, "total": 6},
                   {"month": "2026-05", "joined": 0, "total": 6}]}


def test_members_of_one_association(seeded):
    automotive = figures(seeded, queries.member_stats, "automotive-cluster")
    assert (automotive["scope"], automotive["total"], automotive["by_sector"]) == (
        "automotive-cluster", 3, {"automotive": 2, "logistics": 1})
    assert automotive["by_size"] == {"micro": 1, "small": 1, "large": 1} and automotive["sme"] == 2
    assert [row["total"] for row in automotive["growth"]] == [1, 2, 2, 3, 3]


def test_contact_requests_sent_and_what_became_of_them(seeded):
    assert figures(seeded, queries.contact_stats) == {
        "scope": "cooperation", "sent": 4, "accepted": 1, "declined": 1, "pending": 1, "expired": 1}
    assert figures(seeded, queries.contact_stats, "automotive-cluster") == {
        "scope": "automotive-cluster", "sent": 4, "accepted": 1, "declined": 1, "pending": 1, "expired": 1}
    assert figures(seeded, queries.contact_stats, "it-cluster") == {
        "scope": "it-cluster", "sent": 1, "accepted": 0, "declined": 0, "pending": 1, "expired": 0}


def test_organizers_see_their_association_and_the_totals_admins_all():
    organizer = Principal("o", "organizer", association="it-cluster")
    assert stats.scope(organizer, None) is None and stats.scope(organizer, "it-cluster") == "it-cluster"
    with pytest.raises(Forbidden):
        stats.scope(organizer, "logistics-network")
    assert stats.scope(Principal("a", "admin"), "logistics-network") == "logistics-network"


def test_growth_is_empty_without_members_and_runs_to_this_month():
    assert stats.growth([], NOW) == []
    assert stats.growth([datetime(2025, 11, 30, tzinfo=UTC)], datetime(2026, 1, 2, tzinfo=UTC)) == [
        {"month": "2025-11", "joined": 1, "total": 1}, {"month": "2025-12", "joined": 0, "total": 1},
        {"month": "2026-01", "joined": 0, "total": 1}]
