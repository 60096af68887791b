"""Synthetic member profiles for the benchmark and the engine's consistency
tests: sector-typical offers, cross-sector needs, some free text, German
postcodes and company sizes. Deterministic for a seed. No I/O."""
from __future__ import annotations

import random
import uuid

from verbund.reference import POSTCODE_REGIONS, STATES
from verbund.vocabulary import load as load_vocabulary

SECTORS = ("automotive", "it", "logistics")
SECTOR_SHARE = (0.4, 0.3, 0.3)
ASSOCIATION = {"automotive": "automotive-cluster", "it": "it-cluster", "logistics": "logistics-network"}
# Each state's postcode regions (its main ones, by the kit's one mapping), as "01 02 04".
POSTCODE_PREFIXES = {state: " ".join(prefix for prefix, states in POSTCODE_REGIONS.items() if states[0] == state)
                     for state in STATES}
STATE_SHARE = {"BW": 14, "BY": 15, "NW": 20, "NI": 9, "HE": 8, "SN": 6, "RP": 5, "BE": 4, "HH": 3, "TH": 3,
               "ST": 3, "BB": 3, "SH": 3, "MV": 2, "SL": 1, "HB": 1}
FREE_TEXT = ("Sonderlösungen", "Prototypenbau", "Beratung", "Schulungen", "Kleinserien", "Lohnfertigung",
             "Express", "Nachtsprung", "Montage", "Engineering-Dienstleistungen", "Datenanalyse", "Softwareentwicklung")


def _zipf_weights(n: int, s: float = 0.8) -> list[float]:
    return [1.0 / (rank + 1) ** s for rank in range(n)]


# Members' own wording (``written_share``): a term's label or synonym put in a sentence of their own,
# so that nearly every such text is distinct, as in real profiles.
WRITTEN_LEAD = ("Wir suchen", "Unterstützung bei", "Erfahrung mit", "Partner für", "Hilfe bei", "Know-how in",
                "looking for", "experience in", "support with", "Projekte rund um", "Dienstleister für",
                "Beratung zu", "Kooperation bei", "Lösungen für", "Spezialisten für")
WRITTEN_CONTEXT = ("in unserem Werk", "für unsere Kunden", "im Mittelstand", "für Kleinserien", "im Schichtbetrieb",
                   "for our plants", "across Europe", "für die Serienfertigung", "am Standort", "im Lager",
                   "für E-Fahrzeuge", "for suppliers", "mit kurzer Vorlaufzeit", "für mehrere Standorte",
                   "im Raum", "bundesweit", "for pilot projects", "mit eigenem Team", "nach ISO-Norm",
                   "für Prototypen")
WRITTEN_PLACES = ("Stuttgart", "München", "Leipzig", "Bremen", "Dortmund", "Ulm", "Kassel", "Chemnitz", "Kiel",
                  "Mainz", "Erfurt", "Passau", "Siegen", "Aachen", "Rostock", "Zwickau", "Ingolstadt", "Wolfsburg")


class ProfileFactory:
    def __init__(self, seed: int = 7, free_text_share: float = 0.15, written_share: float = 0.0):
        self.random = random.Random(seed)
        self.vocabulary = load_vocabulary()
        self.free_text_share = free_text_share
        self.written_share = written_share
        # a member-written text -> its parts (lead, label, context, place)
        self.written: dict[str, tuple[str, ...]] = {}
        terms = sorted(self.vocabulary.competencies.values(), key=lambda t: t.id)
        self.offered_by = {}
        for sector in SECTORS:
            own = [t for t in terms if sector in t.sectors] or terms
            self.random.shuffle(own)  # popularity order
            self.offered_by[sector] = (own, _zipf_weights(len(own)))
        self.wanted_by = {}
        for sector in SECTORS:
            other = [t for t in terms if set(t.sectors) & (set(SECTORS) - {sector})]
            self.random.shuffle(other)
            self.wanted_by[sector] = (other, _zipf_weights(len(other)))
        self.states = list(STATE_SHARE)
        self.state_weights = list(STATE_SHARE.values())

    def _pick(self, pool, count: int) -> list:
        terms, weights = pool
        chosen: dict[str, object] = {}
        while len(chosen) < count:
            term = self.random.choices(terms, weights)[0]
            chosen[term.id] = term
        return list(chosen.values())

    def _items(self, terms, language: str) -> list[dict]:
        items = []
        for term in terms:
            roll = self.random.random()
            if self.written_share and self.random.random() < self.written_share:
                r = self.random
                parts = (r.choice(WRITTEN_LEAD), r.choice([term.de, term.en, *term.synonyms]),
                         r.choice(WRITTEN_CONTEXT), r.choice(WRITTEN_PLACES))
                text = f"{parts[0]} {parts[1]} {parts[2]} {parts[3]} {r.randint(1, 99)}"
                self.written[text] = parts
                items.append({"term": None, "label": text, "description": None})
            elif roll < self.free_text_share / 2:
                # free text: a synonym or label as people type it, not linked to the term
                label = self.random.choice([term.de, term.en, *term.synonyms]).lower()
                items.append({"term": None, "label": label + ("n" if label.endswith("e") else ""),
                              "description": None})
            elif roll < self.free_text_share:
                items.append({"term": None, "label": self.random.choice(FREE_TEXT), "description": None})
            else:
                items.append({"term": term.id, "label": term.label(language), "description": None})
        return items

    def profile(self, sector: str | None = None) -> dict:
        r = self.random
        sector = sector or r.choices(SECTORS, SECTOR_SHARE)[0]
        language = "de" if r.random() < 0.8 else "en"
        offers = self._pick(self.offered_by[sector], r.randint(2, 6))
        needs = self._pick(self.wanted_by[sector], r.randint(1, 5))
        topics = sorted({topic for term in offers + needs for topic in term.topics})
        r.shuffle(topics)
        state = r.choices(self.states, self.state_weights)[0]
        postcode = r.choice(POSTCODE_PREFIXES[state].split()) + f"{r.randint(0, 999):03d}"
        employees = int(min(20000, r.lognormvariate(3.8, 1.3)))
        category = "micro" if employees < 10 else "small" if employees < 50 else "medium" if employees < 250 \
            else "large"
        member_id = str(uuid.UUID(int=r.getrandbits(128), version=4))
        return {
            "id": member_id, "version": 1, "name": f"Mitglied {member_id[:8]} GmbH", "sector": sector,
            "associations": [ASSOCIATION[sector]],
            "region": {"state": state, "postcode": postcode, "city": "Musterstadt"},
            "size": {"employees": employees, "turnover_eur": None, "balance_sheet_eur": None,
                     "sme": category != "large", "category": category},
            "website": None,
            "contact": {"name": "Kontakt", "email": f"kontakt@{member_id}.example", "language": language},
            "offers": self._items(offers, language), "needs": self._items(needs, language),
            "topics": topics[: r.randint(1, 4)] if topics else [],
            "consent": {"suggest_as_partner": r.random() < 0.85, "email": True},
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
        }

    def profiles(self, count: int) -> list[dict]:
        return [self.profile() for _ in range(count)]
