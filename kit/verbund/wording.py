"""How a partner suggestion's reasons are worded, German and English: one place for the words
matching-service writes into ``match.suggested`` (each reason's ``text``), notifications-service
writes into mails and the inbox, and the portal shows on its pages.

A reason (match-suggestion.v1) has structured fields; ``reason_text`` words it from them in any
language, whatever language it was made in, and falls back to its stored ``text`` for older
reasons without them. The pieces (``fit_words``, ``region_text``, ``related_link``, ``word_link``,
``term_link``, ``similar_link``, ``match_text``, ``topics_text``, ``SME``) are there for the engine,
which words a reason as it builds it. No I/O but the vocabulary, loaded once.
"""
from __future__ import annotations

from functools import cache

from verbund.reference import NAMES
from verbund.vocabulary import Vocabulary
from verbund.vocabulary import load as load_vocabulary

LANGUAGES = ("de", "en")
QUOTES = {"de": ("„", "“"), "en": ("“", "”")}  # German and English typographic quotation marks

# How well a need and an offer fit by meaning (``fit``: matching-service's band of a semantic match's
# strength, ``matching.engine.explanation.FIT_BANDS``). "partly" of suggestions stored before "loosely",
# an unknown and a missing band read as the loose one: never more than the service said.
FIT = {"very_well": {"de": "passt inhaltlich sehr gut", "en": "a very close fit in substance"},
       "well": {"de": "passt inhaltlich gut", "en": "a good fit in substance"},
       "loosely": {"de": "passt inhaltlich nur entfernt", "en": "a loose fit in substance"}}
LOOSEST = "loosely"

# A region reason by its ``level``, with the partner's state (``state``, ISO 3166-2:DE code) named in
# the reader's language; the postcode area with the postcode's first two digits (``postcode_prefix``).
REGION_LEVELS = {
    "same_postcode_area": {"de": "Gleiche Region (PLZ {prefix}…, {state})",
                           "en": "Same region (postcode {prefix}…, {state})"},
    "same_state": {"de": "Gleiches Bundesland ({state})", "en": "Same federal state ({state})"},
    "neighbouring_state": {"de": "Benachbartes Bundesland ({state})", "en": "Neighbouring federal state ({state})"},
}
# Region reasons of older suggestions come as text only, in the language they were made in (and once
# with "Nachbarland", "Same state"): the beginnings to put in the reader's language.
_REGION_BEGINNINGS = {
    "de": (("Same region (postcode ", "Gleiche Region (PLZ "), ("Same federal state (", "Gleiches Bundesland ("),
           ("Same state (", "Gleiches Bundesland ("), ("Neighbouring federal state (", "Benachbartes Bundesland ("),
           ("Neighbouring state (", "Benachbartes Bundesland ("), ("Nachbarland (", "Benachbartes Bundesland (")),
    "en": (("Gleiche Region (PLZ ", "Same region (postcode "), ("Gleiches Bundesland (", "Same federal state ("),
           ("Same state (", "Same federal state ("), ("Benachbartes Bundesland (", "Neighbouring federal state ("),
           ("Neighbouring state (", "Neighbouring federal state ("), ("Nachbarland (", "Neighbouring federal state (")),
}

# How an indirect match links a need and an offer (in brackets after the pair).
RELATED = {"de": "verwandte Themen: {need} und {offer}", "en": "related topics: {need} and {offer}"}
SOME_RELATED = {"de": "ein verwandtes Thema", "en": "a related topic"}  # older reasons without ``via``
WORD = {"de": "nur das gemeinsame Wort {word}", "en": "only the shared word {word}"}
SOME_WORD = {"de": "nur ein gemeinsames Wort", "en": "only a shared word"}  # older reasons without ``via``
TERM = {"de": "Begriff {term}", "en": "term {term}"}
SIMILAR = {"de": "ähnlich wie {term}", "en": "similar to {term}"}

# A need and an offer: ``mine`` is the reader's side (need_met: the reader's need and the partner's
# offer; offer_wanted: the reader's offer and the partner's need).
_PAIR = {  # linked: "Ihr Bedarf „…“ – deren Angebot „…“ (…)"
    ("need_met", "de"): "Ihr Bedarf {need} – deren Angebot {offer} ({link})",
    ("need_met", "en"): "Your need {need} – their offer {offer} ({link})",
    ("offer_wanted", "de"): "Ihr Angebot {offer} – deren Bedarf {need} ({link})",
    ("offer_wanted", "en"): "Your offer {offer} – their need {need} ({link})",
}
_FITTING = {  # by meaning, with the band's words
    ("need_met", "de"): "Ihr Bedarf {need} {fit} zu deren Angebot {offer}",
    ("need_met", "en"): "Your need {need} and their offer {offer}: {fit}",
    ("offer_wanted", "de"): "Ihr Angebot {offer} {fit} zu deren Bedarf {need}",
    ("offer_wanted", "en"): "Your offer {offer} and their need {need}: {fit}",
}
_MEETING = {  # the same term, said without naming it
    ("need_met", "de"): "Ihr Bedarf {need} passt zu deren Angebot {offer}",
    ("need_met", "en"): "Your need {need} meets their offer {offer}",
    ("offer_wanted", "de"): "Ihr Angebot {offer} passt zu deren Bedarf {need}",
    ("offer_wanted", "en"): "Your offer {offer} meets their need {need}",
}
STRENGTH = {"de": " (Stärke {percent} %)", "en": " (strength {percent}%)"}
TOPICS = {"de": "Gemeinsame Themen: {topics}", "en": "Topics in common: {topics}"}
SME = {"de": "Kleines oder mittleres Unternehmen", "en": "Small or mid-sized enterprise"}


@cache
def _vocabulary() -> Vocabulary:
    return load_vocabulary()  # the platform's vocabulary ships with the kit: read once per process


def quoted(text: str, lang: str) -> str:
    """``text`` in the quotation marks of ``lang``: „Tourenplanung“ / “Tourenplanung”."""
    opening, closing = QUOTES[lang]
    return f"{opening}{text}{closing}"


def fit_words(band: str | None, lang: str) -> str:
    """A fit band (``very_well``, ``well``, ``loosely``) in words: "passt inhaltlich gut" / "a good fit in
    substance"; "partly" (suggestions stored before "loosely"), None and anything unknown as ``loosely``."""
    return FIT.get(band or LOOSEST, FIT[LOOSEST])[lang]


def state_name(state: str, lang: str) -> str:
    """A state's ISO 3166-2:DE code ("SN") as its name in ``lang`` ("Sachsen" / "Saxony"); else as it is."""
    return NAMES["state"].get(state, {}).get(lang, state)


def region_text(level: str | None, state: str | None, prefix: str | None, lang: str) -> str | None:
    """A region reason from its parts: "Benachbartes Bundesland (Sachsen)" / "Same region (postcode 01…,
    Saxony)". None when a part is missing or unknown (a level not in ``REGION_LEVELS``, a state code not
    in ``verbund.reference``, the postcode area without its prefix)."""
    if level not in REGION_LEVELS or state not in NAMES["state"] or (level == "same_postcode_area" and not prefix):
        return None
    return REGION_LEVELS[level][lang].format(state=state_name(state, lang), prefix=prefix)


def related_link(need_term: str, offer_term: str, lang: str, vocabulary: Vocabulary | None = None) -> str:
    """Two related vocabulary terms (ids) named in ``lang``: "verwandte Themen: Tourenplanungssoftware und
    Flottentelematik"; an id the vocabulary (``vocabulary``, else the platform's) does not know as it is."""
    competencies = (vocabulary or _vocabulary()).competencies
    names = [competencies[t].label(lang) if t in competencies else t for t in (need_term, offer_term)]
    return RELATED[lang].format(need=names[0], offer=names[1])


def word_link(word: str, lang: str) -> str:
    """The one word a need and an offer share, as written: "nur das gemeinsame Wort „Hydraulikpressen“"."""
    return WORD[lang].format(word=quoted(word, lang))


def term_link(label: str, lang: str) -> str:
    """The vocabulary term both name (its label): "Begriff „Rückverfolgbarkeitssoftware“"."""
    return TERM[lang].format(term=quoted(label, lang))


def similar_link(label: str, lang: str) -> str:
    """The term free text resembles (its label): "ähnlich wie „Batteriezellfertigung“"."""
    return SIMILAR[lang].format(term=quoted(label, lang))


def link(reason: dict, lang: str) -> str | None:
    """How an indirect match (``match``: related, word) links need and offer, from the reason's ``via``
    and ``term``: "verwandte Themen: A und B", "nur das gemeinsame Wort „x“"; older reasons without
    them: "ein verwandtes Thema", "nur ein gemeinsames Wort". None for any other match."""
    match, via = reason.get("match"), reason.get("via")
    if match == "related":
        competencies = _vocabulary().competencies
        if via in competencies and reason.get("term") in competencies:
            return related_link(via, reason["term"], lang)
        return SOME_RELATED[lang]
    if match == "word":
        return word_link(via, lang) if via else SOME_WORD[lang]
    return None


def match_text(kind: str, need: str, offer: str, lang: str, *, fit: str | None = None, link: str | None = None,
               strength: float | None = None) -> str:
    """A need met by an offer (``kind`` need_met) or an offer wanted by a need (offer_wanted), seen from
    the reader's side: with a fit band (``fit``, a match by meaning) "Ihr Bedarf „…“ passt inhaltlich gut
    zu deren Angebot „…“"; with a ``link`` "Ihr Bedarf „…“ – deren Angebot „…“ (link)"; else "Ihr Bedarf
    „…“ passt zu deren Angebot „…“". ``strength`` (0–1) adds " (Stärke 62 %)" to a match by meaning."""
    words = {"need": quoted(need, lang), "offer": quoted(offer, lang)}
    if fit is not None:
        text = _FITTING[kind, lang].format(**words, fit=fit_words(fit, lang))
        return text + STRENGTH[lang].format(percent=round(100 * strength)) if strength is not None else text
    if link:
        return _PAIR[kind, lang].format(**words, link=link)
    return _MEETING[kind, lang].format(**words)


def topics_text(topics: list[str], lang: str, vocabulary: Vocabulary | None = None) -> str:
    """Topics both work on (vocabulary ids) named in ``lang``: "Gemeinsame Themen: Elektromobilität, …";
    an id the vocabulary (``vocabulary``, else the platform's) does not know as it is."""
    known = (vocabulary or _vocabulary()).topics
    return TOPICS[lang].format(topics=", ".join(known[t].label(lang) if t in known else t for t in topics))


def reason_text(reason: dict, lang: str) -> str:
    """Why a partner is suggested, in ``lang`` ("de" or "en") whatever language the suggestion was made
    in: from the reason's fields where it has them (need and offer with how they are linked; the topics;
    the region's level and state), else its ``text`` with a region's beginning put in ``lang`` (older
    suggestions); a reason of an unknown kind by its text."""
    kind = reason.get("kind")
    if kind in ("need_met", "offer_wanted") and reason.get("need") and reason.get("offer"):
        semantic = reason.get("match") == "semantic"
        return match_text(kind, reason["need"], reason["offer"], lang,
                          fit=(reason.get("fit") or LOOSEST) if semantic else None, link=link(reason, lang))
    if kind == "topic" and reason.get("topics"):
        return topics_text(reason["topics"], lang)
    if kind == "sme":
        return SME[lang]
    if kind == "region":
        worded = region_text(reason.get("level"), reason.get("state"), reason.get("postcode_prefix"), lang)
        if worded:
            return worded
    text = reason.get("text") or ""
    for other, own in _REGION_BEGINNINGS.get(lang, ()):
        if text.startswith(other):
            return own + text[len(other):]
    return text
