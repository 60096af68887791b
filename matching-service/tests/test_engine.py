"""The matching engine and its text analysis, without I/O: scoring, explanations,
incremental updates against a full rebuild, and consortia."""
import random

import pytest

from matching.engine import WEIGHTS, Engine, tiebreak
from matching.engine.explanation import fit_band
from matching.synthetic import ProfileFactory
from matching.text import TextAnalyzer, stem
from verbund.vocabulary import load as load_vocabulary


@pytest.fixture(scope="module")
def text():
    return TextAnalyzer(load_vocabulary())


@pytest.fixture
def engine():
    return Engine()


def terms(resolved):
    return [term for term, _ in resolved]


# --- reading German and English labels -------------------------------------------------------------

def test_labels_and_synonyms_in_both_languages_name_the_same_term(text):
    assert text.resolve("Rückverfolgbarkeit") == text.resolve("traceability system") == \
        (("traceability-software", 1.0),)
    assert text.resolve("Gefahrgutlogistik") == (("dangerous-goods-transport", 1.0),)


def test_a_compound_word_finds_the_term_it_is_part_of(text):
    resolved = text.resolve("Batteriezelle")
    assert terms(resolved)[0] == "battery-cell-manufacturing"
    assert 0.5 <= resolved[0][1] < 1.0  # similar, not the same


def test_free_text_keeps_stems_and_compound_parts(text):
    assert stem("Zellen".casefold()) == stem("zelle") == "zell"
    assert {"aluminium", "strangpressprofil"} <= text.tokens("Aluminiumstrangpressprofile")
    assert {"aluminium", "strangpressprofil"} <= text.tokens("Strangpressprofile aus Aluminium")
    assert "software" not in text.tokens("Software für die Lagerverwaltung")  # too common to say anything


def test_unrelated_free_text_links_to_no_term(text):
    assert text.resolve("Etwas ganz Eigenes") == ()


# --- suggestions ---------------------------------------------------------------------------------------

def test_a_partner_from_another_sector_is_suggested_with_reasons(engine, profile):
    supplier = profile(name="Zulieferer", sector="automotive", needs=["traceability-software"],
                       offers=["battery-cell-manufacturing"])
    it = profile(name="Trace IT", sector="it", offers=[{"term": None, "label": "traceability system",
                                                       "description": None}],
                 region={"state": "BW", "postcode": "70199", "city": "Stuttgart"})
    same_sector = profile(name="Konkurrent", sector="automotive", offers=["traceability-software"])
    engine.load([supplier, it, same_sector])
    assert [partner for partner, _ in engine.suggestions(supplier["id"])] == [it["id"]]
    suggestion = engine.explain(supplier["id"], it["id"])
    assert suggestion["partner_name"] == "Trace IT" and suggestion["partner_sector"] == "it"
    [need_met] = [r for r in suggestion["reasons"] if r["kind"] == "need_met"]
    assert need_met["need"] == "Rückverfolgbarkeitssoftware" and need_met["offer"] == "traceability system"
    assert need_met["term"] == "traceability-software" and "Ihr Bedarf" in need_met["text"]
    assert {r["kind"] for r in suggestion["reasons"]} >= {"need_met", "region", "sme"}
    assert suggestion["parts"]["need_coverage"] == WEIGHTS["need_coverage"]
    assert suggestion["score"] == pytest.approx(sum(suggestion["parts"].values()), abs=1e-3)


def test_only_consenting_partners_appear(engine, profile):
    member = profile(sector="automotive", needs=["wms"])
    shy = profile(sector="it", offers=["wms"], consent={"suggest_as_partner": False, "email": True})
    engine.load([member, shy])
    assert engine.suggestions(member["id"]) == []
    # It is not shown to others, but still hears of partners: the member needs what it offers.
    assert [p for p, _ in engine.suggestions(shy["id"])] == [member["id"]]


def test_need_coverage_counts_each_need_once_and_both_directions_count(engine, profile):
    member = profile(sector="automotive", needs=["wms", "tms"], offers=["jis-sequencing"])
    one_need = profile(name="one", sector="it", offers=["wms"])
    both_needs = profile(name="both", sector="it", offers=["wms", "tms"])
    wants_us = profile(name="customer", sector="logistics", needs=["jis-sequencing"])
    engine.load([member, one_need, both_needs, wants_us])
    ranked = [engine.card(p).name for p, _ in engine.suggestions(member["id"])]
    assert ranked.index("both") < ranked.index("one")
    customer = engine.explain(member["id"], wants_us["id"])
    assert customer["parts"]["offer_coverage"] == WEIGHTS["offer_coverage"]
    assert customer["parts"]["need_coverage"] == 0
    assert [r["kind"] for r in customer["reasons"]][0] == "offer_wanted"


def test_related_terms_count_less_than_the_term_itself(engine, profile):
    member = profile(sector="automotive", needs=["lithium-battery-transport"])
    exact = profile(name="exact", sector="logistics", offers=["lithium-battery-transport"])
    related = profile(name="related", sector="logistics", offers=["dangerous-goods-transport"])
    engine.load([member, exact, related])
    ranked = [engine.card(p).name for p, _ in engine.suggestions(member["id"])]
    assert ranked == ["exact", "related"]
    [reason] = [r for r in engine.explain(member["id"], related["id"])["reasons"] if r["kind"] == "need_met"]
    assert reason["match"] == "related" and reason["strength"] == pytest.approx(0.4)
    # how they are linked travels with the reason: the need's own term, related to the offer's
    assert (reason["via"], reason["term"]) == ("lithium-battery-transport", "dangerous-goods-transport")
    assert "(verwandte Themen: " in reason["text"]


def test_a_shared_word_alone_says_it_is_only_that_word_as_written(engine, profile):
    member = profile(sector="automotive", needs=["~Reparatur alter Hydraulikpressen"])
    carrier = profile(name="carrier", sector="logistics", offers=["~Transport schwerer Hydraulikpressen"],
                      contact={"name": "C", "email": "c@example.org", "language": "en"})
    engine.load([member, carrier])
    [reason] = [r for r in engine.explain(member["id"], carrier["id"])["reasons"] if r["kind"] == "need_met"]
    assert reason["match"] == "word" and reason["via"] == "Hydraulikpressen"  # not its stem
    assert reason["text"].endswith("(nur das gemeinsame Wort „Hydraulikpressen“)")
    [wanted] = [r for r in engine.explain(carrier["id"], member["id"])["reasons"] if r["kind"] == "offer_wanted"]
    assert wanted["text"].endswith("(only the shared word “Hydraulikpressen”)")


def test_a_weak_link_by_meaning_is_called_loose_not_partly(engine):
    assert [fit_band(s) for s in (0.05, 0.44, 0.45, 0.75)] == ["loosely", "loosely", "well", "very_well"]
    de = engine._semantic_reason("need_met", "Computer Vision Qualitätsprüfung", "OPC UA for old machines", 0.05,
                                 de=True)
    assert de["fit"] == "loosely"
    assert de["text"] == ("Ihr Bedarf „Computer Vision Qualitätsprüfung“ passt inhaltlich nur entfernt zu deren "
                          "Angebot „OPC UA for old machines“ (Stärke 5 %)")
    en = engine._semantic_reason("offer_wanted", "Computer Vision Qualitätsprüfung", "OPC UA for old machines", 0.8,
                                 de=False)
    assert en["text"] == ("Your offer “OPC UA for old machines” and their need “Computer Vision Qualitätsprüfung”: "
                          "a very close fit in substance (strength 80%)")


def test_free_text_meets_free_text_and_compounds_meet_terms(engine, profile):
    member = profile(sector="automotive", needs=["~Strangpressprofile aus Aluminium", "~Batteriezelle"])
    extruder = profile(name="extruder", sector="logistics", offers=["~Aluminiumstrangpressprofile"])
    cells = profile(name="cells", sector="it", offers=["battery-cell-manufacturing"])
    engine.load([member, extruder, cells])
    assert {engine.card(p).name for p, _ in engine.suggestions(member["id"])} == {"extruder", "cells"}
    [reason] = [r for r in engine.explain(member["id"], cells["id"])["reasons"] if r["kind"] == "need_met"]
    assert reason["match"] == "similar" and reason["need"] == "Batteriezelle"


def test_region_and_sme_break_otherwise_equal_scores(engine, profile):
    member = profile(sector="automotive", needs=["wms"], region={"state": "BW", "postcode": "70173", "city": "S"})
    far_large = profile(name="far large", sector="it", offers=["wms"],
                        region={"state": "HH", "postcode": "20095", "city": "H"},
                        size={"employees": 900, "turnover_eur": None, "balance_sheet_eur": None, "sme": False,
                              "category": "large"})
    far_sme = profile(name="far sme", sector="it", offers=["wms"], region={"state": "HH", "postcode": "20095",
                                                                            "city": "H"})
    near_sme = profile(name="near sme", sector="it", offers=["wms"], region={"state": "BW", "postcode": "70565",
                                                                              "city": "S"})
    neighbour = profile(name="neighbour", sector="it", offers=["wms"], region={"state": "BY", "postcode": "80331",
                                                                                "city": "M"})
    engine.load([member, far_large, far_sme, near_sme, neighbour])
    ranked = [engine.card(p).name for p, _ in engine.suggestions(member["id"])]
    assert ranked == ["near sme", "neighbour", "far sme", "far large"]
    # the region reason has its parts, so that pages word it in their own language
    regions = {engine.card(p).name: [r for r in engine.explain(member["id"], p)["reasons"] if r["kind"] == "region"]
               for p, _ in engine.suggestions(member["id"])}
    [near] = regions["near sme"]
    assert (near["level"], near["state"], near["postcode_prefix"]) == ("same_postcode_area", "BW", "70")
    [neighbour_reason] = regions["neighbour"]
    assert (neighbour_reason["level"], neighbour_reason["state"]) == ("neighbouring_state", "BY")
    assert neighbour_reason["text"] == "Benachbartes Bundesland (Bayern)"  # the service's own text stays
    assert regions["far sme"] == []


def test_the_index_finds_what_a_pairwise_loop_finds():
    profiles = ProfileFactory(seed=3).profiles(1500)
    engine = Engine()
    engine.load(profiles)
    for member in random.Random(5).sample(profiles, 60):
        a = engine.card(member["id"])
        scored = []
        for other in profiles:
            b = engine.card(other["id"])
            if b.sector != a.sector and b.consent:
                pair = engine.pair(a, b)
                if pair["matches"]:
                    scored.append((pair["score"] + tiebreak(b.id), b.id))
        scored.sort(reverse=True)
        expected = [(member_id, round(score, 4)) for score, member_id in scored[:engine.k]]
        assert engine.suggestions(a.id) == expected


def _mutations(factory, profiles, rng, count):
    """Random registrations, profile changes (needs, consent, sector) and deletions."""
    live = {p["id"]: p for p in profiles}
    for _ in range(count):
        roll = rng.random()
        if roll < 0.4 or not live:
            new = factory.profile()
            live[new["id"]] = new
            yield "upsert", new
        elif roll < 0.85:
            current = live[rng.choice(sorted(live))]
            changed = factory.profile()
            changed.update(id=current["id"], version=current["version"] + 1, name=current["name"])
            if rng.random() < 0.3:
                changed["consent"] = {"suggest_as_partner": not current["consent"]["suggest_as_partner"],
                                      "email": True}
            live[changed["id"]] = changed
            yield "upsert", changed
        else:
            gone = rng.choice(sorted(live))
            del live[gone]
            yield "remove", gone


def test_incremental_updates_end_where_a_full_rebuild_ends():
    factory = ProfileFactory(seed=11)
    profiles = factory.profiles(800)
    engine = Engine()
    engine.load(profiles)
    live = {p["id"]: p for p in profiles}
    for action, value in _mutations(factory, profiles, random.Random(13), 400):
        if action == "upsert":
            live[value["id"]] = value
            changes = engine.upsert(value)
            assert value["id"] in changes.lists
        else:
            del live[value]
            changes = engine.remove(value)
            assert value in changes.removed
    rebuilt = Engine()
    rebuilt.load(live.values())
    assert len(engine) == len(rebuilt) == len(live)
    for member_id in live:
        assert [p for p, _ in engine.suggestions(member_id)] == [p for p, _ in rebuilt.suggestions(member_id)]
        assert [s for _, s in engine.suggestions(member_id)] == pytest.approx(
            [s for _, s in rebuilt.suggestions(member_id)], abs=1e-4)


def test_a_newcomer_enters_the_lists_it_now_tops(engine, profile):
    needers = [profile(name=f"needs wms {i}", sector="automotive", needs=["wms"]) for i in range(3)]
    engine.load(needers)
    newcomer = profile(name="wms house", sector="it", offers=["wms"])
    changes = engine.upsert(newcomer)
    assert set(changes.lists) == {newcomer["id"], *(n["id"] for n in needers)}
    for needer in needers:
        assert changes.lists[needer["id"]][0][0] == newcomer["id"]
    # A change that does not touch matching leaves the others' rankings as they are (they are
    # reported, as they show the member, and the service finds nothing new to tell).
    renamed = {**newcomer, "version": 2, "contact": {**newcomer["contact"], "email": "new@example.org"}}
    before = {n["id"]: engine.suggestions(n["id"]) for n in needers}
    changes = engine.upsert(renamed)
    assert {member: changes.lists[member] for member in before} == before
    withdrawn = {**renamed, "version": 3, "consent": {"suggest_as_partner": False, "email": True}}
    changes = engine.upsert(withdrawn)
    assert all(changes.lists[n["id"]] == [] for n in needers)


# --- consortia ------------------------------------------------------------------------------------------

def test_a_consortium_covers_the_needs_jointly_across_three_sectors(engine, profile):
    anchor = profile(name="Zellwerk", sector="automotive",
                     needs=["traceability-software", "mes", "lithium-battery-transport"])
    # Pairwise, the two IT houses score best; together they cover no more than one of them.
    it_a = profile(name="IT A", sector="it", offers=["traceability-software", "mes"])
    it_b = profile(name="IT B", sector="it", offers=["traceability-software", "mes"],
                   region={"state": "BW", "postcode": "70173", "city": "Stuttgart"})
    carrier = profile(name="Carrier", sector="logistics", offers=["lithium-battery-transport"],
                      region={"state": "HH", "postcode": "20095", "city": "Hamburg"})
    engine.load([anchor, it_a, it_b, carrier])
    top_two = [engine.card(p).name for p, _ in engine.suggestions(anchor["id"])[:2]]
    assert set(top_two) == {"IT A", "IT B"}
    proposal = engine.propose(anchor["id"])
    names = [m["name"] for m in proposal["members"]]
    assert names[0] == "Zellwerk" and "Carrier" in names and len(names) == 3
    assert proposal["sectors"] == ["automotive", "it", "logistics"]
    assert proposal["need_coverage"] == 1.0
    covered = {r["need"]: r["member_id"] for r in proposal["explanation"] if r["kind"] == "need_covered"}
    assert covered["Lithiumbatterietransport" if "Lithiumbatterietransport" in covered else
                   next(n for n in covered if "atterie" in n)] == carrier["id"]


def test_declined_pairs_and_earlier_teams_are_not_proposed_again(engine, profile):
    anchor = profile(sector="automotive", needs=["wms", "lithium-battery-transport"])
    it = profile(name="IT", sector="it", offers=["wms"])
    carrier = profile(name="Carrier", sector="logistics", offers=["lithium-battery-transport"])
    other_carrier = profile(name="Other carrier", sector="logistics", offers=["lithium-battery-transport"],
                            region={"state": "SH", "postcode": "24103", "city": "Kiel"},
                            size={"employees": 900, "turnover_eur": None, "balance_sheet_eur": None,
                                  "sme": False, "category": "large"})
    engine.load([anchor, it, carrier, other_carrier])
    first = engine.propose(anchor["id"])
    assert {m["name"] for m in first["members"][1:]} == {"IT", "Carrier"}
    declined = {frozenset((carrier["id"], anchor["id"]))}
    second = engine.propose(anchor["id"], declined=declined)
    assert {m["name"] for m in second["members"][1:]} == {"IT", "Other carrier"}
    team = frozenset(m["member_id"] for m in second["members"])
    # What is left of a team proposed before is not proposed again: no new team without someone new.
    assert engine.propose(anchor["id"], declined=lambda ids: declined, proposed=lambda anchor_id: {team}) is None
    other_it = profile(name="Other IT", sector="it", offers=["wms"])
    engine.upsert(other_it)
    third = engine.propose(anchor["id"], declined=lambda ids: declined, proposed=lambda anchor_id: {team})
    assert {m["name"] for m in third["members"][1:]} == {"Other IT", "Other carrier"}
    assert engine.propose(anchor["id"], declined=declined,
                          proposed={team, frozenset(m["member_id"] for m in third["members"])}) is None


def test_no_consortium_without_consent_or_needs(engine, profile):
    shy = profile(sector="automotive", needs=["wms"], consent={"suggest_as_partner": False, "email": True})
    needless = profile(sector="automotive", needs=[])
    it = profile(sector="it", offers=["wms"])
    engine.load([shy, needless, it])
    assert engine.propose(shy["id"]) is None
    assert engine.propose(needless["id"]) is None


def test_a_consortium_around_a_topic(engine, profile):
    anchor = profile(name="H2 Tank", sector="automotive", needs=["alternative-fuels-transport"], topics=["hydrogen"])
    carrier = profile(name="H2 Carrier", sector="logistics", offers=["alternative-fuels-transport"],
                      topics=["hydrogen"])
    off_topic = profile(name="Other", sector="logistics", offers=["alternative-fuels-transport"],
                        topics=["e-mobility"])
    engine.load([anchor, carrier, off_topic])
    proposal = engine.propose_for_topic("hydrogen")
    assert [m["name"] for m in proposal["members"]] == ["H2 Tank", "H2 Carrier"]
    assert proposal["topic"] == "hydrogen" and proposal["title"] == "Partnerprojekt: Wasserstoff"
    assert engine.propose_for_topic("no-such-topic") is None


def test_scratch_stamps_start_again_before_they_overflow(engine, profile):
    from matching import kernel

    member = profile(sector="automotive", needs=["wms"])
    partner = profile(sector="it", offers=["wms"])
    engine.load([member, partner])
    engine._scratch_for().stamp[:] = kernel.STAMP_LIMIT + 1
    newcomer = profile(sector="logistics", offers=["wms"], needs=["wms"])
    changes = engine.upsert(newcomer)
    assert engine._scratch.stamp[0] < 10
    assert {p for p, _ in changes.lists[member["id"]]} == {partner["id"], newcomer["id"]}


def test_the_strengths_and_scores_the_consortia_use_are_those_of_the_explanation():
    """``need_strengths`` and ``pair_score`` (the consortia's fast path) give exactly what
    ``_best_matches`` and ``pair`` give, for every kind of match (terms, similar labels, words,
    related terms), so that a proposal is chosen as the explanation would score it."""
    profiles = ProfileFactory(seed=23, free_text_share=0.4, written_share=0.3).profiles(150)
    engine = Engine()
    engine.load(profiles)
    cards = [engine.card(p["id"]) for p in profiles]
    matched = 0
    for a in cards[:60]:
        for b in cards:
            strengths = engine.need_strengths(a, b)
            assert strengths == [m[0] for m in engine._best_matches(a, b)]
            assert engine.pair_score(a, b) == engine.pair(a, b)["score"]
            matched += any(s > 0 for s in strengths)
    assert matched > 500
