"""The batch form of the member-event handler (``MatchingEngine.handle_batch`` →
``services.on_member_events``, what the subscriber calls with CONSUME_BATCH_SIZE > 1) against the
same events one at a time (``MatchingEngine.handle``), on SQLite and PostgreSQL (migrated by
Alembic), with the outbox relaying to the real broker: the same read model and final lists, each
changed list announced once per batch with its final content, a failing batch leaving nothing
behind, a redelivered batch doing nothing, a member registered and deleted in one batch never
announced."""
import copy
import json
from collections import Counter

import pytest
from sqlalchemy import func, select

from matching import services
from matching.dependencies import MatchingEngine
from matching.models import MemberProfile, Proposal, SuggestionSet
from matching.synthetic import ProfileFactory
from verbund import outbox
from verbund.testing import migrated_store, outbox_events

pytestmark = pytest.mark.integration

BATCH = 12  # events per batch here: several newcomers enter the same lists within one batch


@pytest.fixture
def stores(database_url, amqp_uri, tmp_path, request):
    """Two empty matching databases of the same kind: one fed one by one, one in batches."""
    if database_url.startswith("sqlite"):
        other = f"sqlite:///{tmp_path / 'batches.db'}"
    else:
        other = request.getfixturevalue("postgres").create()
    with migrated_store("matching", database_url, amqp_uri) as one, \
            migrated_store("matching", other, amqp_uri) as batch:
        yield one, batch


def matching_engine(store) -> MatchingEngine:
    """The service's engine over ``store`` (lexical: the embedding model is the e2e tests' part)."""
    matching = MatchingEngine(store, amqp_uri="amqp://unused")
    matching.ready.send(True)  # built from the read model at its first use (it starts stale)
    return matching


def stored_lists(store) -> dict[str, list]:
    with store.engine.connect() as conn:
        return {member_id: json.loads(s) if isinstance(s, str) else s for member_id, s in
                conn.execute(select(SuggestionSet.member_id, SuggestionSet.suggestions)).all()}


def read_model(store) -> dict[str, tuple]:
    with store.engine.connect() as conn:
        return {row.id: (row.version, row.deleted, json.dumps(row.profile, sort_keys=True)) for row in
                conn.execute(select(MemberProfile.id, MemberProfile.version, MemberProfile.deleted,
                                    MemberProfile.profile)).all()}


def count(store, table) -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar()


def last_announced(events: list[dict]) -> dict[str, list]:
    """Per member the list it was told last (match.suggested in outbox order)."""
    return {e["subject"]: e["data"]["suggestions"] for e in events if e["type"] == "match.suggested"}


def story(member_events) -> tuple[list[dict], list[dict]]:
    """30 members registered first, then 36 events: 28 newcomers, some earlier members changing
    their needs (twice for one of them, in order) and some leaving."""
    factory = ProfileFactory(seed=11)
    first, newcomers = factory.profiles(30), factory.profiles(28)
    setup = [member_events.registered(p) for p in first]
    events = []
    for n, newcomer in enumerate(newcomers):
        events.append(member_events.registered(newcomer))
        if n % 4 == 1:  # an earlier member now needs what a newcomer offers
            changed = copy.deepcopy(first[n])
            changed["version"] += 1
            changed["needs"] = copy.deepcopy(newcomers[(n + 3) % len(newcomers)]["offers"])
            events.append(member_events.updated(changed, ["needs"]))
            if n == 5:  # and once more, in the same batch
                again = {**copy.deepcopy(changed), "version": changed["version"] + 1, "name": "Umbenannt GmbH"}
                events.append(member_events.updated(again, ["name"]))
        if n % 9 == 4:
            events.append(member_events.deleted(first[n + 2]["id"], first[n + 2]["version"] + 1))
    return setup, events


def test_a_batch_ends_where_the_same_events_one_by_one_end_with_each_list_announced_once(stores, member_events):
    one, batch = stores
    setup, events = story(member_events)
    engines = {}
    for store in (one, batch):
        engines[store] = matching_engine(store)
        for event in setup:
            assert engines[store].handle(event, services.on_member_event)
    told_before = len(outbox_events(batch, "match.suggested"))

    for event in events:
        assert engines[one].handle(event, services.on_member_event)
    per_batch = []
    for start in range(0, len(events), BATCH):
        chunk = events[start:start + BATCH]
        before = len(outbox_events(batch))
        fresh = engines[batch].handle_batch(chunk, services.on_member_events)
        assert [e["id"] for e in fresh] == [e["id"] for e in chunk]
        per_batch.append(outbox_events(batch)[before:])

    # The same read model, the same engine and the same stored lists.
    assert read_model(batch) == read_model(one)
    expected = stored_lists(one)
    assert stored_lists(batch) == expected
    # A changed list reuses the items of partners unchanged since it was told (a newcomer leaves the
    # others' explanations as they were): every stored list is what explaining it afresh gives.
    for store in (one, batch):
        engine = engines[store].engine
        assert engine.explanations_reused > 100, engine.explanations_reused
        assert stored_lists(store) == {m: engine.explain_list(m) for m in stored_lists(store)}
    assert {m: engines[batch].engine.suggestions(m) for m in expected} == \
        {m: engines[one].engine.suggestions(m) for m in expected}
    # Every member was last told the same list (the one kept), whichever way the events came.
    assert last_announced(outbox_events(batch)) == last_announced(outbox_events(one))
    assert {m: s for m, s in expected.items() if m in last_announced(outbox_events(one))} == \
        last_announced(outbox_events(batch))

    # Coalesced: within a batch each changed list went out once, the batch's own members first
    # (in event order), then the others in id order; fewer announcements than one by one.
    for chunk, written in zip((events[s:s + BATCH] for s in range(0, len(events), BATCH)), per_batch, strict=True):
        subjects = [e["subject"] for e in written if e["type"] == "match.suggested"]
        assert len(subjects) == len(set(subjects)), Counter(subjects).most_common(3)
        own = list(dict.fromkeys(e["data"]["profile"]["id"] for e in chunk if "profile" in e["data"]))
        heads = [m for m in subjects if m in own]
        assert subjects[:len(heads)] == heads == [m for m in own if m in heads]
        assert subjects[len(heads):] == sorted(subjects[len(heads):])
    one_by_one = len(outbox_events(one, "match.suggested")) - told_before
    batched = len(outbox_events(batch, "match.suggested")) - told_before
    assert 0 < batched < one_by_one, (batched, one_by_one)

    # Proposals: each anchor searched at most once per batch, so at most one new proposal around it.
    for written in per_batch:
        anchors = Counter(e["data"]["project"]["anchor_id"] for e in written if e["type"] == "project.proposed")
        assert all(n == 1 for n in anchors.values()), anchors
    # The members who left are gone in both: no list, no proposal names them.
    gone = {e["data"]["id"] for e in events if e["type"] == "member.deleted"}
    assert gone and not gone & set(stored_lists(batch))
    assert not any(s["partner_id"] in gone for lists in stored_lists(batch).values() for s in lists)


def test_a_redelivered_batch_does_nothing_twice(stores, member_events):
    _, batch = stores
    setup, events = story(member_events)
    matching = matching_engine(batch)
    for event in setup:
        matching.handle(event, services.on_member_event)
    matching.handle_batch(events[:BATCH], services.on_member_events)
    written, lists, model = len(outbox_events(batch)), stored_lists(batch), read_model(batch)

    assert matching.handle_batch(events[:BATCH], services.on_member_events) == []  # all known: nothing runs
    assert (len(outbox_events(batch)), stored_lists(batch), read_model(batch)) == (written, lists, model)
    # Half known, half new: only the new ones run, once.
    mixed = events[BATCH // 2:BATCH + 3]
    fresh = matching.handle_batch(mixed, services.on_member_events)
    assert [e["id"] for e in fresh] == [e["id"] for e in events[BATCH:BATCH + 3]]
    with batch.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(outbox.inbox_table)).scalar() == \
            len(setup) + BATCH + 3


def test_a_member_registered_and_deleted_in_one_batch_is_never_announced(stores, profile, member_events):
    _, batch = stores
    matching = matching_engine(batch)
    supplier = profile(name="Zellwerk GmbH", sector="automotive", offers=["battery-cell-manufacturing"],
                       needs=["traceability-software", "lithium-battery-transport"])
    carrier = profile(name="Neckar Gefahrgut GmbH", sector="logistics", offers=["lithium-battery-transport"],
                      needs=["track-and-trace-software"])
    passing = profile(name="Kurzbesuch GmbH", sector="it", offers=["traceability-software"],
                      needs=["lithium-battery-transport"])
    matching.handle(member_events.registered(supplier), services.on_member_event)
    before = len(outbox_events(batch))

    fresh = matching.handle_batch([member_events.registered(carrier), member_events.registered(passing),
                                   member_events.deleted(passing["id"], 2)], services.on_member_events)
    assert len(fresh) == 3
    written = outbox_events(batch)[before:]
    assert not any(passing["id"] in json.dumps(e) for e in written)  # neither its list nor it in another's
    assert {e["subject"] for e in written if e["type"] == "match.suggested"} == {supplier["id"], carrier["id"]}
    assert [e["subject"] for e in written if e["type"] == "match.suggested"][0] == carrier["id"]  # its own first
    assert passing["id"] not in stored_lists(batch)
    assert read_model(batch)[passing["id"]][:2] == (2, True)  # a tombstone keeps later old events out
    assert count(batch, Proposal) == len([e for e in written if e["type"] == "project.proposed"])


def test_a_failing_batch_leaves_nothing_and_its_events_one_by_one_isolate_the_poisoned_one(stores, member_events):
    """What the subscriber does when a batch fails: the batch's transaction is rolled back (no inbox
    claim, no read-model row, no outbox row, the engine rebuilt from the read model before the next
    use case), then each event is handled on its own: only the poisoned one fails."""
    one, batch = stores
    setup, events = story(member_events)
    chunk = events[:BATCH]
    poisoned = chunk[4]["id"]

    def poisoning(uow, engine, fresh):
        services.on_member_events(uow, engine, fresh)
        if any(e["id"] == poisoned for e in fresh):
            raise RuntimeError("cannot handle this member event")

    engines = {store: matching_engine(store) for store in (one, batch)}
    for store in (one, batch):
        for event in setup:
            engines[store].handle(event, services.on_member_event)
    state = (len(outbox_events(batch)), stored_lists(batch), read_model(batch))

    with pytest.raises(RuntimeError):
        engines[batch].handle_batch(chunk, poisoning)
    assert (len(outbox_events(batch)), stored_lists(batch), read_model(batch)) == state
    assert engines[batch].stale  # its engine had applied part of the batch: rebuilt before the next use case

    failed = []
    for event in chunk:  # the subscriber's fallback: one by one, each in its own transaction
        try:
            engines[batch].handle_batch([event], poisoning)
        except RuntimeError:
            failed.append(event["id"])
    assert failed == [poisoned]
    for event in chunk:  # the same without the poisoned event
        if event["id"] != poisoned:
            engines[one].handle(event, services.on_member_event)
    assert read_model(batch) == read_model(one)
    assert stored_lists(batch) == stored_lists(one)
    with batch.engine.connect() as conn:
        claimed = set(conn.execute(select(outbox.inbox_table.c.event_id)).scalars())
    assert poisoned not in claimed and {e["id"] for e in chunk} - {poisoned} <= claimed
    assert last_announced(outbox_events(batch)) == last_announced(outbox_events(one))
