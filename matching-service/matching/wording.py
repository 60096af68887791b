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
        if language == "de":
            together = "gemeinsam " if len(partners) > 1 else ""
            text = f"Ein Team für {anchor_name}: {team} {'decken' if len(partners) > 1 else 'deckt'} " \
                   f"{together}{covered} von {total} Bedarfen ab."
        else:
            together = " together" if len(partners) > 1 else ""
            text = f"A team for {anchor_name}: {team}{together} cover{'s' if len(partners) == 1 else ''} " \
                   f"{covered} of its {total} needs."
        texts[language] = text
    return texts


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
