"""The quality set (``matching-service/quality/*.yaml``) as member profiles, and the measures
reported on it: recall@5, MRR and junk@3. Used by ``bench/quality.py`` and the quality test.

recall@5  per seeker the share of its expected partners among its first five, averaged
MRR       per seeker 1/rank of its first expected partner (0 if none in its list), averaged
junk@3    the number of seekers with one of their distractors among their first three
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import yaml

from verbund.vocabulary import load as load_vocabulary

QUALITY_DIR = Path(__file__).resolve().parent.parent / "quality"
PARTS = ("tuning", "test")


@dataclass
class QualitySet:
    profiles: dict[str, dict]              # key -> member-profile.v1, both parts
    expected: dict[str, dict[str, list]]   # part -> seeker key -> expected partner keys
    distractors: dict[str, dict[str, list]]

    def key_of(self) -> dict[str, str]:
        return {profile["id"]: key for key, profile in self.profiles.items()}


def load(directory: Path = QUALITY_DIR) -> QualitySet:
    vocabulary = load_vocabulary()

    def items(entries, language):
        return [{"term": entry[1:], "label": vocabulary.competencies[entry[1:]].label(language), "description": None}
                if entry.startswith("=") else {"term": None, "label": entry, "description": None}
                for entry in entries]

    profiles, expected, distractors = {}, {}, {}
    for part in PARTS:
        members = yaml.safe_load((directory / f"{part}.yaml").read_text(encoding="utf-8"))["members"]
        expected[part], distractors[part] = {}, {}
        for key, m in members.items():
            state, postcode, city = m["region"]
            employees = m["employees"]
            category = ("micro" if employees < 10 else "small" if employees < 50 else "medium" if employees < 250
                        else "large")
            member_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"verbund-quality/{key}"))
            profiles[key] = {
                "id": member_id, "version": 1, "name": m["name"], "sector": m["sector"], "associations": [],
                "region": {"state": state, "postcode": postcode, "city": city},
                "size": {"employees": employees, "turnover_eur": None, "balance_sheet_eur": None,
                         "sme": category != "large", "category": category},
                "website": None, "contact": {"name": "Kontakt", "email": f"{key}@example.org",
                                             "language": m["language"]},
                "offers": items(m.get("offers", []), m["language"]), "needs": items(m.get("needs", []), m["language"]),
                "topics": m.get("topics", []), "consent": {"suggest_as_partner": m.get("consent", True), "email": True},
                "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"}
            if m.get("expected"):
                expected[part][key] = list(m["expected"])
                distractors[part][key] = list(m.get("distractors", []))
    return QualitySet(profiles, expected, distractors)


def measure(ranked: dict[str, list[str]], expected: dict[str, list[str]], distractors: dict[str, list[str]]) -> dict:
    """recall@5, MRR and junk@3 of rankings (seeker key -> partner keys, best first)."""
    recall, reciprocal, junk = [], [], []
    for key, wanted in expected.items():
        partners = ranked.get(key, [])
        recall.append(len(set(partners[:5]) & set(wanted)) / len(wanted))
        rank = next((i + 1 for i, partner in enumerate(partners) if partner in wanted), None)
        reciprocal.append(1.0 / rank if rank else 0.0)
        if set(partners[:3]) & set(distractors.get(key, ())):
            junk.append(key)
    n = len(expected)
    return {"seekers": n, "recall@5": sum(recall) / n, "mrr": sum(reciprocal) / n, "junk@3": len(junk),
            "junk": junk, "missed": [key for key, r in zip(expected, recall, strict=True) if r < 1.0]}
