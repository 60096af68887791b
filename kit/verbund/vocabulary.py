"""The curated vocabulary of competencies and topics (``data/vocabulary.yaml``):
ids, German and English labels, synonyms. members-service resolves the
labels members type to terms; matching-service builds on the same data."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from importlib import resources

import yaml

_FOLD = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"})


def normalize(text: str) -> str:
    """A lookup key: case, umlauts, accents, spaces and punctuation folded away,
    so 'E-Mobilität', 'e mobilitaet' and 'EMobilität' meet."""
    text = unicodedata.normalize("NFKC", text).casefold().translate(_FOLD)
    text = unicodedata.normalize("NFKD", text)
    return re.sub(r"[^0-9a-z]+", "", "".join(ch for ch in text if not unicodedata.combining(ch)))


@dataclass(frozen=True)
class Term:
    id: str
    en: str
    de: str
    synonyms: tuple[str, ...] = ()
    sectors: tuple[str, ...] = ()
    category: str | None = None
    topics: tuple[str, ...] = ()
    related: tuple[str, ...] = ()

    def label(self, language: str) -> str:
        return self.de if language == "de" else self.en

    def as_dict(self) -> dict:
        return {"id": self.id, "en": self.en, "de": self.de, "synonyms": list(self.synonyms),
                "sectors": list(self.sectors), "category": self.category, "topics": list(self.topics),
                "related": list(self.related)}


class Vocabulary:
    def __init__(self, competencies: list[Term], topics: list[Term], categories: dict[str, dict]):
        self.competencies = {term.id: term for term in competencies}
        self.topics = {term.id: term for term in topics}
        self.categories = categories
        self._competency_keys = self._keys(competencies)
        self._topic_keys = self._keys(topics)

    @staticmethod
    def _keys(terms: list[Term]) -> dict[str, str]:
        keys: dict[str, str] = {}
        for term in terms:
            for text in (term.id, term.en, term.de, *term.synonyms):
                keys.setdefault(normalize(text), term.id)
        return keys

    def find_competency(self, text: str) -> str | None:
        """The id of the term whose id, label or synonym ``text`` is, else None."""
        return self._competency_keys.get(normalize(text))

    def find_topic(self, text: str) -> str | None:
        return self._topic_keys.get(normalize(text))

    def search(self, query: str, limit: int = 20) -> list[Term]:
        """Terms whose labels or synonyms contain the query, for pickers in a UI."""
        key = normalize(query)
        hits = [term for term in self.competencies.values()
                if any(key in normalize(text) for text in (term.en, term.de, *term.synonyms))]
        return hits[:limit]


def _term(entry: dict) -> Term:
    synonyms = entry.get("synonyms") or []
    if isinstance(synonyms, dict):
        synonyms = [*synonyms.get("en", []), *synonyms.get("de", [])]
    return Term(id=entry["id"], en=entry["en"], de=entry["de"], synonyms=tuple(synonyms),
                sectors=tuple(entry.get("sectors", ())), category=entry.get("category"),
                topics=tuple(entry.get("topics", ())), related=tuple(entry.get("related", ())))


@cache
def load() -> Vocabulary:
    text = (resources.files("verbund") / "data" / "vocabulary.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    return Vocabulary(competencies=[_term(entry) for entry in data["competencies"]],
                      topics=[_term(entry) for entry in data["topics"]],
                      categories={entry["id"]: entry for entry in data.get("categories", [])})
