"""What the engine keeps of a member (``Card``) and the scoring constants that
the index, the explanations and the consortia share: the parts' weights, the
sector and state codes, neighbouring states, and the stable tie-break."""
from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, field

import numpy as np

from verbund.reference import STATES

WEIGHTS = {"need_coverage": 0.45, "offer_coverage": 0.25, "topics": 0.12, "proximity": 0.10, "sme": 0.08}
RELATED_FACTOR = 0.4
WORD_WEIGHT = 0.6
# A shared word when the embeddings are there to confirm or deny it (fitted on the tuning part).
WORD_WEIGHT_WITH_SEMANTIC = 0.45  # fitted on the quality set's tuning part (bench/quality.py --fit)
SUGGESTIONS = 10
PROPOSAL_POOL = 40
MAX_CONSORTIUM = 4
CARD_FEATURES_KEPT = 20_000  # cards whose analysed offers and needs the engine keeps at hand

SECTOR_CODES = {"automotive": 0, "it": 1, "logistics": 2, "research": 3, "public": 4, "other": 5}
STATE_CODES = {code: i for i, code in enumerate(sorted(STATES))}
BORDERS = {
    "BW": "BY HE RP", "BY": "BW HE TH SN", "BE": "BB", "BB": "BE MV SN ST NI", "HB": "NI", "HH": "NI SH",
    "HE": "BW BY TH NI NW RP", "MV": "BB NI SH", "NI": "HB HH SH MV BB ST TH HE NW", "NW": "NI HE RP",
    "RP": "NW HE BW SL", "SL": "RP", "SN": "BY TH ST BB", "ST": "NI BB SN TH", "SH": "HH NI MV",
    "TH": "NI ST SN BY HE",
}


def _neighbours() -> np.ndarray:
    matrix = np.zeros((len(STATE_CODES), len(STATE_CODES)), np.bool_)
    for state, others in BORDERS.items():
        for other in others.split():
            matrix[STATE_CODES[state], STATE_CODES[other]] = matrix[STATE_CODES[other], STATE_CODES[state]] = True
    return matrix


def _pause() -> None:
    # Long loads pause now and then: in a service (eventlet) other green threads run meanwhile.
    time.sleep(0)


def tiebreak(member_id: str) -> float:
    """A tiny, stable nudge so that equal scores rank the same way in every run."""
    return (zlib.crc32(member_id.encode()) / 2**32) * 1e-7


class Column:
    """A numpy array that grows by doubling; ``view`` is the filled part."""

    def __init__(self, dtype, fill=0, width: int | None = None):
        self.dtype, self.fill, self.width = dtype, fill, width
        self.length = 0
        self.data = np.full((16, width) if width else 16, fill, dtype)

    def reserve(self, length: int) -> None:
        if length > len(self.data):
            capacity = max(length, 2 * len(self.data))
            grown = np.full((capacity, self.width) if self.width else capacity, self.fill, self.dtype)
            grown[: self.length] = self.data[: self.length]
            self.data = grown

    def extend(self, values) -> None:
        values = np.asarray(values, self.dtype)
        self.reserve(self.length + len(values))
        self.data[self.length: self.length + len(values)] = values
        self.length += len(values)

    def append(self, value) -> None:
        self.reserve(self.length + 1)
        self.data[self.length] = value
        self.length += 1

    def trim(self, headroom: float = 0.05) -> None:
        """Give back the spare capacity that doubling left (up to half of the array), keeping
        ``headroom`` (a share of the length) for the updates to come."""
        capacity = self.length + int(self.length * headroom) + 16
        if capacity < len(self.data):
            trimmed = np.full((capacity, self.width) if self.width else capacity, self.fill, self.dtype)
            trimmed[: self.length] = self.data[: self.length]
            self.data = trimmed

    @property
    def view(self) -> np.ndarray:
        return self.data[: self.length]


@dataclass(frozen=True, slots=True)  # millions of them with semantic links: no __dict__ each
class Feature:
    id: int
    weight: float
    kind: str          # term, similar (free text resembling a term), word, related
    via: str           # the term id or the word


@dataclass
class Card:
    """What the engine keeps of a member: enough to score and to explain."""
    id: str
    version: int
    name: str
    sector: str
    language: str
    state: str
    postcode: str
    sme: bool
    size: str
    consent: bool
    topics: tuple[str, ...]
    offers: tuple[tuple[str, str | None], ...]   # (label, term)
    needs: tuple[tuple[str, str | None], ...]


@dataclass
class Changes:
    """Whose suggestion lists an update changed: member id -> [(partner id, score)], best first."""
    lists: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    removed: set[str] = field(default_factory=set)


def card_from_profile(profile: dict) -> Card:
    return Card(
        id=profile["id"], version=profile["version"], name=profile["name"], sector=profile["sector"],
        language=profile.get("contact", {}).get("language", "de"), state=profile["region"]["state"],
        postcode=profile["region"]["postcode"], sme=bool(profile["size"]["sme"]),
        size=profile["size"].get("category", ""), consent=bool(profile["consent"]["suggest_as_partner"]),
        topics=tuple(profile.get("topics", ())),
        offers=tuple((item["label"], item.get("term")) for item in profile.get("offers", ())),
        needs=tuple((item["label"], item.get("term")) for item in profile.get("needs", ())),
    )
