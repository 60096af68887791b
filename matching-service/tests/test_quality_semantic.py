"""Matching quality on the quality set written the way members write (matching-service/quality/):
the hybrid engine with the bundled embedding models on the TEST part, which the fitting never saw.

The floors are what the engine reached when this test was written (README: "Quality"), below the
issue's targets (recall@5 0.95, MRR 0.90, junk@3 0): a change that makes matching worse fails here."""
import pytest

from matching import quality
from matching.engine import Engine
from matching.semantic import NEED, OFFER, load_embedder
from matching.vectors import texts_of

# With the term bridge (README, "Needs in the members' own words"): recall@5 0.845, MRR 0.664, junk@3 5
# (without it 0.845 / 0.680 / 6).
RECALL_FLOOR = 0.84   # reached 0.845
MRR_FLOOR = 0.66      # reached 0.664
JUNK_CEILING = 5      # reached 5 (seekers with a distractor in their first three)


@pytest.fixture(scope="module")
def measured():
    embedder, status = load_embedder()
    assert embedder is not None, status  # the models ship in their wheels: they must load here
    qs = quality.load()
    space = embedder.space()
    pairs = sorted(texts_of(qs.profiles.values()))
    for kind in (NEED, OFFER):
        texts = [text for k, text in pairs if k == kind]
        space.add_vectors(kind, texts, embedder.embed(texts, kind))
    engine = Engine(semantic=space)
    engine.load(qs.profiles.values())
    key_of = qs.key_of()
    ranked = {key: [key_of[pid] for pid, _ in engine.suggestions(p["id"])] for key, p in qs.profiles.items()}
    return {part: quality.measure(ranked, qs.expected[part], qs.distractors[part]) for part in quality.PARTS}, \
        engine, qs


def test_the_set_is_big_mixed_and_split():
    qs = quality.load()
    assert len(qs.profiles) >= 150
    assert len(qs.expected["tuning"]) + len(qs.expected["test"]) >= 50
    assert not set(qs.expected["tuning"]) & set(qs.expected["test"])
    assert {p["sector"] for p in qs.profiles.values()} == {"automotive", "it", "logistics", "research"}
    assert {p["contact"]["language"] for p in qs.profiles.values()} == {"de", "en"}


def test_test_part_stays_where_it_was(measured):
    result = measured[0]["test"]
    print({k: v for k, v in result.items() if k not in ("missed",)})
    assert result["recall@5"] >= RECALL_FLOOR
    assert result["mrr"] >= MRR_FLOOR
    assert result["junk@3"] <= JUNK_CEILING


def test_semantic_reasons_are_plain_and_true(measured):
    _, engine, qs = measured
    seen = 0
    for profile in qs.profiles.values():
        for partner_id, _ in engine.suggestions(profile["id"]):
            for reason in engine.explain(profile["id"], partner_id)["reasons"]:
                if reason.get("match") != "semantic":
                    continue
                seen += 1
                # true: the two texts named are the member's and the partner's, and the model links them
                partner = engine.card(partner_id)
                mine = engine.card(profile["id"])
                if reason["kind"] == "need_met":
                    assert reason["need"] in [label for label, _ in mine.needs]
                    assert reason["offer"] in [label for label, _ in partner.offers]
                else:
                    assert reason["offer"] in [label for label, _ in mine.offers]
                    assert reason["need"] in [label for label, _ in partner.needs]
                assert engine.semantic.strength(reason["need"], reason["offer"]) == pytest.approx(
                    reason["strength"], abs=1e-3)
                # the band the pages word it by is the strength's
                assert reason["fit"] == ("very_well" if reason["strength"] >= 0.75 else
                                         "well" if reason["strength"] >= 0.45 else "loosely")
                assert ("passt inhaltlich" in reason["text"]) == (mine.language == "de")
                assert "%" in reason["text"]
    assert seen > 0


def test_needs_linked_through_a_term_name_it_truly(measured):
    """A need met through the term bridge says which term ("ähnlich wie „…“"), and it is true: the
    bridge links the need to that term (or the need resembles it in writing), and the offer names it
    or resembles it in writing and in meaning."""
    _, engine, qs = measured
    bridge, seen = engine.semantic.bridge, 0
    for profile in qs.profiles.values():
        for partner_id, _ in engine.suggestions(profile["id"]):
            for reason in engine.explain(profile["id"], partner_id)["reasons"]:
                if reason.get("match") != "similar":
                    continue
                term = engine.vocabulary.competencies[reason["term"]]
                (bridged,) = bridge.links(engine.semantic.vector(NEED, reason["need"])[None, :])
                need_written = dict(engine.text.resolve(reason["need"]))
                assert term.id in dict(bridged) or term.id in need_written, reason
                offer_written = dict(engine.text.resolve(reason["offer"]))
                assert term.id in offer_written, reason
                if term.id in dict(bridged) and offer_written[term.id] < 1.0:  # and the offer is about it in meaning
                    (close,) = bridge.offer_terms(engine.semantic.vector(OFFER, reason["offer"])[None, :])
                    assert term.id in close, reason
                language = engine.card(profile["id"]).language
                assert term.label(language) in reason["text"]
                seen += term.id in dict(bridged) and term.id not in need_written
    assert seen > 0  # the bridge made some of the matches


def test_a_need_that_names_a_term_is_not_bridged(measured):
    """A need that is a vocabulary term keeps that term alone: the bridge's neighbours of it would tie
    with its real partners. (The same text as free text is bridged.)"""
    _, engine, qs = measured
    label = qs.profiles["u_leerfahrt"]["needs"][0]["label"]
    free = engine.analyse(label, None, need=True)
    assert "digital-freight-platform" in {f.via for f in free if f.kind == "similar"}
    named = engine.analyse(label, "wms", need=True)
    assert [f.via for f in named if f.kind in ("term", "similar")] == ["wms"]


def test_an_everyday_need_meets_the_offer_through_its_term(measured):
    """Tuning part: "Unsere eigenen LKW fahren oft leer zurück" (no word in common with the offer)
    finds the freight exchange among its first three, with the term as the reason."""
    _, engine, qs = measured
    key_of = qs.key_of()
    seeker, partner = qs.profiles["u_leerfahrt"], qs.profiles["u_laderaum"]
    ranked = [key_of[pid] for pid, _ in engine.suggestions(seeker["id"])]
    assert "u_laderaum" in ranked[:3], ranked
    reasons = engine.explain(seeker["id"], partner["id"])["reasons"]
    assert any(r["kind"] == "need_met" and r.get("match") == "similar" and r["term"] == "digital-freight-platform"
               for r in reasons), reasons


def test_an_offer_that_resembles_a_term_only_in_writing_does_not_meet_bridged_needs(measured):
    """"ISO 50001 energy management systems" resembles „Yard- und Rampenmanagement“ in writing (the
    word "management"), not in meaning: a need about waiting at the ramp must not meet it through
    that term; its energy terms stay."""
    _, engine, _ = measured
    embedder, _ = load_embedder()
    offer = "ISO 50001 energy management systems"
    assert "yard-management" in dict(engine.text.resolve(offer))
    engine.semantic.add_vectors(OFFER, [offer], embedder.embed([offer], OFFER))
    bridged = {f.via for f in engine.analyse(offer, None, need=False)
               if (engine.feature_names[f.id] or "").startswith("b:")}
    assert "environmental-energy-management" in bridged and "yard-management" not in bridged
