"""The members use cases and queries on SQLite and PostgreSQL (migrated by Alembic), with their
events going through the outbox to the real broker; where the database matters (search, paging)."""
import pytest

from members import queries, services
from verbund import outbox, personal
from verbund.auth import Principal

pytestmark = pytest.mark.integration

ADMIN = Principal("admin", "admin")


def test_register_writes_the_member_and_its_event(store, member_input, event_tap, register):
    tap = event_tap("member.*")
    profile = register(store, member_input())
    assert profile["version"] == 1 and profile["size"]["sme"] is True
    [event] = tap.wait("member.registered", subject=profile["id"])
    with store.unit_of_work() as uow:
        key = personal.key_from_jwk(queries.member_key(uow.session, ADMIN, profile["id"]))
    assert event["dataschema"] == "urn:verbund:schema:member.registered:v2"
    assert personal.member_profile(event, {profile["id"]: key}.get) == profile
    assert outbox.pending_count(store.engine) == 0


def test_search_filters_by_every_facet(store, member_input, register):
    supplier = register(store, member_input())
    it_house = register(store, member_input(
        name="Datenwerk Dresden GmbH", sector="it", associations=["it-cluster"],
        region={"state": "SN", "postcode": "01067", "city": "Dresden"}, size={"employees": 400},
        offers=[{"label": "Track-and-Trace-Software"}], needs=[], topics=["ai"]))

    def ids(**query):
        with store.unit_of_work() as uow:
            found = queries.search(uow.session, {"page": 1, "per_page": 50, **query})
        return [member["id"] for member in found["items"]]

    assert ids() == [supplier["id"], it_house["id"]]
    assert ids(sector="it") == [it_house["id"]]
    assert ids(state="BW") == [supplier["id"]]
    assert ids(postcode="01") == [it_house["id"]]
    assert ids(city="dresden") == [it_house["id"]]
    assert ids(association="automotive-cluster") == [supplier["id"]]
    assert ids(topic="Elektromobilität") == [supplier["id"]]  # a topic label finds the topic
    assert ids(needs="traceability-software") == [supplier["id"]]
    assert ids(offers="track and trace software") == [it_house["id"]]
    assert ids(competency="Etwas ganz Eigenes") == [supplier["id"]]  # free text, case-insensitive
    assert ids(sme=False) == [it_house["id"]]
    assert ids(q="datenwerk") == [it_house["id"]]
    assert ids(q="%") == []  # no wildcard injection
    with store.unit_of_work() as uow:
        page = queries.search(uow.session, {"page": 2, "per_page": 1})
    assert page["total"] == 2 and [m["id"] for m in page["items"]] == [it_house["id"]]


def test_profiles_after_pages_through_live_members_for_read_model_rebuilds(store, member_input, register):
    created = [register(store, member_input(name=f"Firma {i}", region={"state": "BE", "postcode": f"1011{i}",
                                                                       "city": "Berlin"})) for i in range(5)]
    with store.unit_of_work() as uow:
        services.erase(uow, ADMIN, created[0]["id"])
    seen, after = [], None
    while True:
        with store.unit_of_work() as uow:
            batch = queries.profiles_after(uow.session, after, 2)
        seen += [profile["id"] for profile in batch["profiles"]]
        after = batch["next"]
        if after is None:
            break
    assert sorted(seen) == sorted(member["id"] for member in created[1:])
