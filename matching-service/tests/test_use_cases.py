"""The matching use cases on a migrated SQLite file with a recording publisher and a fixed
clock: no broker, no PostgreSQL (``make unit``). What the outbox relays after each commit is
what ``store.relay.publisher`` holds."""
import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import func, select

from matching import domain, queries, services
from matching.models import DeclinedPair, MemberProfile, Proposal, SuggestionSet
from verbund import envelope
from verbund.auth import Principal
from verbund.errors import Conflict, Forbidden, NotFound, Unprocessable
from verbund.testing import FixedClock, use_case_store
from verbund.vocabulary import load as load_vocabulary

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


# --- steady proposals -----------------------------------------------------------------------------------

def opened(store):
    """Proposals made, as the events told them, oldest first."""
    return [e["data"]["project"] for e in published(store, "project.proposed")]


def team(project) -> set[str]:
    return {m["member_id"] for m in project["members"]}


def as_member(member):
    return Principal(member["id"], "member", member_id=member["id"])


def test_the_obvious_pair_is_proposed_when_the_second_firm_registers(store, engine, profile, member_events):
    """Works that need a warehouse system among much else registered first; then a body shop that
    needs exactly one, then the IT house that offers it. The IT house enters all their lists; the
    body shop, for which it is the obvious partner, is proposed the pair at once."""
    for i in range(6):
        apply(store, engine, member_events.registered(profile(
            name=f"Werk {i}", sector="automotive", needs=["wms", "mes", "traceability-software"])))
    body_shop = profile(name="Karosseriebau Ost GmbH", sector="automotive", offers=["battery-cell-manufacturing"],
                        needs=["wms"])
    apply(store, engine, member_events.registered(body_shop))
    assert opened(store) == []
    it_house = profile(name="Lagerlogik GmbH", sector="it", offers=["wms"], needs=[])
    apply(store, engine, member_events.registered(it_house))
    [project] = [p for p in opened(store) if p["anchor_id"] == body_shop["id"]]
    assert team(project) == {body_shop["id"], it_house["id"]} and project["need_coverage"] == 1.0
    assert opened(store) == [project]  # a third of the works' needs is no team for them


def test_a_team_that_covers_too_little_is_not_proposed(store, engine, profile, member_events):
    anchor = profile(name="Zellwerk GmbH", sector="automotive", needs=["wms", "traceability-software"])
    apply(store, engine, member_events.registered(anchor))
    apply(store, engine, member_events.registered(profile(name="Lagerlogik GmbH", sector="it", offers=["wms"])))
    assert opened(store) == []  # half of the needs: not a team yet
    apply(store, engine, member_events.registered(
        profile(name="TraceSoft GmbH", sector="it", offers=["traceability-software"])))
    [project] = opened(store)
    assert project["anchor_id"] == anchor["id"] and project["need_coverage"] == 1.0


@pytest.fixture
def supplier_with_a_team(store, engine, profile, member_events):
    """A supplier with three needs and an open proposal that covers two of them."""
    supplier = profile(name="Zellwerk GmbH", sector="automotive", offers=["battery-cell-manufacturing"],
                       needs=["wms", "traceability-software", "lithium-battery-transport"])
    it = profile(name="TraceSoft GmbH", sector="it", offers=["wms", "traceability-software"], needs=[])
    for member in (supplier, it):
        apply(store, engine, member_events.registered(member))
    [project] = opened(store)
    assert team(project) == {supplier["id"], it["id"]} and project["need_coverage"] == pytest.approx(0.6667)
    return supplier, it, project


def test_an_open_proposal_stands_until_a_much_better_team_after_the_quiet_period(
        store, engine, profile, member_events, clock, supplier_with_a_team):
    supplier, it, first = supplier_with_a_team
    carrier = profile(name="Neckar Gefahrgut GmbH", sector="logistics", offers=["lithium-battery-transport"], needs=[])
    clock.advance(days=1)
    apply(store, engine, member_events.registered(carrier))
    assert opened(store) == [first] and not published(store, "project.closed")  # better, but too soon
    clock.advance(days=5)
    apply(store, engine, member_events.updated({**carrier, "version": 2, "topics": ["hydrogen"]}, ["topics"]))
    assert len(opened(store)) == 1
    clock.advance(days=2)  # the proposal has stood for eight days: the much better team replaces it
    apply(store, engine, member_events.updated({**carrier, "version": 3, "topics": []}, ["topics"]))
    second = opened(store)[-1]
    assert team(second) == {supplier["id"], it["id"], carrier["id"]} and second["need_coverage"] == 1.0
    [closed] = published(store, "project.closed")
    assert closed["subject"] == first["id"] and closed["data"]["project"]["closed_reason"] == "superseded"


def test_a_slightly_better_team_never_replaces_an_open_proposal(store, engine, profile, member_events, clock,
                                                                  supplier_with_a_team):
    supplier, it, first = supplier_with_a_team
    clock.advance(days=30)
    # A carrier whose offer is only related to the need: the team would cover a little more, not much more.
    courier = profile(name="Kurier GmbH", sector="logistics", offers=["~Gefahrguttransport"], needs=[])
    apply(store, engine, member_events.registered(courier))
    with_courier = engine.team_coverage(supplier["id"], [it["id"], courier["id"]])
    assert first["need_coverage"] < with_courier < first["need_coverage"] + domain.POLICY.supersede_gain
    assert opened(store) == [first] and not published(store, "project.closed")


def test_a_closed_team_or_a_part_of_it_is_never_proposed_again(store, engine, profile, member_events, clock,
                                                                supplier_with_a_team):
    supplier, it, first = supplier_with_a_team
    carrier = profile(name="Neckar Gefahrgut GmbH", sector="logistics", offers=["lithium-battery-transport"], needs=[])
    clock.advance(days=8)
    apply(store, engine, member_events.registered(carrier))
    second = opened(store)[-1]
    assert second["id"] != first["id"] and team(second) == {supplier["id"], it["id"], carrier["id"]}
    # The carrier leaves: its team is closed. What is left of it is the first team again, closed
    # before: it is not proposed again, however often the profiles change.
    clock.advance(days=8)
    apply(store, engine, member_events.deleted(carrier["id"], 2))
    for version in range(2, 6):
        clock.advance(days=8)
        apply(store, engine, member_events.updated({**supplier, "version": version, "name": f"Zellwerk {version}"},
                                                   ["name"]))
    assert len(opened(store)) == 2
    reasons = [e["data"]["project"]["closed_reason"] for e in published(store, "project.closed")]
    assert reasons == ["superseded", "member_deleted"]


def test_after_a_decline_a_member_asks_for_another_proposal(store, engine, profile, member_events, clock,
                                                            supplier_with_a_team):
    supplier, it, first = supplier_with_a_team
    with store.unit_of_work() as uow:
        services.respond(uow, as_member(supplier), first["id"], {"response": "decline", "member_id": None})
    other_it = profile(name="Lagerlogik GmbH", sector="it", offers=["wms", "traceability-software"], needs=[])
    clock.advance(days=1)
    apply(store, engine, member_events.registered(other_it))
    assert opened(store) == [first]  # not unasked, right after a decline
    with store.unit_of_work() as uow, pytest.raises(Forbidden):
        services.request_proposal(uow, engine, as_member(it), supplier["id"])
    with store.unit_of_work() as uow:
        asked = services.request_proposal(uow, engine, as_member(supplier), supplier["id"])
    assert asked["status"] == "proposed" and team(asked) == {supplier["id"], other_it["id"]}
    assert opened(store)[-1]["id"] == asked["id"]
    with store.unit_of_work() as uow, pytest.raises(Conflict) as open_one:
        services.request_proposal(uow, engine, as_member(supplier), supplier["id"])
    assert open_one.value.details["proposal_id"] == asked["id"]
    with store.unit_of_work() as uow, pytest.raises(NotFound):
        services.request_proposal(uow, engine, ADMIN, "no-such-member")


def test_the_carrier_that_declined_is_not_in_the_next_proposal(store, engine, trio, profile, member_events, clock):
    """The carrier declines the three-firm team. The next teams around the supplier bring a new IT
    house (a team never proposed before, so only the decline keeps the carrier out), asked for at
    once and again after the quiet period: never with the carrier that declined, though it is still
    the supplier's only carrier (and no team without it covers enough to be proposed unasked)."""
    supplier, it, carrier = trio
    for member in trio:
        apply(store, engine, member_events.registered(member))
    [first] = opened(store)
    assert team(first) == {supplier["id"], it["id"], carrier["id"]}
    with store.unit_of_work() as uow:
        services.respond(uow, as_member(carrier), first["id"], {"response": "decline", "member_id": None})
    other_it = profile(name="Lagerlogik GmbH", sector="it", offers=["traceability-software"], needs=[])
    apply(store, engine, member_events.registered(other_it))
    with store.unit_of_work() as uow:
        asked = services.request_proposal(uow, engine, as_member(supplier), supplier["id"])
    assert team(asked) == {supplier["id"], other_it["id"]}
    with store.unit_of_work() as uow:
        services.respond(uow, as_member(other_it), asked["id"], {"response": "decline", "member_id": None})
    third_it = profile(name="Spurwerk IT GmbH", sector="it", offers=["traceability-software"], needs=[])
    clock.advance(days=8)
    apply(store, engine, member_events.registered(third_it))
    apply(store, engine, member_events.updated({**carrier, "version": 2, "name": "Neckar Gefahrgut AG"}, ["name"]))
    # Without the carrier a team covers half the supplier's needs: not proposed unasked.
    assert [p["id"] for p in opened(store)] == [first["id"], asked["id"]]
    with store.unit_of_work() as uow:
        again = services.request_proposal(uow, engine, as_member(supplier), supplier["id"])
    assert team(again) == {supplier["id"], third_it["id"]}


def test_asking_without_needs_or_without_a_new_team_is_answered_plainly(store, engine, profile, member_events,
                                                                        supplier_with_a_team):
    supplier, it, first = supplier_with_a_team
    with store.unit_of_work() as uow, pytest.raises(Unprocessable) as no_needs:
        services.request_proposal(uow, engine, as_member(it), it["id"])
    assert "no needs" in no_needs.value.details["fields"]["member_id"][0]
    with store.unit_of_work() as uow:
        services.respond(uow, as_member(it), first["id"], {"response": "decline", "member_id": None})
    with store.unit_of_work() as uow, pytest.raises(Unprocessable) as nobody:
        services.request_proposal(uow, engine, as_member(supplier), supplier["id"])
    assert "no new team" in nobody.value.message


def test_a_proposal_reads_as_sentences_in_german_and_english(store, engine, profile, member_events):
    supplier = profile(name="Zellwerk GmbH", sector="automotive", offers=["battery-cell-manufacturing"],
                       needs=["wms", "traceability-software", "~Leasing von Gabelstaplern"])
    it = profile(name="TraceSoft GmbH", sector="it", offers=["wms", "traceability-software"], needs=[])
    for member in (supplier, it):
        apply(store, engine, member_events.registered(member))
    [project] = opened(store)
    # The title names the needs the team covers, not the one it leaves open.
    labels = [need["label"] for need in supplier["needs"]]
    assert project["title"] == f"Partnerprojekt: {labels[0]}, {labels[1]}"
    # The same title in either language, vocabulary terms in the reader's words.
    english = [load_vocabulary().competencies[term].en for term in ("wms", "traceability-software")]
    assert project["title_i18n"] == {"de": project["title"], "en": f"Partner project: {english[0]}, {english[1]}"}
    assert project["about_i18n"] == {"de": f"{labels[0]}, {labels[1]}", "en": f"{english[0]}, {english[1]}"}
    covered = [r for r in project["explanation"] if r["kind"] == "need_covered"]
    assert {r["member_id"] for r in covered} == {it["id"]} and covered[0]["member_name"] == "TraceSoft GmbH"
    need = covered[0]["need"]
    assert covered[0]["text"]["de"] == f"TraceSoft GmbH bringt „{covered[0]['offer']}“ für Ihren Bedarf „{need}“ mit."
    assert covered[0]["text"]["en"] == f"TraceSoft GmbH brings “{covered[0]['offer']}” to your need “{need}”."
    [missing] = [r for r in project["explanation"] if r["kind"] == "need_open"]
    assert missing["text"]["de"] == \
        "Für Ihren Bedarf „Leasing von Gabelstaplern“ fehlt in diesem Team noch ein Partner."
    assert missing["text"]["en"] == "Nobody in this team covers your need “Leasing von Gabelstaplern” yet."
    [sectors] = [r for r in project["explanation"] if r["kind"] == "sectors"]
    assert sectors["text"] == {"de": "Das Team verbindet die Branchen Automobil und IT.",
                               "en": "The team brings together Automotive and IT."}
    assert project["summary"] == {"de": "Ein Team für Zellwerk GmbH: TraceSoft GmbH (IT) deckt 2 von 3 Bedarfen ab.",
                                  "en": "A team for Zellwerk GmbH: TraceSoft GmbH (IT) covers 2 of its 3 needs."}
    texts = [text for r in project["explanation"] for text in r["text"].values()] + list(project["summary"].values())
    assert not any(member_id in text for text in texts for member_id in (supplier["id"], it["id"]))
    # A member who leaves is not named in the closing event's sentences either.
    apply(store, engine, member_events.deleted(it["id"], 2))
    [closed] = published(store, "project.closed")
    gone = closed["data"]["project"]
    assert "TraceSoft" not in str(gone)
    assert [r["text"]["de"] for r in gone["explanation"] if r["kind"] == "need_covered"][0].startswith(
        "ein ausgeschiedenes Mitglied bringt")
