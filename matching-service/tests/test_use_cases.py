"""The matching use cases on a migrated SQLite file with a recording publisher and a fixed
clock: no broker, no PostgreSQL (``make unit``). What the outbox relays after each commit is
what ``store.relay.publisher`` holds."""
import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import func, select

from matching import queries, services
from matching.models import DeclinedPair, MemberProfile, Proposal, SuggestionSet
from verbund import envelope
from verbund.auth import Principal
from verbund.errors import Conflict, NotFound
from verbund.testing import FixedClock, use_case_store

ADMIN = Principal("admin", "admin")


@pytest.fixture
def clock():
    return FixedClock()


@pytest.fixture
def store(tmp_path, clock):
    with use_case_store("matching", tmp_path, clock=clock) as store:
        yield store


def apply(store, engine, event) -> bool:
    return store.handle(event, lambda uow, e: services.on_member_event(uow, engine, e))


def published(store, type=None):
    return [e for e in store.relay.publisher.published if type is None or e["type"] == type]


def count(store, model):
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(model)).scalar()


def test_a_registering_member_hears_first_then_the_members_it_joins_in_one_outbox_statement(
        store, engine, trio, clock, member_events):
    supplier, it, carrier = trio
    apply(store, engine, member_events.registered(supplier))
    apply(store, engine, member_events.registered(it))
    before = len(published(store))
    outbox_inserts = []

    def count_outbox_inserts(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("INSERT INTO OUTBOX"):
            outbox_inserts.append(statement)

    sa_event.listen(store.engine, "before_cursor_execute", count_outbox_inserts)
    clock.advance(minutes=5)
    registration = member_events.registered(carrier)
    assert apply(store, engine, registration) is True
    sa_event.remove(store.engine, "before_cursor_execute", count_outbox_inserts)

    events = published(store)[before:]
    suggested = [e["subject"] for e in events if e["type"] == "match.suggested"]
    assert suggested[0] == carrier["id"] and len(suggested) >= 2  # its own list first ...
    assert suggested[1:] == sorted(suggested[1:])                   # ... then the others in id order
    assert supplier["id"] in suggested
    [own] = [e for e in events if e["subject"] == carrier["id"]]
    assert "Zellwerk GmbH" in {s["partner_name"] for s in own["data"]["suggestions"]}
    # Every event of the registration went to the outbox in one statement, stamped by the clock.
    assert len(outbox_inserts) == 1
    assert {e["source"] for e in events} == {"/verbund/matching"}
    assert {e["time"] for e in events} == {envelope.isoformat(clock())}
    proposed = [e["data"]["project"] for e in events if e["type"] == "project.proposed"]
    assert {m["member_id"] for m in proposed[-1]["members"]} == {supplier["id"], it["id"], carrier["id"]}
    with store.unit_of_work() as uow:
        stored = queries.suggestions_of(uow.session, ADMIN, carrier["id"])
        assert stored["updated_at"] == envelope.isoformat(clock())
        assert uow.session.get(MemberProfile, carrier["id"]).profile["contact"] == {"language": "de"}
    # The same event again: the inbox knows it, nothing more is published.
    assert apply(store, engine, registration) is False
    assert len(published(store)) == before + len(events)


def test_a_deleted_member_is_forgotten_and_its_proposals_closed(store, engine, trio, clock, member_events):
    supplier, it, carrier = trio
    for member in trio:
        apply(store, engine, member_events.registered(member))
    proposal_id = published(store, "project.proposed")[-1]["subject"]
    before = len(published(store))
    clock.advance(hours=1)
    assert apply(store, engine, member_events.deleted(it["id"], 2))

    events = published(store)[before:]
    [closed] = [e for e in events if e["type"] == "project.closed"]
    project = closed["data"]["project"]
    assert closed["subject"] == proposal_id and project["closed_reason"] == "member_deleted"
    assert [m.get("name") for m in project["members"] if m["member_id"] == it["id"]] == [None]
    assert project["updated_at"] == envelope.isoformat(clock())
    told = {e["subject"]: e for e in events if e["type"] == "match.suggested"}
    assert supplier["id"] in told
    assert it["id"] not in {s["partner_id"] for s in told[supplier["id"]]["data"]["suggestions"]}
    with store.unit_of_work() as uow:
        tombstone = uow.session.get(MemberProfile, it["id"])
        assert tombstone.deleted and tombstone.profile is None and tombstone.version == 2
        assert uow.session.get(SuggestionSet, it["id"]) is None
        assert uow.session.get(Proposal, proposal_id) is None
        with pytest.raises(NotFound):
            queries.suggestions_of(uow.session, ADMIN, it["id"])
    # A late update of an older version does not bring it back.
    assert apply(store, engine, member_events.updated({**it, "version": 2}, ["name"]))
    assert it["id"] not in engine
    assert len(published(store)) == before + len(events)


def test_an_answered_proposal_forms_or_closes(store, engine, trio, clock, member_events):
    for member in trio:
        apply(store, engine, member_events.registered(member))
    proposal_id = published(store, "project.proposed")[-1]["subject"]
    supplier, it, carrier = trio
    clock.advance(minutes=10)
    with store.unit_of_work() as uow:
        first = services.respond(uow, Principal("s", "member", member_id=supplier["id"]), proposal_id,
                                 {"response": "accept", "member_id": None})
    assert first["status"] == "proposed" and first["updated_at"] == envelope.isoformat(clock())
    with store.unit_of_work() as uow:
        again = services.respond(uow, ADMIN, proposal_id, {"response": "accept", "member_id": supplier["id"]})
    assert again == first  # the same answer again changes nothing
    assert not published(store, "project.formed") and not published(store, "project.closed")[1:]
    with store.unit_of_work() as uow:
        services.respond(uow, ADMIN, proposal_id, {"response": "accept", "member_id": it["id"]})
    clock.advance(minutes=1)
    with store.unit_of_work() as uow:
        formed = services.respond(uow, Principal("c", "member", member_id=carrier["id"]), proposal_id,
                                  {"response": "accept", "member_id": None})
    assert formed["status"] == "formed"
    [event] = published(store, "project.formed")
    assert event["subject"] == proposal_id and event["time"] == envelope.isoformat(clock())
    assert {m["response"] for m in event["data"]["project"]["members"]} == {"accepted"}
    with store.unit_of_work() as uow, pytest.raises(Conflict):
        services.respond(uow, ADMIN, proposal_id, {"response": "decline", "member_id": carrier["id"]})
    assert count(store, DeclinedPair) == 0


def test_a_decline_closes_the_proposal_and_rules_out_the_pairings(store, engine, trio, member_events):
    for member in trio:
        apply(store, engine, member_events.registered(member))
    proposal_id = published(store, "project.proposed")[-1]["subject"]
    carrier = trio[2]
    with store.unit_of_work() as uow:
        result = services.respond(uow, Principal("c", "member", member_id=carrier["id"]), proposal_id,
                                  {"response": "decline", "member_id": None})
    assert result["status"] == "closed" and result["closed_reason"] == "declined"
    closed = [e for e in published(store, "project.closed") if e["subject"] == proposal_id]
    assert [e["data"]["project"]["closed_reason"] for e in closed] == ["declined"]
    assert count(store, DeclinedPair) == 2
