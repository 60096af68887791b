"""The members use cases on a migrated SQLite file, their events going through the outbox to a
recording publisher and their time from a fixed clock: no broker, no PostgreSQL."""
import uuid

import pytest
from marshmallow import ValidationError
from sqlalchemy import func, select

from members import queries, services
from members.models import Competency, Member, MemberKey, Tag
from verbund import outbox, personal
from verbund.auth import Principal
from verbund.errors import Conflict, Forbidden, Gone, NotFound, PreconditionFailed, Unprocessable
from verbund.testing import outbox_events

ADMIN = Principal("admin", "admin")


def count(store, model):
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(model)).scalar()


def published(store) -> list[str]:
    return store.relay.publisher.types()


def update(store, principal, member_id, patch, expected_version=None):
    with store.unit_of_work() as uow:
        return services.update(uow, principal, member_id, patch, expected_version)


def erase(store, principal, member_id):
    with store.unit_of_work() as uow:
        services.erase(uow, principal, member_id)


def get(store, principal, member_id):
    with store.unit_of_work() as uow:
        return queries.get(uow.session, principal, member_id)


def test_register_writes_the_member_and_emits_its_event(use_cases, member_input, register):
    profile = register(use_cases, member_input())
    assert profile["version"] == 1 and profile["size"]["sme"] is True
    assert profile["created_at"] == "2026-06-01T08:00:00Z"  # the unit of work's clock, not the wall clock
    [event] = use_cases.relay.publisher.of_type("member.registered")
    assert event["subject"] == profile["id"] and event["source"] == "/verbund/members"
    assert event["dataschema"] == "urn:verbund:schema:member.registered:v2"
    assert event["time"] == "2026-06-01T08:00:00Z"
    with use_cases.unit_of_work() as uow:
        key = personal.key_from_jwk(queries.member_key(uow.session, ADMIN, profile["id"]))
    assert personal.member_profile(event, {profile["id"]: key}.get) == profile
    assert outbox.pending_count(use_cases.engine) == 0


def test_register_links_offers_and_needs_to_the_vocabulary(use_cases, member_input, register):
    profile = register(use_cases, member_input())
    assert {"term": "traceability-software", "label": "Rückverfolgbarkeit", "description": None} in profile["needs"]


def test_a_duplicate_registration_changes_nothing(use_cases, member_input, register):
    register(use_cases, member_input())
    with pytest.raises(Conflict):
        register(use_cases, member_input(name="Schwäbische Präzisionsteile", sector="it"))
    assert count(use_cases, Member) == 1
    assert [event["type"] for event in outbox_events(use_cases)] == ["member.registered"]
    assert published(use_cases) == ["member.registered"]


def test_an_update_bumps_the_version_and_says_what_changed(use_cases, member_input, register):
    member = register(use_cases, member_input())
    use_cases.clock.advance(minutes=5)
    updated = update(use_cases, ADMIN, member["id"], {"topics": ["hydrogen"], "region": {"city": "Geislingen"}})
    assert updated["version"] == 2
    assert updated["region"] == {"state": "BW", "postcode": "73033", "city": "Geislingen"}
    assert updated["updated_at"] == "2026-06-01T08:05:00Z" and updated["created_at"] == "2026-06-01T08:00:00Z"
    event = outbox_events(use_cases)[-1]
    assert event["type"] == "member.updated"
    assert sorted(event["data"]["changed"]) == ["region", "topics"]
    assert event["data"]["profile"]["version"] == 2
    assert published(use_cases) == ["member.registered", "member.updated"]
    assert use_cases.relay.publisher.of_type("member.updated")[0]["time"] == "2026-06-01T08:05:00Z"


def test_an_update_that_changes_nothing_makes_no_version_and_no_event(use_cases, member_input, register):
    member = register(use_cases, member_input())
    same = update(use_cases, ADMIN, member["id"], {"name": member["name"]})
    assert same["version"] == 1
    assert len(outbox_events(use_cases)) == 1
    assert published(use_cases) == ["member.registered"]


def test_an_update_may_send_back_read_only_fields_unchanged(use_cases, member_input, register):
    member = register(use_cases, member_input())
    updated = update(use_cases, ADMIN, member["id"], {**member, "topics": ["ai"]})
    assert updated["version"] == 2 and updated["topics"] == ["ai"]


def test_an_update_with_a_stale_version_or_bad_data_changes_nothing(use_cases, member_input, register):
    member = register(use_cases, member_input())
    with pytest.raises(PreconditionFailed):
        update(use_cases, ADMIN, member["id"], {"topics": ["ai"]}, expected_version=7)
    with pytest.raises(ValidationError):
        update(use_cases, ADMIN, member["id"], {"sector": "aerospace"})
    with pytest.raises(Unprocessable):
        update(use_cases, ADMIN, member["id"], {"version": 99})
    assert get(use_cases, ADMIN, member["id"]) == member
    assert len(outbox_events(use_cases)) == 1
    assert published(use_cases) == ["member.registered"]


def test_an_update_to_a_taken_name_is_a_conflict(use_cases, member_input, register):
    register(use_cases, member_input())
    other = register(use_cases, member_input(name="Andere Firma GmbH"))
    with pytest.raises(Conflict):
        update(use_cases, ADMIN, other["id"], {"name": "Schwäbische Präzisionsteile AG"})
    assert published(use_cases) == ["member.registered"] * 2


def test_erasure_keeps_only_a_tombstone_and_announces_it(use_cases, member_input, register):
    member = register(use_cases, member_input())
    use_cases.clock.advance(minutes=5)
    erase(use_cases, Principal("m", "member", member_id=member["id"]), member["id"])
    with use_cases.engine.connect() as conn:
        row = conn.execute(select(Member).where(Member.id == member["id"])).one()
    assert row.name is None and row.contact_email is None and row.organisation_key is None
    assert count(use_cases, Competency) == 0 and count(use_cases, Tag) == 0 and count(use_cases, MemberKey) == 0
    events = outbox_events(use_cases)
    # The published registration carried personal data; it left the replayable history.
    assert [event["type"] for event in events] == ["member.deleted"]
    assert events[0]["data"] == {"id": member["id"], "version": 2, "deleted_at": "2026-06-01T08:05:00Z"}
    assert published(use_cases) == ["member.registered", "member.deleted"]
    with pytest.raises(Gone):
        update(use_cases, ADMIN, member["id"], {"name": "Zombie GmbH"})
    with pytest.raises(Gone):
        erase(use_cases, ADMIN, member["id"])
    register(use_cases, member_input())  # the organisation may come back as a new member


def test_unknown_members_and_strangers_are_refused(use_cases, member_input, register):
    member = register(use_cases, member_input())
    with pytest.raises(NotFound):
        get(use_cases, ADMIN, "00000000-0000-0000-0000-000000000000")
    with pytest.raises(Forbidden):
        get(use_cases, Principal("x", "member", member_id="other"), member["id"])
    with pytest.raises(Forbidden):
        update(use_cases, Principal("x", "member", member_id="other"), member["id"], {"topics": []})
    with pytest.raises(Forbidden):
        erase(use_cases, Principal("o", "organizer", association="automotive-cluster"), member["id"])
    with pytest.raises(NotFound):
        erase(use_cases, ADMIN, "00000000-0000-0000-0000-000000000000")
    assert published(use_cases) == ["member.registered"]


def test_an_organizer_changes_members_of_its_own_association_only(use_cases, member_input, register):
    member = register(use_cases, member_input())
    own = Principal("o", "organizer", association="automotive-cluster")
    assert update(use_cases, own, member["id"], {"topics": ["ai"]})["version"] == 2
    with pytest.raises(Forbidden):
        update(use_cases, Principal("o", "organizer", association="it-cluster"), member["id"], {"topics": []})


IMPORT_ROWS = [
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


def test_an_import_registers_valid_rows_and_reports_the_others(use_cases, member_input, register):
    register(use_cases, member_input())
    with use_cases.unit_of_work() as uow:
        report = services.import_members(uow, ADMIN, IMPORT_ROWS)
    assert [item["row"] for item in report["imported"]] == [2]
    assert {error["row"]: sorted(error["errors"]) for error in report["errors"]} == {
        3: ["sector"], 4: ["name"], 5: ["name"], 6: ["employees"]}
    assert count(use_cases, Member) == 2
    assert [event["type"] for event in outbox_events(use_cases)] == ["member.registered"] * 2
    assert outbox_events(use_cases)[-1]["data"]["profile"]["topics"] == ["e-mobility"]
    [imported] = use_cases.relay.publisher.published[1:]
    assert imported["subject"] == report["imported"][0]["id"] and imported["type"] == "member.registered"


def test_an_import_that_fails_stores_no_row_and_emits_nothing(use_cases, monkeypatch):
    rows = [{**IMPORT_ROWS[0], "name": f"Firma {i} GmbH", "contact_email": f"kontakt@firma{i}.example"}
            for i in range(3)]
    created = services._create

    def fail_on_the_third(uow, profile, key):
        if profile["name"] == "Firma 2 GmbH":
            raise RuntimeError("disk full")
        return created(uow, profile, key)

    monkeypatch.setattr(services, "_create", fail_on_the_third)
    with pytest.raises(RuntimeError), use_cases.unit_of_work() as uow:
        services.import_members(uow, ADMIN, rows)
    assert count(use_cases, Member) == 0 and outbox_events(use_cases) == [] and published(use_cases) == []


def test_a_dry_run_imports_nothing(use_cases):
    rows = [{"name": "Probe GmbH", "sector": "it", "state": "BE", "postcode": "10115", "city": "Berlin",
             "employees": "5", "contact_name": "C", "contact_email": "c@probe.example"}]
    with use_cases.unit_of_work() as uow:
        report = services.import_members(uow, ADMIN, rows, dry_run=True)
    assert report["valid"] == 1 and report["imported"] == []
    assert count(use_cases, Member) == 0 and outbox_events(use_cases) == [] and published(use_cases) == []


def test_keys_are_made_at_the_first_event_with_the_clocks_time(use_cases, member_input, register):
    member = register(use_cases, member_input())
    with use_cases.unit_of_work() as uow:
        held = uow.session.get(MemberKey, member["id"])
        # SQLite hands back naive datetimes; what was stored is the clock's UTC moment.
        assert held.created_at.replace(tzinfo=None) == use_cases.clock().replace(tzinfo=None)


def test_the_import_report_and_the_vocabulary_match_their_documented_schemas(use_cases, member_input, register):
    from jsonschema import Draft202012Validator

    from members.schemas import IMPORT_REPORT, VOCABULARY

    register(use_cases, member_input())
    warnings = [{"code": "unknown_columns", "columns": ["Notizen"], "message": "not imported"}]
    with use_cases.unit_of_work() as uow:
        report = services.import_members(uow, ADMIN, IMPORT_ROWS, warnings=warnings)
    assert report["imported"] and report["errors"] and report["warnings"]
    Draft202012Validator(IMPORT_REPORT).validate(report)
    Draft202012Validator(VOCABULARY).validate(queries.vocabulary())
    Draft202012Validator(VOCABULARY).validate(queries.vocabulary("Druckguss"))


def test_cards_give_name_sector_and_state_of_many_members_at_once_in_the_order_asked(use_cases, member_input,
                                                                                   register):
    """``GET /members/cards``: one call for the names (and Bundesland) a page shows, not one per member."""
    from members.schemas import MAX_CARDS, CardsQuerySchema

    first = register(use_cases, member_input(name="Guss Süd GmbH", region={"state": "BW", "postcode": "70173",
                                                                           "city": "Stuttgart"}))
    second = register(use_cases, member_input(name="Daten Nord GmbH", sector="it", region={
        "state": "HH", "postcode": "20095", "city": "Hamburg"}))
    gone = register(use_cases, member_input(name="Weg GmbH"))
    with use_cases.unit_of_work() as uow:
        services.erase(uow, Principal("admin", "admin"), gone["id"])
    unknown = str(uuid.uuid4())
    query = CardsQuerySchema().load({"ids": f" {second['id']},{unknown},{first['id'].upper()},{gone['id']},"
                                            f"{second['id']}"})
    with use_cases.unit_of_work() as uow:
        items = queries.cards(uow.session, query["ids"])["items"]
    assert items == [{"id": second["id"], "name": "Daten Nord GmbH", "sector": "it", "state": "HH"},
                     {"id": first["id"], "name": "Guss Süd GmbH", "sector": first["sector"], "state": "BW"}]
    for bad in ("", "not-an-id", ",".join(str(uuid.uuid4()) for _ in range(MAX_CARDS + 1))):
        with pytest.raises(ValidationError) as refused:
            CardsQuerySchema().load({"ids": bad})
        assert "ids" in refused.value.messages
