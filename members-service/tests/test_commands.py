"""The members use cases on SQLite and PostgreSQL (migrated by Alembic), with
their events going through the outbox to the real broker."""
import json

import pytest
from marshmallow import ValidationError
from sqlalchemy import func, select

from members import commands
from members.models import Competency, Member, Tag
from verbund import outbox, personal
from verbund.auth import Principal
from verbund.errors import Conflict, Forbidden, Gone, NotFound, PreconditionFailed, Unprocessable

pytestmark = pytest.mark.integration

ADMIN = Principal("admin", "admin")


def outbox_events(store):
    with store.engine.connect() as conn:
        rows = conn.execute(select(outbox.outbox_table.c.body).order_by(outbox.outbox_table.c.seq)).scalars()
        return [json.loads(row) for row in rows]


def count(store, model):
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(model)).scalar()


def register(store, data):
    with store.transaction() as session:
        return commands.register(session, data)


def test_register_writes_the_member_and_its_event(store, member_input, event_tap):
    tap = event_tap("member.*")
    profile = register(store, member_input())
    assert profile["version"] == 1 and profile["size"]["sme"] is True
    [event] = tap.wait("member.registered", subject=profile["id"])
    with store.transaction() as session:
        key = personal.key_from_jwk(commands.member_key(session, ADMIN, profile["id"]))
    assert event["dataschema"] == "urn:verbund:schema:member.registered:v2"
    assert personal.member_profile(event, {profile["id"]: key}.get) == profile
    assert outbox.pending_count(store.engine) == 0


def test_a_duplicate_registration_changes_nothing(store, member_input):
    register(store, member_input())
    with pytest.raises(Conflict):
        register(store, member_input(name="Schwäbische Präzisionsteile", sector="it"))
    assert count(store, Member) == 1
    assert [event["type"] for event in outbox_events(store)] == ["member.registered"]


def test_an_update_bumps_the_version_and_says_what_changed(store, member_input):
    member = register(store, member_input())
    with store.transaction() as session:
        updated = commands.update(session, ADMIN, member["id"], {"topics": ["hydrogen"],
                                                                  "region": {"city": "Geislingen"}})
    assert updated["version"] == 2
    assert updated["region"] == {"state": "BW", "postcode": "73033", "city": "Geislingen"}
    event = outbox_events(store)[-1]
    assert event["type"] == "member.updated"
    assert sorted(event["data"]["changed"]) == ["region", "topics"]
    assert event["data"]["profile"]["version"] == 2


def test_an_update_that_changes_nothing_makes_no_version_and_no_event(store, member_input):
    member = register(store, member_input())
    with store.transaction() as session:
        same = commands.update(session, ADMIN, member["id"], {"name": member["name"]})
    assert same["version"] == 1
    assert len(outbox_events(store)) == 1


def test_an_update_with_a_stale_version_or_bad_data_changes_nothing(store, member_input):
    member = register(store, member_input())
    with pytest.raises(PreconditionFailed):
        with store.transaction() as session:
            commands.update(session, ADMIN, member["id"], {"topics": ["ai"]}, expected_version=7)
    with pytest.raises(ValidationError):
        with store.transaction() as session:
            commands.update(session, ADMIN, member["id"], {"sector": "aerospace"})
    with pytest.raises(Unprocessable):
        with store.transaction() as session:
            commands.update(session, ADMIN, member["id"], {"version": 99})
    with store.transaction() as session:
        assert commands.get(session, ADMIN, member["id"]) == member
    assert len(outbox_events(store)) == 1


def test_erasure_keeps_only_a_tombstone_and_announces_it(store, member_input):
    member = register(store, member_input())
    outbox.Relay(store.engine, store.relay.publisher).relay()
    with store.transaction() as session:
        commands.erase(session, Principal("m", "member", member_id=member["id"]), member["id"])
    with store.engine.connect() as conn:
        row = conn.execute(select(Member).where(Member.id == member["id"])).one()
    assert row.name is None and row.contact_email is None and row.organisation_key is None
    assert count(store, Competency) == 0 and count(store, Tag) == 0
    events = outbox_events(store)
    # The published registration carried personal data; it left the replayable history.
    assert [event["type"] for event in events] == ["member.deleted"]
    assert events[0]["data"]["version"] == 2
    with pytest.raises(Gone):
        with store.transaction() as session:
            commands.update(session, ADMIN, member["id"], {"name": "Zombie GmbH"})
    register(store, member_input())  # the organisation may come back as a new member


def test_unknown_members_and_strangers_are_refused(store, member_input):
    member = register(store, member_input())
    with pytest.raises(NotFound):
        with store.transaction() as session:
            commands.get(session, ADMIN, "00000000-0000-0000-0000-000000000000")
    with pytest.raises(Forbidden):
        with store.transaction() as session:
            commands.update(session, Principal("x", "member", member_id="other"), member["id"], {"topics": []})
    with pytest.raises(Forbidden):
        with store.transaction() as session:
            commands.erase(session, Principal("o", "organizer", association="automotive-cluster"), member["id"])


def test_search_filters_by_every_facet(store, member_input):
    supplier = register(store, member_input())
    it_house = register(store, member_input(
        name="Datenwerk Dresden GmbH", sector="it", associations=["it-cluster"],
        region={"state": "SN", "postcode": "01067", "city": "Dresden"}, size={"employees": 400},
        offers=[{"label": "Track-and-Trace-Software"}], needs=[], topics=["ai"]))

    def ids(**query):
        with store.transaction() as session:
            found = commands.search(session, {"page": 1, "per_page": 50, **query})
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
    with store.transaction() as session:
        page = commands.search(session, {"page": 2, "per_page": 1})
    assert page["total"] == 2 and [m["id"] for m in page["items"]] == [it_house["id"]]


def test_an_import_registers_valid_rows_and_reports_the_others(store, member_input):
    register(store, member_input())
    rows = [
        {"name": "Logistik Ost GmbH", "sector": "logistics", "state": "SN", "postcode": "04109", "city": "Leipzig",
         "employees": "60", "contact_name": "A", "contact_email": "a@ost.example", "topics": "Elektromobilität"},
        {"name": "Kaputt AG", "sector": "aerospace", "state": "BY", "postcode": "80331", "city": "München",
         "employees": "10", "contact_name": "B", "contact_email": "b@kaputt.example"},
        {"name": "Logistik Ost", "sector": "logistics", "state": "SN", "postcode": "04109", "city": "Leipzig",
         "employees": "60", "contact_name": "A", "contact_email": "a@ost.example"},
        {"name": "Schwäbische Präzisionsteile GmbH", "sector": "automotive", "state": "BW", "postcode": "73033",
         "city": "Göppingen", "employees": "85", "contact_name": "J", "contact_email": "j@p.example"},
        {"name": "Zahlenlos GmbH", "sector": "it", "state": "BE", "postcode": "10115", "city": "Berlin",
         "employees": "viele", "contact_name": "C", "contact_email": "c@z.example"},
    ]
    with store.transaction() as session:
        report = commands.import_members(session, rows)
    assert [item["row"] for item in report["imported"]] == [2]
    assert {error["row"]: sorted(error["errors"]) for error in report["errors"]} == {
        3: ["sector"], 4: ["name"], 5: ["name"], 6: ["employees"]}
    assert count(store, Member) == 2
    assert [event["type"] for event in outbox_events(store)] == ["member.registered"] * 2
    assert outbox_events(store)[-1]["data"]["profile"]["topics"] == ["e-mobility"]


def test_a_dry_run_imports_nothing(store):
    rows = [{"name": "Probe GmbH", "sector": "it", "state": "BE", "postcode": "10115", "city": "Berlin",
             "employees": "5", "contact_name": "C", "contact_email": "c@probe.example"}]
    with store.transaction() as session:
        report = commands.import_members(session, rows, dry_run=True)
    assert report["valid"] == 1 and report["imported"] == []
    assert count(store, Member) == 0 and outbox_events(store) == []


def test_profiles_after_pages_through_live_members_for_read_model_rebuilds(store, member_input):
    created = [register(store, member_input(name=f"Firma {i}", region={"state": "BE", "postcode": f"1011{i}",
                                                                       "city": "Berlin"})) for i in range(5)]
    with store.transaction() as session:
        commands.erase(session, ADMIN, created[0]["id"])
    seen, after = [], None
    while True:
        with store.transaction() as session:
            batch = commands.profiles_after(session, after, 2)
        seen += [profile["id"] for profile in batch["profiles"]]
        after = batch["next"]
        if after is None:
            break
    assert sorted(seen) == sorted(member["id"] for member in created[1:])
