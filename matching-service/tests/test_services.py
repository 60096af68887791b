"""The matching use cases on SQLite and PostgreSQL (migrated by Alembic), with their events
going through the outbox to the real broker."""
import hashlib
import json
import uuid

import pytest
from sqlalchemy import func, select

from matching import domain, queries, services
from matching.engine import Engine
from matching.models import DeclinedPair, MemberProfile, Proposal, SuggestionSet
from verbund import envelope, outbox
from verbund.auth import Principal
from verbund.database import Store
from verbund.errors import Conflict, Forbidden, NotFound, Unprocessable
from verbund.testing import migrated_store, outbox_events

pytestmark = pytest.mark.integration

ADMIN = Principal("admin", "admin")


@pytest.fixture
def store(database_url, amqp_uri):
    with migrated_store("matching", database_url, amqp_uri) as store:
        yield store


def apply(store, engine, event) -> bool:
    return store.handle(event, lambda uow, e: services.on_member_event(uow, engine, e))


def outbox_published(store, event_id) -> bool:
    with store.engine.connect() as conn:
        return conn.execute(select(outbox.outbox_table.c.published_at)
                            .where(outbox.outbox_table.c.event_id == event_id)).scalar() is not None


def open_proposal(store) -> str:
    return outbox_events(store, "project.proposed")[-1]["subject"]


def closed_because(store, reason):
    return [e for e in outbox_events(store, "project.closed") if e["data"]["project"]["closed_reason"] == reason]


def count(store, model):
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(model)).scalar()


def test_registrations_give_explained_suggestions_and_a_proposal(store, engine, trio, event_tap, member_events):
    tap = event_tap("match.suggested", "project.*")
    supplier, it, carrier = trio
    for member in trio:
        assert apply(store, engine, member_events.registered(member))
    # First with TraceSoft only, then with the carrier too.
    first, suggested = tap.wait("match.suggested", subject=supplier["id"], count=2)
    assert [s["partner_name"] for s in first["data"]["suggestions"]] == ["TraceSoft GmbH"]
    names = [s["partner_name"] for s in suggested["data"]["suggestions"]]
    assert set(names) == {"TraceSoft GmbH", "Neckar Gefahrgut GmbH"}
    first = suggested["data"]["suggestions"][0]
    assert first["rank"] == 1 and first["reasons"][0]["kind"] == "need_met" and first["parts"]["need_coverage"] > 0
    # Around the supplier: not with TraceSoft alone (half of its needs), but once the carrier
    # covers the transport too - one proposal, not one replaced minutes later.
    [proposed] = tap.wait("project.proposed")
    assert len(outbox_events(store, "project.proposed")) == 1 and not outbox_events(store, "project.closed")
    project = proposed["data"]["project"]
    assert project["need_coverage"] == 1.0
    assert project["anchor_id"] == supplier["id"] and project["status"] == "proposed"
    assert project["members"][0]["member_id"] == supplier["id"]
    assert {m["member_id"] for m in project["members"]} == {supplier["id"], it["id"], carrier["id"]}
    assert all(m["response"] == "pending" for m in project["members"])
    with store.unit_of_work() as uow:
        stored = queries.suggestions_of(uow.session, ADMIN, supplier["id"])
    assert [s["partner_id"] for s in stored["suggestions"]] == [s["partner_id"] for s in
                                                                suggested["data"]["suggestions"]]


def test_a_redelivered_or_stale_event_changes_nothing(store, engine, trio, member_events):
    supplier, it, _ = trio
    event = member_events.registered(supplier)
    assert apply(store, engine, event)
    assert not apply(store, engine, event)  # the inbox knows it
    apply(store, engine, member_events.registered(it))
    before = len(outbox_events(store))
    older = {**supplier, "version": 1, "name": "Old Name"}
    assert apply(store, engine, member_events.updated(older, ["name"]))  # handled, but version 1 is not newer
    with store.unit_of_work() as uow:
        assert uow.session.get(MemberProfile, supplier["id"]).profile["name"] == "Zellwerk GmbH"
    assert len(outbox_events(store)) == before


def test_suggestions_are_announced_again_only_when_they_changed(store, engine, trio, member_events):
    supplier, it, carrier = trio
    for member in trio:
        apply(store, engine, member_events.registered(member))
    announced = len(outbox_events(store, "match.suggested"))
    # A new e-mail address changes nobody's suggestions.
    new_address = {**it, "version": 2, "contact": {**it["contact"], "email": "new@it.example"}}
    apply(store, engine, member_events.updated(new_address, ["contact"]))
    assert len(outbox_events(store, "match.suggested")) == announced
    # A new name does: the members who see TraceSoft hear of it.
    apply(store, engine, member_events.updated({**it, "version": 3, "name": "TraceSoft Solutions GmbH"}, ["name"]))
    renamed = outbox_events(store, "match.suggested")[announced:]
    assert {e["subject"] for e in renamed} == {supplier["id"]}
    assert "TraceSoft Solutions GmbH" in {s["partner_name"] for s in renamed[0]["data"]["suggestions"]}


def test_a_list_fingerprinted_in_the_earlier_form_is_not_announced_again(store, engine, trio, member_events):
    for member in trio:
        apply(store, engine, member_events.registered(member))
    ids = [member["id"] for member in trio]
    announced = len(outbox_events(store, "match.suggested"))

    def earlier_form(suggestions):  # as stored until 2026-12: hex SHA-256 of the standard library's JSON
        return hashlib.sha256(json.dumps(suggestions, sort_keys=True, ensure_ascii=False).encode()).hexdigest()

    with store.unit_of_work() as uow:
        rows = uow.session.execute(select(SuggestionSet).where(SuggestionSet.member_id.in_(ids))).scalars().all()
        assert len(rows) == 3
        for row in rows:
            row.fingerprint = earlier_form(row.suggestions)
        rows[0].fingerprint = earlier_form([])  # told something else: this one is news
    with store.unit_of_work() as uow:
        assert services.publish_suggestions(uow, engine, ids) == 1
    assert [e["subject"] for e in outbox_events(store, "match.suggested")[announced:]] == [rows[0].member_id]
    with store.unit_of_work() as uow:  # every fingerprint now in the new form
        for row in uow.session.execute(select(SuggestionSet).where(SuggestionSet.member_id.in_(ids))).scalars():
            assert row.fingerprint == domain.fingerprint(row.suggestions) and len(row.fingerprint) == 43


def test_a_deleted_member_is_forgotten_everywhere(store, engine, trio, member_events):
    supplier, it, carrier = trio
    for member in trio:
        apply(store, engine, member_events.registered(member))
    proposal_id = open_proposal(store)
    apply(store, engine, member_events.deleted(it["id"], 2))
    [closed] = closed_because(store, "member_deleted")
    members = closed["data"]["project"]["members"]
    assert closed["data"]["project"]["closed_reason"] == "member_deleted"
    assert [m.get("name") for m in members if m["member_id"] == it["id"]] == [None]  # no name of the leaver
    latest = {e["subject"]: e for e in outbox_events(store, "match.suggested")}
    assert it["id"] not in {s["partner_id"] for s in latest[supplier["id"]]["data"]["suggestions"]}
    with store.unit_of_work() as uow:
        assert uow.session.get(SuggestionSet, it["id"]) is None
        assert uow.session.get(Proposal, proposal_id) is None
        tombstone = uow.session.get(MemberProfile, it["id"])
        assert tombstone.deleted and tombstone.profile is None
        kept = uow.session.get(MemberProfile, supplier["id"]).profile
        assert kept["contact"] == {"language": "de"}  # no contact data in the read model
        with pytest.raises(NotFound):
            queries.suggestions_of(uow.session, ADMIN, it["id"])
    # Published events that named it are gone from the outbox's history.
    assert not [e for e in outbox_events(store) if it["id"] in json.dumps(e) and e["type"] == "match.suggested"
                and outbox_published(store, e["id"])]
    # A late update of the deleted member does not bring it back.
    apply(store, engine, member_events.updated({**it, "version": 2}, ["name"]))
    assert it["id"] not in engine


def test_all_accept_forms_the_project(store, engine, trio, member_events):
    for member in trio:
        apply(store, engine, member_events.registered(member))
    proposal_id = open_proposal(store)
    for i, member in enumerate(trio):
        principal = Principal(member["id"], "member", member_id=member["id"])
        with store.unit_of_work() as uow:
            result = services.respond(uow, principal, proposal_id, {"response": "accept"})
        assert result["status"] == ("formed" if i == 2 else "proposed")
    [formed] = outbox_events(store, "project.formed")
    assert {m["response"] for m in formed["data"]["project"]["members"]} == {"accepted"}
    with store.unit_of_work() as uow, pytest.raises(Conflict):
        services.respond(uow, ADMIN, proposal_id, {"response": "decline", "member_id": trio[0]["id"]})


def test_a_decline_closes_the_proposal_and_the_pairing_is_not_proposed_again(store, engine, trio, profile,
                                                                             member_events):
    supplier, it, carrier = trio
    for member in trio:
        apply(store, engine, member_events.registered(member))
    proposal_id = open_proposal(store)
    outsider = Principal("x", "member", member_id="someone-else")
    with store.unit_of_work() as uow, pytest.raises(Forbidden):
        services.respond(uow, outsider, proposal_id, {"response": "accept"})
    with store.unit_of_work() as uow, pytest.raises(Unprocessable):
        services.respond(uow, ADMIN, proposal_id, {"response": "accept"})
    with store.unit_of_work() as uow:
        services.respond(uow, ADMIN, proposal_id, {"response": "accept", "member_id": supplier["id"]})
        again = services.respond(uow, ADMIN, proposal_id, {"response": "accept", "member_id": supplier["id"]})
    assert again["status"] == "proposed"
    with store.unit_of_work() as uow:
        result = services.respond(uow, Principal("c", "member", member_id=carrier["id"]), proposal_id,
                                  {"response": "decline"})
    assert result["status"] == "closed" and result["closed_reason"] == "declined"
    [closed] = closed_because(store, "declined")
    assert closed["subject"] == proposal_id
    assert count(store, DeclinedPair) == 2
    # The supplier changes its needs: a new proposal may come, but never with the carrier again.
    other_carrier = profile(name="Elbe Batterielogistik", sector="logistics", offers=["lithium-battery-transport"])
    apply(store, engine, member_events.registered(other_carrier))
    new_topics = {**supplier, "version": 2, "topics": ["battery-value-chain"]}
    apply(store, engine, member_events.updated(new_topics, ["topics"]))
    proposals = outbox_events(store, "project.proposed")
    members = {m["member_id"] for m in proposals[-1]["data"]["project"]["members"]}
    assert carrier["id"] not in members and other_carrier["id"] in members


def test_withdrawn_consent_closes_open_proposals(store, engine, trio, member_events):
    for member in trio:
        apply(store, engine, member_events.registered(member))
    it = trio[1]
    withdrawn = {**it, "version": 2, "consent": {"suggest_as_partner": False, "email": True}}
    apply(store, engine, member_events.updated(withdrawn, ["consent"]))
    [closed] = closed_because(store, "consent_withdrawn")
    assert it["id"] in {m["member_id"] for m in closed["data"]["project"]["members"]}


def test_a_second_instance_catches_up_from_the_read_model(store, engine, trio, member_events):
    for member in trio:
        apply(store, engine, member_events.registered(member))
    other_instance = Engine()
    with store.unit_of_work() as uow:
        services.load_engine(uow, other_instance)
    supplier = trio[0]
    apply(store, engine, member_events.updated({**supplier, "version": 2, "needs": []}, ["needs"]))
    with store.unit_of_work() as uow:
        services.catch_up(uow, other_instance)
    assert other_instance.card(supplier["id"]).needs == ()
    assert other_instance.suggestions(supplier["id"]) == engine.suggestions(supplier["id"])


def test_the_read_model_is_rebuilt_from_member_pages(store, engine, trio, profile, member_events):
    supplier, it, carrier = trio
    ghost = profile(name="Ghost GmbH", sector="it", offers=["traceability-software"])
    apply(store, engine, member_events.registered(ghost))  # known here, gone at members-service
    newer_it = {**it, "version": 4, "name": "TraceSoft AG"}
    with store.unit_of_work() as uow:
        result = services.rebuild_read_model(uow, engine, [[supplier, newer_it], [carrier]])
    assert result == {"fetched": 3, "stored": 3, "forgotten": 1}
    with store.unit_of_work() as uow:
        services.load_engine(uow, engine)
        announced = services.refresh_all(uow, engine)
    assert announced == 3
    assert ghost["id"] not in engine and engine.card(it["id"]).name == "TraceSoft AG"
    with store.unit_of_work() as uow:
        assert services.refresh_all(uow, engine) == 0  # nothing changed since


def test_a_rebuild_stores_the_free_texts_analyses_and_the_next_one_reads_them(store, engine, profile,
                                                                                member_events):
    """The first load analyses the free-text labels and stores them (not a label that names its
    term); the next load takes the stored analyses, not its own, and finds the same suggestions.
    A stored analysis of another vocabulary digest is not used."""
    from matching import analyses
    from matching.models import TextAnalysis

    members = [profile(sector="automotive", offers=["~Aluminium-Druckguss für Batteriegehäuse"],
                       needs=["~Rückverfolgbarkeit der Chargen", "traceability-software"]),
               profile(sector="it", offers=["~Rückverfolgbarkeit von Chargen in der Cloud"],
                       needs=["~Druckguss aus Aluminium"])]
    for member in members:
        apply(store, engine, member_events.registered(member))
    first = Engine()
    with store.unit_of_work() as uow:
        services.load_engine(uow, first)
    with store.unit_of_work() as uow:
        stored = {row.text: row for row in uow.session.execute(select(TextAnalysis)).scalars()}
    assert set(stored) == {"Aluminium-Druckguss für Batteriegehäuse", "Rückverfolgbarkeit der Chargen",
                           "Rückverfolgbarkeit von Chargen in der Cloud", "Druckguss aus Aluminium"}
    label = "Druckguss aus Aluminium"
    assert json.loads(stored[label].tokens) == sorted(first.text.tokens(label))
    assert [p for p, _ in first.suggestions(members[0]["id"])] == [members[1]["id"]]

    # The next load reads them: a stored analysis is what it uses (here one changed on purpose).
    with store.unit_of_work() as uow:
        uow.session.get(TextAnalysis, analyses.analysis_key(first.text.digest, label)).tokens = '["zeppelin"]'
    second = Engine()
    with store.unit_of_work() as uow:
        services.load_engine(uow, second)
    assert "w:zeppelin" in second.feature_of
    assert not second.text._known  # forgotten after the load

    # Another vocabulary (digest): the stored analyses are not its own.
    third = Engine()
    third.text.digest = "another-vocabulary"
    with store.unit_of_work() as uow:
        services.load_engine(uow, third)
    assert "w:zeppelin" not in third.feature_of
    assert [p for p, _ in third.suggestions(members[0]["id"])] == [p for p, _ in first.suggestions(members[0]["id"])]
    with store.unit_of_work() as uow:
        assert uow.session.execute(select(func.count()).select_from(TextAnalysis)).scalar_one() == 8


def test_organizers_ask_for_consortia_around_a_member_or_topic(store, engine, trio, profile, member_events):
    supplier, it, carrier = ({**m, "topics": ["battery-value-chain"]} for m in trio)
    for member in (supplier, it, carrier):
        apply(store, engine, member_events.registered(member))
    with store.unit_of_work() as uow:
        with pytest.raises(NotFound):
            services.propose(uow, engine, {"member_id": "no-such-member", "topic": None})
        with pytest.raises(Unprocessable):
            services.propose(uow, engine, {"member_id": None, "topic": "no-such-topic"})
    second_it = profile(name="Batteriepass IT GmbH", sector="it", offers=["traceability-software"], needs=[],
                        topics=["battery-value-chain"])
    apply(store, engine, member_events.registered(second_it))
    with store.unit_of_work() as uow:
        by_topic = services.propose(uow, engine, {"member_id": None, "topic": "battery-value-chain"})
    assert by_topic["topic"] == "battery-value-chain"
    # The team proposed at registration is not proposed again: the new IT house takes the IT seat.
    assert {m["member_id"] for m in by_topic["members"]} == {supplier["id"], second_it["id"], carrier["id"]}
    # Asked again: a team never proposed before, or none.
    earlier = {frozenset(m["member_id"] for m in e["data"]["project"]["members"])
               for e in outbox_events(store, "project.proposed")}
    with store.unit_of_work() as uow:
        try:
            again = services.propose(uow, engine, {"member_id": supplier["id"], "topic": None})
        except Unprocessable:
            again = None
    assert again is None or frozenset(m["member_id"] for m in again["members"]) not in earlier


def test_lookups_in_one_transaction_count_the_proposals_it_makes_and_closes(store):
    """Proposals made in one event see the invitations made before them in the same event."""
    a, b, c, d = (str(uuid.uuid4()) for _ in range(4))

    def consortium(*members):
        return {"anchor_id": members[0], "topic": None, "title": "t", "score": 0.5, "need_coverage": 0.5,
                "explanation": [], "members": [{"member_id": m, "name": m[:8], "sector": "it"} for m in members]}

    with store.unit_of_work() as uow:
        lookups = queries.Lookups(uow.session)
        services.create_proposal(uow, consortium(a, b), lookups)
        assert lookups.busy_among([a, b, c, d]) == set()  # read now: b is invited once
        assert lookups.teams_of(c) == set()
        services.create_proposal(uow, consortium(c, b), lookups)
        third = services.create_proposal(uow, consortium(d, b, c), lookups)
        assert lookups.busy_among([a, b, c, d]) == {b}
        assert lookups.teams_of(c) == {frozenset((b, c)), frozenset((b, c, d))}
        fresh = queries.Lookups(uow.session)
        assert fresh.busy_among([a, b, c, d]) == {b} and fresh.teams_of(c) == lookups.teams_of(c)
        # Closed: b is free again, and the team still counts as proposed before.
        services.close_proposals(uow, reason="superseded", only=uow.session.get(Proposal, third["id"]),
                                 lookups=lookups)
        assert lookups.busy_among([b]) == set() == queries.Lookups(uow.session).busy_among([b])
        assert frozenset((b, c, d)) in lookups.teams_of(d)
        uow.session.add(DeclinedPair(member_a=min(a, c), member_b=max(a, c), declined_at=envelope.utcnow()))
        uow.session.flush()
        declined = queries.Lookups(uow.session)
        assert declined.declined_among([a, b, c]) == {frozenset((a, c))}
        assert declined.declined_among([a, b]) == set()  # known now, and c is not among them


def test_no_member_is_invited_beyond_the_limit_when_one_event_makes_several_proposals(store, engine, member_events):
    """Many registrations, several proposals per event: a partner is only added to a team while it
    has fewer than MAX_OPEN_INVITATIONS open invitations (replayed from the events, in order)."""
    from matching.synthetic import ProfileFactory

    # The outbox is what is checked.
    quiet = Store(store.engine, store.relay, after_commit=lambda: None, source=store.source)
    most_in_one_event = 0
    for member in ProfileFactory(seed=11).profiles(80):
        before = count(quiet, Proposal)
        apply(quiet, engine, member_events.registered(member))
        most_in_one_event = max(most_in_one_event, count(quiet, Proposal) - before)
    open_invitations: dict[str, int] = {}
    members_of: dict[str, list[str]] = {}
    reached_limit = False
    for event in outbox_events(quiet):
        if event["type"] == "project.proposed":
            project = event["data"]["project"]
            members = [m["member_id"] for m in project["members"]]
            for partner in members[1:]:
                assert open_invitations.get(partner, 0) < domain.MAX_OPEN_INVITATIONS
            for member_id in members:
                open_invitations[member_id] = open_invitations.get(member_id, 0) + 1
                reached_limit |= open_invitations[member_id] >= domain.MAX_OPEN_INVITATIONS
            members_of[project["id"]] = members
        elif event["type"] == "project.closed":
            for member_id in members_of[event["data"]["project"]["id"]]:
                open_invitations[member_id] -= 1
    assert reached_limit and most_in_one_event >= 2  # the rule mattered, within single events too


def test_the_registering_member_hears_of_its_partners_first(store, engine, member_events):
    """Of the lists one registration changes, the newcomer's own goes out first: it is the one
    waiting for its suggestions; the members it joined the lists of follow in id order."""
    from matching.synthetic import ProfileFactory

    # The outbox is what is checked.
    quiet = Store(store.engine, store.relay, after_commit=lambda: None, source=store.source)
    checked = 0
    for member in ProfileFactory(seed=5).profiles(40):
        seen = len(outbox_events(quiet, "match.suggested"))
        apply(quiet, engine, member_events.registered(member))
        subjects = [event["subject"] for event in outbox_events(quiet, "match.suggested")[seen:]]
        if member["id"] in subjects and len(subjects) > 1:
            assert subjects[0] == member["id"]
            assert subjects[1:] == sorted(subjects[1:])
            checked += 1
    assert checked >= 10  # most registrations changed the newcomer's list and others


def test_a_v2_profile_is_kept_without_the_contact_person_and_its_ciphertext(store, engine):
    from verbund import personal
    from verbund.testing import member_event_v2, member_profile

    profile = member_profile()
    assert apply(store, engine, member_event_v2(profile, personal.new_key())) is True
    with store.unit_of_work() as uow:
        kept = uow.session.get(MemberProfile, profile["id"]).profile
    assert "personal" not in kept and kept["contact"] == {"language": "de"} and kept["website"] is None
    assert kept["name"] == profile["name"]


def test_two_instances_storing_the_same_new_text_keep_one_vector_and_all_others(store):
    """Two instances embed the same new text (their events came together); the one that stores
    second keeps the stored vector and still stores its other texts, on either database (a plain
    INSERT failed its whole batch on the duplicate key)."""
    import numpy as np

    from matching import vectors
    from matching.models import TextVector
    from matching.semantic import MODEL, NEED, text_key

    def row(text, value):
        return {"key": text_key(NEED, text), "model": MODEL, "kind": NEED, "text": text,
                "vector": np.full(512, value, np.float32).tobytes()}

    with store.unit_of_work() as uow:
        vectors.store(uow.session, [row("Rückverfolgbarkeit", 0.1)])
    with store.unit_of_work() as uow:
        vectors.store(uow.session, [row("Rückverfolgbarkeit", 0.2), row("Leerfahrten vermeiden", 0.2)])
    with store.unit_of_work() as uow:
        stored = {r.text: float(np.frombuffer(r.vector, np.float32)[0]) for r in uow.session.execute(
            select(TextVector.text, TextVector.vector).where(TextVector.kind == NEED))}
    assert stored == pytest.approx({"Rückverfolgbarkeit": 0.1, "Leerfahrten vermeiden": 0.2})


def test_vectors_stored_as_float32_are_converted_to_float16_and_back(database_url):
    """Migration 0003 rewrites the vectors stored before it as float16 (the store reads both), and its
    downgrade restores float32 ones."""
    import numpy as np
    from alembic import command
    from sqlalchemy import column, insert, table

    from matching import vectors
    from matching.semantic import MODEL, NEED, text_key
    from verbund import migrations
    from verbund.database import make_engine

    migrations.upgrade("matching", database_url, "0002")
    rows = table("text_vectors", *(column(name) for name in ("key", "model", "kind", "text", "vector")))
    vector = np.random.default_rng(3).standard_normal(512).astype(np.float32)
    vector /= np.linalg.norm(vector)
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(insert(rows).values(key=text_key(NEED, "Leerfahrten vermeiden"), model=MODEL, kind=NEED,
                                             text="Leerfahrten vermeiden", vector=vector.tobytes()))
        assert vectors.decode([vector.tobytes()])[0].tolist() == vector.astype(np.float16).tolist()
        migrations.upgrade("matching", database_url)
        with engine.connect() as conn:
            [stored] = conn.execute(select(rows.c.vector)).scalars().all()
        assert len(stored) == 1024 and np.frombuffer(stored, np.float16).tolist() == vector.astype(np.float16).tolist()
        command.downgrade(migrations.alembic_config("matching", database_url), "0002")
        with engine.connect() as conn:
            [stored] = conn.execute(select(rows.c.vector)).scalars().all()
        assert len(stored) == 2048
        assert np.frombuffer(stored, np.float32) == pytest.approx(vector, abs=1e-3)
    finally:
        engine.dispose()
    with pytest.raises(ValueError, match="a stored vector of 12 bytes"):
        vectors.decode([b"x" * 12])
