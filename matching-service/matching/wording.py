"""A partner-project proposal in plain sentences, German and English, written
from its structured explanation whenever a proposal is shown or announced
(so a member who left is never named, and older proposals read the same
way). No ids, no scores: names, needs and offers as the members wrote them.
No I/O."""
from __future__ import annotations

from verbund.reference import NAMES
from verbund.vocabulary import load as load_vocabulary

LANGUAGES = ("de", "en")
FORMER_MEMBER = {"de": "ein ausgeschiedenes Mitglied", "en": "a former member"}
# How well an offer meets a need, said in words (strengths as the engine gives them: a vocabulary
# term 1.0, free text resembling a term 0.5-0.9, a shared word 0.6, a related term 0.4 x).
CLOSE, RELATED = 0.9, 0.5


def _quote(text: str, language: str) -> str:
    return f"„{text}“" if language == "de" else f"“{text}”"


def _and(items: list[str], language: str) -> str:
    word = " und " if language == "de" else " and "
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + word + items[-1]


def _sector(sector: str, language: str) -> str:
    return NAMES["sector"].get(sector, {}).get(language, sector)


def _need_covered(reason: dict, name: str, language: str) -> str:
    need, offer = _quote(reason["need"], language), _quote(reason["offer"], language)
    strength = reason.get("strength", 1.0)
    if language == "de":
        how = ("" if strength >= CLOSE else " – eine ähnliche Leistung" if strength >= RELATED
               else " – eine verwandte Leistung")
        return f"{name} bringt {offer} für Ihren Bedarf {need} mit{how}."
    how = "" if strength >= CLOSE else " (a similar service)" if strength >= RELATED else " (a related service)"
    return f"{name} brings {offer} to your need {need}{how}."


def _reason_text(reason: dict, names: dict[str, str], language: str) -> str | None:
    kind = reason.get("kind")
    if kind == "need_covered":
        name = names.get(reason.get("member_id")) or FORMER_MEMBER[language]
        return _need_covered(reason, name, language)
    if kind == "need_open":
        need = _quote(reason["need"], language)
        return (f"Für Ihren Bedarf {need} fehlt in diesem Team noch ein Partner." if language == "de"
                else f"Nobody in this team covers your need {need} yet.")
    if kind == "sectors":
        sectors = _and([_sector(s, language) for s in reason["sectors"]], language)
        return (f"Das Team verbindet die Branchen {sectors}." if language == "de"
                else f"The team brings together {sectors}.")
    if kind == "topics":
        topics = load_vocabulary().topics
        labels = _and([topics[t].label(language) if t in topics else t for t in reason["topics"]], language)
        return (f"Alle im Team beschäftigen sich mit {labels}." if language == "de"
                else f"Everyone in the team works on {labels}.")
    return None


def _covers(count: int, total: int, language: str) -> str:
    """How many of the anchor's needs the team covers, in words: "den Bedarf" (1 of 1), "alle 3
    Bedarfe" (all), "2 von 3 Bedarfen" (some); English "its need", "all 3 of its needs", "2 of its
    3 needs". German dative plural after "von" (Bedarfen), nominative/accusative "Bedarfe"."""
    if language == "de":
        if count == total:
            return "den Bedarf" if total == 1 else f"alle {total} Bedarfe"
        return f"{count} von {total} Bedarfen"
    if count == total:
        return "its need" if total == 1 else f"all {total} of its needs"
    return f"{count} of its {total} needs"


def summary(project: dict) -> dict[str, str]:
    """One sentence per language for every invited member: whose needs, who covers how many.
    ``project``: as ``queries.project_data`` builds it (members with names, explanation)."""
    members = project["members"]
    anchor = next((m for m in members if m["member_id"] == project.get("anchor_id")), members[0])
    partners = [m for m in members if m is not anchor]
    reasons = project.get("explanation") or []
    total = sum(1 for r in reasons if r.get("kind") in ("need_covered", "need_open"))
    covered = sum(1 for r in reasons if r.get("kind") == "need_covered")
    texts = {}
    for language in LANGUAGES:
        anchor_name = anchor.get("name") or FORMER_MEMBER[language]
        team = _and([f"{m.get('name') or FORMER_MEMBER[language]} ({_sector(m['sector'], language)})"
                     for m in partners], language)
        if not total:  # an anchor without needs (older proposals): the team alone
            texts[language] = (f"Ein Team für {anchor_name}: {team}." if language == "de"
                               else f"A team for {anchor_name}: {team}.")
        elif language == "de":
            together = "gemeinsam " if len(partners) > 1 else ""
            texts[language] = f"Ein Team für {anchor_name}: {team} {'decken' if len(partners) > 1 else 'deckt'} " \
                              f"{together}{_covers(covered, total, language)} ab."
        else:
            together = " together" if len(partners) > 1 else ""
            texts[language] = f"A team for {anchor_name}: {team}{together} " \
                              f"cover{'s' if len(partners) == 1 else ''} {_covers(covered, total, language)}."
    return texts


# A proposal's title: what it is about after a word that says what it is. One place for both the
# title the engine stores (in the anchor's language) and the title in either language.
TITLE = {"de": "Partnerprojekt: {}", "en": "Partner project: {}"}
MORE = {"de": "{} und {} weitere", "en": "{} and {} more"}
TITLE_NEEDS = 3  # the title names at most this many needs, the best covered first


def about(labels: list[str], language: str) -> str:
    """What a proposal is about, from the labels of the needs it covers (best covered first):
    at most three, then "und 2 weitere" / "and 2 more"."""
    text = ", ".join(labels[:TITLE_NEEDS])
    return MORE[language].format(text, len(labels) - TITLE_NEEDS) if len(labels) > TITLE_NEEDS else text


def _term_label(need: str, term: str | None, language: str, vocabulary) -> str:
    """A need's label in ``language`` when it is a vocabulary term (``need_term``, or for proposals
    made before that was recorded, a need written exactly as a term's German or English label);
    else the need as the member wrote it."""
    found = vocabulary.competencies.get(term) if term else None
    if found is None and not term:
        found = next((t for t in vocabulary.competencies.values() if need in (t.de, t.en)), None)
    return found.label(language) if found is not None else need


def titles(project: dict) -> tuple[dict[str, str], dict[str, str]]:
    """A proposal's title in German and English (``title_i18n``: "Partnerprojekt: …", "Partner
    project: …") and what it is about without that word (``about_i18n``), built as the engine
    builds the stored title (``engine.consortium``): the topic it was proposed for, or the needs
    the team covers, best covered first, each vocabulary term in the reader's language."""
    vocabulary = load_vocabulary()
    stored = project.get("title") or ""
    topic = vocabulary.topics.get(project.get("topic") or "")
    if topic is not None and stored in (TITLE[lang].format(topic.label(lang)) for lang in LANGUAGES):
        abouts = {lang: topic.label(lang) for lang in LANGUAGES}
    else:
        covered = [(i, r) for i, r in enumerate(project.get("explanation") or []) if r.get("kind") == "need_covered"]
        covered.sort(key=lambda item: (-item[1].get("strength", 1.0), item[0]))
        if covered:
            abouts = {lang: about([_term_label(r["need"], r.get("need_term"), lang, vocabulary) for _, r in covered],
                                  lang) for lang in LANGUAGES}
        else:  # nothing to build it from: the stored title without its word
            bare = next((stored[len(TITLE[lang].format("")):] for lang in LANGUAGES
                         if stored.startswith(TITLE[lang].format(""))), stored)
            abouts = {lang: bare for lang in LANGUAGES}
    return {lang: TITLE[lang].format(abouts[lang]) for lang in LANGUAGES}, abouts


def explained(project: dict) -> list[dict]:
    """The explanation's items, each with ``text`` ``{de, en}``: sentences that speak to the
    anchor, whose needs they are ("Firma X bringt „…“ für Ihren Bedarf „…“ mit")."""
    names = {m["member_id"]: m.get("name") for m in project["members"]}
    items = []
    for reason in project.get("explanation") or []:
        texts = {language: _reason_text(reason, names, language) for language in LANGUAGES}
        item = {key: value for key, value in reason.items() if key != "text"}
        if reason.get("kind") == "need_covered" and not names.get(reason.get("member_id")):
            item.pop("member_name", None)  # the member left: not named here either
        items.append({**item, "text": texts} if texts["de"] else item)
    return items
