"""Other members' changed suggestion lists held back for a window (``ANNOUNCE_WINDOW_SECONDS``) and
announced once with their final state (``services.flush_pending``), on SQLite and PostgreSQL
(migrated by Alembic), with the outbox relaying to the real broker and an injected clock: the
newcomer's own list and proposal at once, the others' lists and proposals after the window, once;
a member who left meanwhile never announced; marks that outlive a restart; two instances flushing
at the same time never announcing a mark twice."""
import json
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from matching.dependencies import MatchingEngine
from matching.models import PendingAnnouncement, SuggestionSet
from matching.synthetic import ProfileFactory
from verbund.testing import migrated_store, outbox_events

pytestmark = pytest.mark.integration

WINDOW = 10.0
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Clock:
    """What ``uow.now()`` returns: a fixed time the test moves on."""

    def __init__(self):
        self.now = START

    def __call__(self):
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store(database_url, amqp_uri, clock):
    with migrated_store("matching", database_url, amqp_uri) as store:
        store.clock = clock
        yield store


def instance(store, window: float = WINDOW) -> MatchingEngine:
    """The service's engine over ``store`` as an instance runs it (lexical: the model is the e2e tests' part)."""
    matching = MatchingEngine(store, amqp_uri="amqp://unused", announce_window=window)
    matching.ready.send(True)  # built from the read model at its first use
    return matching


def pending(store) -> dict[str, bool]:
    with store.engine.connect() as conn:
        return dict(conn.execute(select(PendingAnnouncement.member_id, PendingAnnouncement.propose)).all())


def stored_partners(store, member_id) -> list[str]:
    with store.engine.connect() as conn:
        suggestions = conn.execute(select(SuggestionSet.suggestions)
                                   .where(SuggestionSet.member_id == member_id)).scalar()
    suggestions = json.loads(suggestions) if isinstance(suggestions, str) else suggestions or []
    return [s["partner_id"] for s in suggestions]


def since(store, count: int, type=None) -> list[dict]:
    """The events written after the first ``count`` (of ``type``)."""
    return outbox_events(store, type)[count:]


@pytest.fixture
def network(store, profile, member_events):
    """An automotive supplier needing traceability software and battery transport, and a carrier
    offering the transport, registered with no window (as before); then three IT houses that offer
    the software, each entering the supplier's list, the third needing transport itself."""
    supplier = profile(name="Zellwerk GmbH", sector="automotive", offers=["battery-cell-manufacturing"],
                       needs=["traceability-software", "lithium-battery-transport"])
    carrier = profile(name="Neckar Gefahrgut GmbH", sector="logistics", offers=["lithium-battery-transport"],
                      needs=[])
    at_once = instance(store, window=0)
    at_once.on_member_events([member_events.registered(supplier)])
    at_once.on_member_events([member_events.registered(carrier)])
    assert stored_partners(store, supplier["id"]) == [carrier["id"]]
    houses = [profile(name=f"TraceSoft {n} GmbH", sector="it", offers=["traceability-software"],
                      needs=["lithium-battery-transport"] if n == 3 else []) for n in (1, 2, 3)]
    return supplier, carrier, houses


def test_three_newcomers_within_the_window_make_one_announcement_with_the_final_list(
        store, clock, network, member_events):
    supplier, carrier, houses = network
    matching = instance(store)
    told, proposed = len(outbox_events(store, "match.suggested")), len(outbox_events(store, "project.proposed"))
    for house in houses:
        matching.on_member_events([member_events.registered(house)])
        # The newcomer's own list goes out at once, nobody else's.
        written = since(store, told, "match.suggested")
        assert [e["subject"] for e in written][-1] == house["id"]
        assert supplier["id"] not in {e["subject"] for e in written}
        clock.advance(2)
    # The third house needs transport: its own proposal (with the carrier) is made at once; none
    # around the supplier yet, though the houses now cover its needs with the carrier.
    anchors = [e["data"]["project"]["anchor_id"] for e in since(store, proposed, "project.proposed")]
    assert anchors == [houses[2]["id"]]
    # Both lists wait, and both members are anchors to propose around (each once, at the flush).
    assert pending(store) == {supplier["id"]: True, carrier["id"]: True}
    assert stored_partners(store, supplier["id"]) == [carrier["id"]]  # stored when announced

    before = len(outbox_events(store))
    assert matching.flush().taken == 0  # 6 s after the first mark: not due yet
    assert len(outbox_events(store)) == before

    clock.advance(WINDOW - 6 + 0.1)
    done = matching.flush()
    # The supplier's window (from its first mark) has passed, the carrier's (marked 4 s later) not.
    assert (done.taken, done.announced, done.searched) == (1, 1, 1)
    written = since(store, told, "match.suggested")
    for_supplier = [e for e in written if e["subject"] == supplier["id"]]
    assert len(for_supplier) == 1  # once, though its list changed three times
    final = [s["partner_id"] for s in for_supplier[0]["data"]["suggestions"]]
    assert set(final) == {carrier["id"], *(house["id"] for house in houses)}
    assert final == [partner for partner, _ in matching.engine.suggestions(supplier["id"])]
    assert stored_partners(store, supplier["id"]) == final
    # The proposal around the supplier came with the flush (the carrier needs nothing: no team).
    anchors = [e["data"]["project"]["anchor_id"] for e in since(store, proposed, "project.proposed")]
    assert anchors == [houses[2]["id"], supplier["id"]]
    assert pending(store) == {carrier["id"]: True}
    clock.advance(4)
    assert (matching.flush().announced, pending(store)) == (1, {})
    written = since(store, told, "match.suggested")
    assert [e["subject"] for e in written].count(carrier["id"]) == 1

    # Nothing is announced twice: a later flush finds nothing; a mark whose list ends as told is dropped.
    assert matching.flush().taken == 0
    with store.unit_of_work() as uow:
        uow.session.add(PendingAnnouncement(member_id=supplier["id"], due_at=clock.now, propose=False))
    assert (matching.flush().taken, len(since(store, told, "match.suggested"))) == (1, len(written))


def test_a_member_who_left_within_the_window_is_not_announced(store, clock, network, member_events):
    supplier, carrier, houses = network
    matching = instance(store)
    matching.on_member_events([member_events.registered(houses[0])])
    assert supplier["id"] in pending(store)
    matching.on_member_events([member_events.deleted(supplier["id"], 2)])
    assert supplier["id"] not in pending(store)  # erased with the member

    # A mark left for a member deleted by other means (an instance that crashed before erasing):
    # taken and dropped, never announced.
    matching.on_member_events([member_events.registered(houses[1])])
    with store.unit_of_work() as uow:
        uow.session.add(PendingAnnouncement(member_id=supplier["id"], due_at=clock.now, propose=True))
    clock.advance(WINDOW + 1)
    told = len(outbox_events(store, "match.suggested"))
    done = matching.flush()
    assert done.taken >= 1 and pending(store) == {}
    assert supplier["id"] not in {e["subject"] for e in since(store, told)}
    assert supplier["id"] not in json.dumps(since(store, told))


def test_marks_survive_a_restart(store, clock, network, member_events):
    supplier, carrier, houses = network
    first = instance(store)
    for house in houses[:2]:
        first.on_member_events([member_events.registered(house)])
    assert supplier["id"] in pending(store)
    told = len(outbox_events(store, "match.suggested"))
    del first  # the process ends before the window is over

    clock.advance(WINDOW + 1)
    restarted = instance(store)  # its engine is built from the read model at first use
    assert restarted.flush().announced == 1
    [event] = since(store, told, "match.suggested")
    assert event["subject"] == supplier["id"]
    assert {s["partner_id"] for s in event["data"]["suggestions"]} == {carrier["id"], houses[0]["id"],
                                                                      houses[1]["id"]}


@pytest.fixture
def second_store(database_url, amqp_uri, clock, store):
    """A second instance's own connection pool to the same database."""
    with migrated_store("matching", database_url, amqp_uri) as other:
        other.clock = clock
        yield other


def test_two_instances_flushing_together_announce_each_list_once(store, second_store, clock, member_events):
    factory = ProfileFactory(seed=5)
    network, newcomers = factory.profiles(30), factory.profiles(12)
    one, two = instance(store), instance(second_store)
    at_once = instance(store, window=0)
    at_once.on_member_events([member_events.registered(p) for p in network])
    for start in range(0, len(newcomers), 3):  # both instances consume, in batches
        (one if start % 2 else two).on_member_events(
            [member_events.registered(p) for p in newcomers[start:start + 3]])
        clock.advance(1)
    marked = pending(store)
    assert len(marked) > 5
    told = len(outbox_events(store, "match.suggested"))

    clock.advance(WINDOW)
    barrier, errors = threading.Barrier(2), []

    def flush(matching):
        try:
            barrier.wait(timeout=10)
            matching.flush()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=flush, args=(m,)) for m in (one, two)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert pending(store) == {}
    subjects = Counter(e["subject"] for e in since(store, told, "match.suggested"))
    assert subjects and max(subjects.values()) == 1, subjects
    assert set(subjects) <= set(marked)
    # Every list is now as one engine with every member has it: nothing held back was lost.
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(SuggestionSet)).scalar() > 0
    for member_id in marked:
        assert stored_partners(store, member_id) == [p for p, _ in one.engine.suggestions(member_id)]


# --- the running service ----------------------------------------------------------------------------------

def test_the_running_service_announces_another_members_list_once_after_the_window(
        database_url, amqp_uri, start_service, event_tap, profile, member_events):
    """A real matching-service process fed over the broker, one event at a time, with a window of 15 s: long
    enough that three newcomers published together are handled within it on a busy machine."""
    from verbund import envelope
    from verbund.broker import Publisher
    from verbund.testing import wait_for

    tap = event_tap("match.suggested", "project.proposed")
    start_service("matching", database_url=database_url,
                  env={"ANNOUNCE_WINDOW_SECONDS": "15", "CONSUME_BATCH_SIZE": "1", "MATCHING_SEMANTIC": "0"})
    publisher = Publisher(amqp_uri)

    def publish(member):
        event = member_events.registered(member)
        publisher.publish(event["type"], envelope.dumps(event), message_id=event["id"])

    def lists_of(member_id) -> list[list[str]]:
        return [[s["partner_id"] for s in e["data"]["suggestions"]] for e in tap.drain()
                if e["type"] == "match.suggested" and e["subject"] == member_id]

    try:
        supplier = profile(name="Zellwerk GmbH", sector="automotive", offers=["battery-cell-manufacturing"],
                           needs=["traceability-software", "lithium-battery-transport"])
        carrier = profile(name="Neckar Gefahrgut GmbH", sector="logistics", offers=["lithium-battery-transport"],
                          needs=[])
        publish(supplier)
        publish(carrier)
        wait_for(lambda: lists_of(supplier["id"]) == [[carrier["id"]]], timeout=60,
                 message="the supplier told of the carrier after the window")
        houses = [profile(name=f"TraceSoft {n} GmbH", sector="it", offers=["traceability-software"], needs=[])
                  for n in range(4)]
        for house in houses[:3]:
            publish(house)
        for house in houses[:3]:  # each newcomer's own list at once
            tap.wait("match.suggested", subject=house["id"], timeout=30)
        told = wait_for(lambda: len(lists_of(supplier["id"])) > 1 and lists_of(supplier["id"]), timeout=60,
                        message="the supplier's list after the window")
        assert set(told[1]) == {carrier["id"], *(h["id"] for h in houses[:3])}  # once, with all three
        positions = {e["subject"]: i for i, e in enumerate(tap.events) if e["type"] == "match.suggested"}
        assert all(positions[h["id"]] < positions[supplier["id"]] for h in houses[:3])
        # A fourth newcomer later: the supplier's next list is the next announcement (none in between).
        publish(houses[3])
        told = wait_for(lambda: len(lists_of(supplier["id"])) > 2 and lists_of(supplier["id"]), timeout=60,
                        message="the supplier's list with the fourth house")
        assert len(told) == 3 and houses[3]["id"] in told[2] and houses[3]["id"] not in told[1]
        # No team with the supplier is proposed twice (a loop of flushes would). When the deferred search
        # runs is checked exactly in the use-case tests above, with an injected clock.
        teams = [e for e in tap.drain() if e["type"] == "project.proposed"
                 and supplier["id"] in {m["member_id"] for m in e["data"]["project"]["members"]}]
        assert len(teams) <= 1
    finally:
        publisher.close()


def test_while_full_batches_keep_coming_other_lists_wait_up_to_the_hold(store, clock, network, member_events):
    """An import or a burst (the subscriber hands full batches: more wait in the queue): other lists
    are held past their window while it flows, at most ``announce_hold`` after their first change,
    and go out once the flow stops."""
    supplier, carrier, houses = network
    matching = MatchingEngine(store, amqp_uri="amqp://unused", announce_window=WINDOW, announce_hold=30, batch_size=2)
    matching.ready.send(True)
    told = len(outbox_events(store, "match.suggested"))

    def full_batch(*events):
        matching.on_member_events(list(events), delivered=2)

    full_batch(member_events.registered(houses[0]))  # t0: enters the supplier's list
    assert set(pending(store)) == {supplier["id"]}
    clock.advance(8)
    full_batch(member_events.registered(houses[1]))  # t0 + 8: the flow goes on
    clock.advance(3)
    assert matching.flush().taken == 0  # t0 + 11: past the window, held while the flow goes on
    clock.advance(5)
    third = member_events.registered(houses[2])
    full_batch(third)  # t0 + 16: needs transport, so the carrier's list changes too
    assert set(pending(store)) == {supplier["id"], carrier["id"]}
    clock.advance(8)
    full_batch(third)  # t0 + 24: a full batch again (a redelivery: the inbox skips it)
    clock.advance(5)
    assert matching.flush().taken == 0  # t0 + 29: still within the hold

    clock.advance(2)
    done = matching.flush()  # t0 + 31: the supplier's hold is over, the flow is not
    assert (done.taken, done.announced) == (1, 1)
    [event] = since(store, told, "match.suggested")[-1:]
    assert event["subject"] == supplier["id"]
    assert {s["partner_id"] for s in event["data"]["suggestions"]} == {carrier["id"], *(h["id"] for h in houses)}
    assert set(pending(store)) == {carrier["id"]}  # marked at t0 + 16: held until t0 + 46 at most

    clock.advance(4)  # t0 + 35: no full batch since t0 + 24: the flow has stopped, the window counts again
    assert matching.flush().announced == 1 and pending(store) == {}
    subjects = [e["subject"] for e in since(store, told, "match.suggested")]
    assert subjects.count(supplier["id"]) == 1 and subjects.count(carrier["id"]) == 1
    # a batch that is not full never holds anything (the first test: batch_size 1)
    assert matching.held() == 0.0
