"""The one wording of a partner suggestion's reasons (``verbund.wording``): every band, level and link
in German and English, from a reason's fields, and older or unknown values as the pages and mails
read them. No service, no broker."""
import pytest

from verbund import wording
from verbund.reference import NAMES

NEED, OFFER = "Tourenplanung", "live GPS tracking"


@pytest.mark.parametrize(("band", "de", "en"), [
    ("very_well", "passt inhaltlich sehr gut", "a very close fit in substance"),
    ("well", "passt inhaltlich gut", "a good fit in substance"),
    ("loosely", "passt inhaltlich nur entfernt", "a loose fit in substance"),
    # older suggestions said "partly" for the loose band; a missing or unknown band is never more than loose
    ("partly", "passt inhaltlich nur entfernt", "a loose fit in substance"),
    (None, "passt inhaltlich nur entfernt", "a loose fit in substance"),
    ("superb", "passt inhaltlich nur entfernt", "a loose fit in substance"),
])
def test_every_fit_band_is_worded_in_both_languages(band, de, en):
    assert (wording.fit_words(band, "de"), wording.fit_words(band, "en")) == (de, en)
    reason = {"kind": "need_met", "need": NEED, "offer": OFFER, "match": "semantic", "fit": band, "text": "…"}
    assert wording.reason_text(reason, "de") == f"Ihr Bedarf „{NEED}“ {de} zu deren Angebot „{OFFER}“"
    assert wording.reason_text(reason, "en") == f"Your need “{NEED}” and their offer “{OFFER}”: {en}"
    wanted = {**reason, "kind": "offer_wanted"}
    assert wording.reason_text(wanted, "de") == f"Ihr Angebot „{OFFER}“ {de} zu deren Bedarf „{NEED}“"
    assert wording.reason_text(wanted, "en") == f"Your offer “{OFFER}” and their need “{NEED}”: {en}"


def test_the_bands_are_the_ones_matching_service_gives():
    assert set(wording.FIT) == {"very_well", "well", "loosely"}
    assert all(set(words) == set(wording.LANGUAGES) for words in wording.FIT.values())


def test_the_engine_adds_the_strength_to_its_own_text_but_the_reason_text_never_does():
    assert wording.match_text("need_met", NEED, OFFER, "de", fit="well", strength=0.615) == (
        f"Ihr Bedarf „{NEED}“ passt inhaltlich gut zu deren Angebot „{OFFER}“ (Stärke 62 %)")
    assert wording.match_text("offer_wanted", NEED, OFFER, "en", fit="very_well", strength=0.8) == (
        f"Your offer “{OFFER}” and their need “{NEED}”: a very close fit in substance (strength 80%)")
    reason = {"kind": "need_met", "need": NEED, "offer": OFFER, "match": "semantic", "fit": "well", "strength": 0.6}
    assert "%" not in wording.reason_text(reason, "de") + wording.reason_text(reason, "en")


@pytest.mark.parametrize(("level", "prefix", "de", "en"), [
    ("same_postcode_area", "01", "Gleiche Region (PLZ 01…, Sachsen)", "Same region (postcode 01…, Saxony)"),
    ("same_state", None, "Gleiches Bundesland (Sachsen)", "Same federal state (Saxony)"),
    ("neighbouring_state", None, "Benachbartes Bundesland (Sachsen)", "Neighbouring federal state (Saxony)"),
])
def test_every_region_level_is_worded_in_both_languages_with_the_state_named_in_it(level, prefix, de, en):
    reason = {"kind": "region", "text": "whatever the engine wrote", "level": level, "state": "SN",
              "postcode_prefix": prefix}
    assert (wording.reason_text(reason, "de"), wording.reason_text(reason, "en")) == (de, en)
    assert (wording.region_text(level, "SN", prefix, "de"), wording.region_text(level, "SN", prefix, "en")) == (de, en)


def test_every_state_is_named_in_both_languages():
    for code, names in NAMES["state"].items():
        for lang in wording.LANGUAGES:
            assert wording.region_text("same_state", code, None, lang).endswith(f"({names[lang]})")


@pytest.mark.parametrize(("reason", "de", "en"), [
    # an unknown level, an unknown state, the postcode area without its prefix: the stored text
    ({"kind": "region", "text": "Gleiche Gegend (Sachsen)", "level": "same_planet", "state": "SN"},
     "Gleiche Gegend (Sachsen)", "Gleiche Gegend (Sachsen)"),
    ({"kind": "region", "text": "Gleiches Bundesland (Narnia)", "level": "same_state", "state": "XX"},
     "Gleiches Bundesland (Narnia)", "Same federal state (Narnia)"),
    ({"kind": "region", "text": "Gleiche Region (PLZ 01…, Sachsen)", "level": "same_postcode_area", "state": "SN"},
     "Gleiche Region (PLZ 01…, Sachsen)", "Same region (postcode 01…, Sachsen)"),
    # reasons from before the parts: the other language's beginning (and the old words) put in the reader's
    ({"kind": "region", "text": "Nachbarland (Brandenburg)"},
     "Benachbartes Bundesland (Brandenburg)", "Neighbouring federal state (Brandenburg)"),
    ({"kind": "region", "text": "Neighbouring state (Sachsen)"},
     "Benachbartes Bundesland (Sachsen)", "Neighbouring federal state (Sachsen)"),
    ({"kind": "region", "text": "Same state (Bayern)"}, "Gleiches Bundesland (Bayern)", "Same federal state (Bayern)"),
    ({"kind": "region", "text": "Same region (postcode 70…, Baden-Württemberg)"},
     "Gleiche Region (PLZ 70…, Baden-Württemberg)", "Same region (postcode 70…, Baden-Württemberg)"),
    # a kind the wording does not know, and a reason without text
    ({"kind": "budget", "text": "Ähnliches Budget"}, "Ähnliches Budget", "Ähnliches Budget"),
    ({"kind": "region"}, "", ""),
])
def test_unknown_and_older_values_fall_back_to_the_stored_text(reason, de, en):
    assert (wording.reason_text(reason, "de"), wording.reason_text(reason, "en")) == (de, en)


def test_an_indirect_match_says_through_what_need_and_offer_are_linked():
    related = {"kind": "offer_wanted", "need": NEED, "offer": OFFER, "match": "related",
               "via": "route-optimisation-software", "term": "fleet-telematics", "text": "…"}
    word = {"kind": "need_met", "need": "Express delivery", "offer": "delivery of spare parts", "match": "word",
            "via": "delivery", "text": "…"}
    assert wording.reason_text(related, "de") == (
        f"Ihr Angebot „{OFFER}“ – deren Bedarf „{NEED}“ (verwandte Themen: Tourenplanungssoftware und "
        "Flottentelematik)")
    assert wording.reason_text(related, "en") == (
        f"Your offer “{OFFER}” – their need “{NEED}” (related topics: Route planning and optimisation software "
        "and Fleet telematics)")
    assert wording.reason_text(word, "de") == (
        "Ihr Bedarf „Express delivery“ – deren Angebot „delivery of spare parts“ (nur das gemeinsame Wort "
        "„delivery“)")
    assert wording.reason_text(word, "en") == (
        "Your need “Express delivery” – their offer “delivery of spare parts” (only the shared word “delivery”)")
    # reasons stored before they carried ``via`` (or with a term the vocabulary lost) still are no direct match
    assert wording.reason_text({**related, "via": None}, "de").endswith("(ein verwandtes Thema)")
    assert wording.reason_text({**related, "term": "gone-term"}, "en").endswith("(a related topic)")
    assert wording.reason_text({**word, "via": None}, "de").endswith("(nur ein gemeinsames Wort)")
    assert wording.reason_text({**word, "via": ""}, "en").endswith("(only a shared word)")


@pytest.mark.parametrize("match", ["vocabulary", "similar", None])
def test_a_direct_match_names_no_term_to_members(match):
    reason = {"kind": "need_met", "need": NEED, "offer": OFFER, "match": match, "term": "fleet-telematics",
              "text": "Your need 'x' ↔ their offer 'y' (term 'z')"}
    assert wording.reason_text(reason, "de") == f"Ihr Bedarf „{NEED}“ passt zu deren Angebot „{OFFER}“"
    assert wording.reason_text(reason, "en") == f"Your need “{NEED}” meets their offer “{OFFER}”"
    assert wording.reason_text({**reason, "kind": "offer_wanted"}, "en") == (
        f"Your offer “{OFFER}” meets their need “{NEED}”")
    # without need or offer (older reasons): the stored text
    assert wording.reason_text({**reason, "offer": None}, "de") == reason["text"]


def test_the_engine_names_the_term_or_the_term_it_resembles_in_its_own_text():
    assert wording.match_text("need_met", NEED, OFFER, "de", link=wording.term_link("Flottentelematik", "de")) == (
        f"Ihr Bedarf „{NEED}“ – deren Angebot „{OFFER}“ (Begriff „Flottentelematik“)")
    assert wording.match_text("offer_wanted", NEED, OFFER, "en",
                              link=wording.similar_link("Fleet telematics", "en")) == (
        f"Your offer “{OFFER}” – their need “{NEED}” (similar to “Fleet telematics”)")


def test_topics_and_size_in_both_languages():
    topic = {"kind": "topic", "topics": ["e-mobility", "no-such-topic"], "text": "…"}
    assert wording.reason_text(topic, "de") == "Gemeinsame Themen: Elektromobilität, no-such-topic"
    assert wording.reason_text(topic, "en") == "Topics in common: E-mobility, no-such-topic"
    assert wording.reason_text({"kind": "topic", "topics": [], "text": "Gemeinsame Themen: X"}, "en") == (
        "Gemeinsame Themen: X")
    assert [wording.reason_text({"kind": "sme", "text": "…"}, lang) for lang in wording.LANGUAGES] == [
        "Kleines oder mittleres Unternehmen", "Small or mid-sized enterprise"]
