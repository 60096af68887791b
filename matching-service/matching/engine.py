"""The matching engine: member profiles in, explained cross-sector partner
suggestions and partner-project consortia out. No I/O, no nameko.

How a partner B scores for a member A (every part is in [0, 1]):

  need_coverage   how well B's offers meet A's needs: per need the best match
                  among B's offers, averaged over A's needs
  offer_coverage  the other way round: how well A's offers meet B's needs
  topics          topics in common, over the smaller topic list
  proximity       same postcode region 1, same state 0.7, neighbouring state 0.4
  sme             B is a small or mid-sized enterprise

  score = 0.45 need_coverage + 0.25 offer_coverage + 0.12 topics + 0.10 proximity + 0.08 sme

A need meets an offer through a shared vocabulary term (1.0), a free-text
label that resembles a term (0.5-0.9), a shared word of two free-text labels
(0.6), or a term related to the needed one (0.4 x). Only members of another
sector who consented to be suggested are partners, and only if some need or
offer matches at all.

The data lives in flat arrays (see ``kernel.Index``) so that one member is
scored against 100,000 through inverted indexes in milliseconds, and every
member's suggestions are rebuilt in one compiled loop.
"""
from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, field

import numba
import numpy as np

from matching import kernel
from matching.text import TextAnalyzer
from verbund.reference import STATES
from verbund.vocabulary import Vocabulary
from verbund.vocabulary import load as load_vocabulary

WEIGHTS = {"need_coverage": 0.45, "offer_coverage": 0.25, "topics": 0.12, "proximity": 0.10, "sme": 0.08}
RELATED_FACTOR = 0.4
WORD_WEIGHT = 0.6
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

    @property
    def view(self) -> np.ndarray:
        return self.data[: self.length]


@dataclass(frozen=True)
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


class Engine:
    def __init__(self, vocabulary: Vocabulary | None = None, k: int = SUGGESTIONS, text: TextAnalyzer | None = None):
        self.vocabulary = vocabulary or load_vocabulary()
        self.text = text or TextAnalyzer(self.vocabulary)
        self.k = k
        self.term_ids = sorted(self.vocabulary.competencies)
        self.feature_of = {term: i for i, term in enumerate(self.term_ids)}
        self.feature_names = list(self.term_ids)
        self.topic_bit = {topic: i for i, topic in enumerate(sorted(self.vocabulary.topics))}
        self.related = self._symmetric_related()
        self.neighbours = _neighbours()
        self.weights = np.array([WEIGHTS[name] for name in WEIGHTS], np.float64)
        self._analyse = {}
        self._reset()

    def _symmetric_related(self) -> dict[str, set[str]]:
        related = {term: set(data.related) for term, data in self.vocabulary.competencies.items()}
        for term, data in self.vocabulary.competencies.items():
            for other in data.related:
                related.setdefault(other, set()).add(term)
        return related

    def _reset(self) -> None:
        self.ids: list[str] = []
        self.cards: list[Card | None] = []
        self.slot_of: dict[str, int] = {}
        self.alive = Column(np.bool_, False)
        self.group = Column(np.int8, -1)
        self.consent = Column(np.bool_, False)
        self.sector = Column(np.int8, -1)
        self.state = Column(np.int8, -1)
        self.region = Column(np.int16, -1)
        self.sme = Column(np.float64, 0.0)
        self.tmask = Column(np.int64, 0)
        self.tcount = Column(np.int8, 0)
        self.need_count = Column(np.int32, 0)
        self.tie = Column(np.float64, 0.0)
        self.need_ptr = Column(np.int64)
        self.need_ptr.append(0)
        self.nf_ptr = Column(np.int64)
        self.nf_ptr.append(0)
        self.nf_feat = Column(np.int32)
        self.nf_w = Column(np.float64)
        self.need_owner = Column(np.int32)
        self.of_ptr = Column(np.int64)
        self.of_ptr.append(0)
        self.of_feat = Column(np.int32)
        self.of_w = Column(np.float64)
        self.top_slots = Column(np.int32, -1, width=self.k)
        self.top_scores = Column(np.float64, -1.0, width=self.k)
        empty = self._postings_of(0, 0)
        self.main, self.delta = empty, empty
        self.main_boundary = 0
        self._scratch = kernel.new_scratch(16, 16)
        self._card_features: dict[str, tuple] = {}  # member id -> (card, its features), see _features_of
        self.seq = 0  # the read model's change counter this state reflects (kept by the service layer)

    # --- reading profiles -------------------------------------------------------------------------

    def _feature(self, word: str) -> int:
        key = "w:" + word
        if key not in self.feature_of:
            self.feature_of[key] = len(self.feature_names)
            self.feature_names.append(key)
        return self.feature_of[key]

    def analyse(self, label: str, term: str | None, need: bool) -> tuple[Feature, ...]:
        """The features of one offer or need; a need also reaches related terms."""
        key = (label, term, need)
        cached = self._analyse.get(key)
        if cached is not None:
            return cached
        if term and term in self.feature_of:
            links = ((term, 1.0),)
        else:
            links = self.text.resolve(label)
        found: dict[int, Feature] = {}

        def put(feature: Feature):
            if feature.id not in found or found[feature.id].weight < feature.weight:
                found[feature.id] = feature

        for linked, weight in links:
            put(Feature(self.feature_of[linked], weight, "term" if weight == 1.0 else "similar", linked))
        if not links or links[0][1] < 1.0:  # free text: its own words count too
            for word in sorted(self.text.tokens(label)):
                put(Feature(self._feature(word), WORD_WEIGHT, "word", word))
        if need:
            for linked, weight in links:
                for other in sorted(self.related.get(linked, ())):
                    put(Feature(self.feature_of[other], RELATED_FACTOR * weight, "related", linked))
        result = tuple(sorted(found.values(), key=lambda f: f.id))
        if len(self._analyse) > 200_000:
            self._analyse.clear()
        self._analyse[key] = result
        return result

    # --- adding and removing members ---------------------------------------------------------------

    def _append(self, cards: list[Card]) -> None:
        """Give each card the next slot; columns grow once per call, not once per value."""
        cols: dict[str, list] = {name: [] for name in (
            "alive", "group", "consent", "sector", "state", "region", "sme", "tmask", "tcount", "tie", "need_count",
            "need_ptr", "nf_ptr", "nf_feat", "nf_w", "need_owner", "of_ptr", "of_feat", "of_w")}
        rows, need_features, offer_features = self.need_owner.length, self.nf_feat.length, self.of_feat.length
        for card in cards:
            slot = len(self.ids)
            self.ids.append(card.id)
            self.cards.append(card)
            self.slot_of[card.id] = slot
            bits = {self.topic_bit[t] for t in card.topics if t in self.topic_bit}
            cols["alive"].append(True)
            cols["group"].append(SECTOR_CODES.get(card.sector, 5))
            cols["consent"].append(card.consent)
            cols["sector"].append(SECTOR_CODES.get(card.sector, 5))
            cols["state"].append(STATE_CODES.get(card.state, -1))
            cols["region"].append(int(card.postcode[:2]) if card.postcode[:2].isdigit() else -1)
            cols["sme"].append(1.0 if card.sme else 0.0)
            cols["tmask"].append(sum(1 << bit for bit in bits))
            cols["tcount"].append(len(bits))
            cols["tie"].append(tiebreak(card.id))
            for label, term in card.needs:
                features = self.analyse(label, term, need=True)
                cols["nf_feat"].extend(f.id for f in features)
                cols["nf_w"].extend(f.weight for f in features)
                need_features += len(features)
                cols["nf_ptr"].append(need_features)
                cols["need_owner"].append(slot)
            rows += len(card.needs)
            cols["need_ptr"].append(rows)
            cols["need_count"].append(len(card.needs))
            offered: dict[int, float] = {}
            for label, term in card.offers:
                for f in self.analyse(label, term, need=False):
                    if f.weight > offered.get(f.id, 0.0):
                        offered[f.id] = f.weight
            cols["of_feat"].extend(offered)
            cols["of_w"].extend(offered.values())
            offer_features += len(offered)
            cols["of_ptr"].append(offer_features)
        for name, values in cols.items():
            getattr(self, name).extend(values)
        self.top_slots.extend(np.full((len(cards), self.k), -1))
        self.top_scores.extend(np.full((len(cards), self.k), -1.0))

    def _postings_of(self, lo: int, hi: int) -> tuple:
        """Offer and need postings (feature -> slots / need rows) of the live slots in [lo, hi)."""
        features = len(self.feature_names)
        alive = self.alive.view
        o_lo, o_hi = self.of_ptr.view[lo], self.of_ptr.view[hi]
        o_slot = np.repeat(np.arange(lo, hi, dtype=np.int32), np.diff(self.of_ptr.view[lo: hi + 1]))
        o_feat, o_w = self.of_feat.view[o_lo:o_hi], self.of_w.view[o_lo:o_hi]
        keep = alive[o_slot] if len(o_slot) else np.zeros(0, np.bool_)
        offer = self._csr(o_feat[keep], o_slot[keep], o_w[keep], features)
        r_lo, r_hi = self.need_ptr.view[lo], self.need_ptr.view[hi]
        n_lo, n_hi = self.nf_ptr.view[r_lo], self.nf_ptr.view[r_hi]
        n_row = np.repeat(np.arange(r_lo, r_hi, dtype=np.int32), np.diff(self.nf_ptr.view[r_lo: r_hi + 1]))
        n_feat, n_w = self.nf_feat.view[n_lo:n_hi], self.nf_w.view[n_lo:n_hi]
        keep = alive[self.need_owner.view[n_row]] if len(n_row) else np.zeros(0, np.bool_)
        need = self._csr(n_feat[keep], n_row[keep], n_w[keep], features)
        return offer + need

    @staticmethod
    def _csr(feat, target, weight, features):
        order = np.argsort(feat, kind="stable")
        ptr = np.zeros(features + 1, np.int64)
        np.cumsum(np.bincount(feat, minlength=features), out=ptr[1:])
        return ptr, np.ascontiguousarray(target[order], np.int32), np.ascontiguousarray(weight[order], np.float64)

    def compact(self) -> None:
        """Fold the delta into the main postings."""
        self.main = self._postings_of(0, len(self.ids))
        self.main_boundary = len(self.ids)
        self.delta = self._postings_of(self.main_boundary, self.main_boundary)

    def _refresh_delta(self) -> None:
        pending = len(self.ids) - self.main_boundary
        if pending > max(512, len(self.slot_of) // 20):
            self.compact()
        else:
            self.delta = self._postings_of(self.main_boundary, len(self.ids))

    def _index(self) -> kernel.Index:
        return kernel.Index(
            self.alive.view, self.group.view, self.consent.view, self.sector.view, self.state.view, self.region.view,
            self.sme.view, self.tmask.view, self.tcount.view, self.need_count.view, self.tie.view,
            self.need_ptr.view, self.nf_ptr.view, self.nf_feat.view, self.nf_w.view, self.need_owner.view,
            self.of_ptr.view, self.of_feat.view, self.of_w.view, *self.main, *self.delta,
            self.neighbours, self.weights)

    def _scratch_for(self) -> kernel.Scratch:
        slots, rows = len(self.ids), self.need_owner.length
        if len(self._scratch.mark) < slots or len(self._scratch.row_mark) < rows:
            stamp = self._scratch.stamp.copy()
            self._scratch = kernel.new_scratch(max(slots, 2 * len(self._scratch.mark)),
                                               max(rows, 2 * len(self._scratch.row_mark), 16))
            self._scratch.stamp[:] = stamp
        return self._scratch

    def load(self, profiles) -> None:
        """Start afresh from profiles (the read model) and compute everybody's suggestions."""
        self._reset()
        cards = {}
        for profile in profiles:
            cards[profile["id"]] = card_from_profile(profile)
        cards = list(cards.values())
        for start in range(0, len(cards), 5000):
            self._append(cards[start:start + 5000])
            _pause()
        self.compact()
        self.compute_all()

    def warm_up(self) -> None:
        """Compile (or load from numba's cache) every kernel now, not on the first event."""
        def member(number: int, sector: str, offers: list[str], needs: list[str]) -> dict:
            return {"id": f"00000000-0000-4000-8000-{number:012d}", "version": 1, "name": f"warm-up {number}",
                    "sector": sector, "region": {"state": "BW", "postcode": "70173", "city": "-"},
                    "size": {"employees": 1, "sme": True, "category": "micro"}, "contact": {"language": "de"},
                    "offers": [{"term": t, "label": t} for t in offers],
                    "needs": [{"term": t, "label": t} for t in needs], "topics": [],
                    "consent": {"suggest_as_partner": True}}

        tiny = Engine(self.vocabulary, text=self.text)
        tiny.load([member(1, "automotive", ["mes"], ["wms"]), member(2, "it", ["wms"], ["mes"])])
        tiny.upsert(member(3, "logistics", ["wms"], ["mes"]))

    def compute_all(self) -> None:
        """Every live member's best partners, in one compiled pass on all cores."""
        slots = np.flatnonzero(self.alive.view).astype(np.int64)
        kernel.score_all(self._index(), max(1, numba.get_num_threads()), slots, self.k, self.top_slots.view,
                         self.top_scores.view, pause=_pause)

    def __len__(self) -> int:
        return len(self.slot_of)

    def __contains__(self, member_id: str) -> bool:
        return member_id in self.slot_of

    def card(self, member_id: str) -> Card | None:
        slot = self.slot_of.get(member_id)
        return self.cards[slot] if slot is not None else None

    def _score(self, slot: int, k: int, topic: str | None = None):
        ix, sc = self._index(), self._scratch_for()
        slots, scores = np.full(k, -1, np.int32), np.full(k, -1.0)
        size = len(self.ids)
        cands, fwd, rev = np.zeros(size, np.int32), np.zeros(size), np.zeros(size)
        n = kernel.score_one(ix, sc, slot, k, self.topic_bit.get(topic, -1) if topic else -1,
                             slots, scores, cands, fwd, rev)
        found = slots >= 0
        return slots[found], scores[found], cands[:n], fwd[:n], rev[:n]

    def _set_list(self, slot: int, slots: np.ndarray, scores: np.ndarray) -> bool:
        """Store a slot's best partners; True if the list changed."""
        new_slots = np.full(self.k, -1, np.int32)
        new_scores = np.full(self.k, -1.0)
        new_slots[: len(slots)] = slots[: self.k]
        new_scores[: len(scores)] = scores[: self.k]
        # Compared by member, not slot: a partner whose profile changed has a new slot.
        before = [self.ids[s] for s in self.top_slots.data[slot] if s >= 0]
        after = [self.ids[s] for s in new_slots if s >= 0]
        changed = before != after or not np.allclose(new_scores, self.top_scores.data[slot], atol=1e-9)
        self.top_slots.data[slot] = new_slots
        self.top_scores.data[slot] = new_scores
        return changed

    def _list(self, slot: int) -> list[tuple[str, float]]:
        return [(self.ids[s], round(float(score), 4)) for s, score in
                zip(self.top_slots.data[slot], self.top_scores.data[slot], strict=True) if s >= 0]

    def _kill(self, slot: int) -> None:
        self.alive.data[slot] = False
        self.group.data[slot] = -1

    def _holders(self, slot: int) -> np.ndarray:
        """Slots that list ``slot`` among their best partners."""
        return np.flatnonzero((self.top_slots.view == slot).any(axis=1))

    def upsert(self, profile: dict) -> Changes:
        """A member is new or changed: its suggestions, and those of members it now matters to."""
        card = card_from_profile(profile)
        old = self.slot_of.get(card.id)
        if old is not None:
            self._kill(old)
        self._append([card])
        slot = len(self.ids) - 1
        self._refresh_delta()
        changes = Changes()
        slots, scores, cands, fwd, rev = self._score(slot, self.k)
        self._set_list(slot, slots, scores)
        changes.lists[card.id] = self._list(slot)
        # How the others now see this member: their need coverage is its offer coverage and vice versa.
        if card.consent and len(cands):
            theirs = self._their_scores(slot, cands, fwd, rev)
        else:
            theirs = np.zeros(0)
        self._update_others(slot, old, cands, theirs, changes)
        return changes

    def _their_scores(self, slot: int, cands: np.ndarray, fwd: np.ndarray, rev: np.ndarray) -> np.ndarray:
        w = self.weights
        tmask, tcount = self.tmask.view, self.tcount.view.astype(np.float64)
        common = np.bitwise_count(tmask[cands] & tmask[slot]).astype(np.float64)
        smaller = np.minimum(tcount[cands], tcount[slot])
        topics = np.divide(common, smaller, out=np.zeros(len(cands)), where=smaller > 0)
        region, state = self.region.view, self.state.view
        near = np.where((region[cands] == region[slot]) & (region[slot] >= 0), 1.0,
                        np.where((state[cands] == state[slot]) & (state[slot] >= 0), 0.7,
                                 np.where(self.neighbours[state[cands], state[slot]] & (state[slot] >= 0)
                                          & (state[cands] >= 0), 0.4, 0.0)))
        return (w[0] * rev + w[1] * fwd + w[2] * topics + w[3] * near + w[4] * self.sme.view[slot]
                + self.tie.view[slot])

    def _update_others(self, slot: int, old: int | None, cands, theirs, changes: Changes) -> None:
        score_for = dict(zip(cands.tolist(), theirs.tolist(), strict=True)) if len(theirs) else {}
        affected = set()
        if len(theirs):
            kth = self.top_scores.view[cands, self.k - 1]
            affected.update(cands[theirs > kth].tolist())
        if old is not None:
            affected.update(self._holders(old).tolist())
        for other in sorted(affected):
            if not self.alive.data[other] or other == slot:
                continue
            current = [(s, sc) for s, sc in zip(self.top_slots.data[other].tolist(),
                                                  self.top_scores.data[other].tolist(), strict=True) if s >= 0]
            had_old = any(s == old for s, _ in current)
            new_score = score_for.get(other)
            full = len(current) == self.k
            if had_old and full and (new_score is None or new_score < current[-1][1]):
                # The old entry leaves a gap that someone we do not know may fill: ask the index.
                slots, scores, *_ = self._score(other, self.k)
            else:
                merged = [(s, sc) for s, sc in current if s != old]
                if new_score is not None:
                    merged.append((slot, new_score))
                merged.sort(key=lambda pair: -pair[1])
                slots = np.array([s for s, _ in merged[: self.k]], np.int32)
                scores = np.array([sc for _, sc in merged[: self.k]])
            # A list that showed the member's old profile is reported even if the ranking stands:
            # its name or offers may read differently now (the service compares what it told).
            if self._set_list(other, slots, scores) or had_old:
                changes.lists[self.ids[other]] = self._list(other)

    def remove(self, member_id: str) -> Changes:
        """A member left: forget it and repair the lists it was on."""
        changes = Changes()
        slot = self.slot_of.pop(member_id, None)
        if slot is None:
            return changes
        self._kill(slot)
        self.cards[slot] = None
        changes.removed.add(member_id)
        self._update_others(-1, slot, np.zeros(0, np.int32), np.zeros(0), changes)
        self._refresh_delta()
        return changes

    def suggestions(self, member_id: str) -> list[tuple[str, float]]:
        slot = self.slot_of.get(member_id)
        return self._list(slot) if slot is not None else []

    def all_suggestions(self):
        for member_id, slot in self.slot_of.items():
            yield member_id, self._list(slot)

    # --- explaining a pair ---------------------------------------------------------------------------

    def _features_of(self, card: Card) -> tuple[tuple[tuple[Feature, ...], ...], dict[int, list]]:
        """A card's features: per need its features, and its offers by feature id as
        [(offer index, feature)] in offer order. Kept for the cards used last (explaining a list
        or choosing a team meets the same cards again and again)."""
        cached = self._card_features.get(card.id)
        if cached is not None and cached[0] is card:
            return cached[1], cached[2]
        needs = tuple(self.analyse(label, term, need=True) for label, term in card.needs)
        offers: dict[int, list[tuple[int, Feature]]] = {}
        for j, (label, term) in enumerate(card.offers):
            for feature in self.analyse(label, term, need=False):
                offers.setdefault(feature.id, []).append((j, feature))
        if len(self._card_features) >= CARD_FEATURES_KEPT:
            self._card_features.clear()
        self._card_features[card.id] = (card, needs, offers)
        return needs, offers

    def _best_matches(self, a: Card, b: Card) -> list[tuple[float, int | None, Feature | None, Feature | None]]:
        """For each of A's needs, B's best offer: (strength, index of the offer, the need's and the
        offer's feature). The first best wins: need features in order, then offers in order."""
        needs, _ = self._features_of(a)
        _, offers = self._features_of(b)
        result = []
        for need_features in needs:
            best = (0.0, None, None, None)
            for need_feature in need_features:
                for j, offer_feature in offers.get(need_feature.id, ()):
                    value = need_feature.weight * offer_feature.weight
                    if value > best[0]:
                        best = (value, j, need_feature, offer_feature)
            result.append(best)
        return result

    def pair(self, a: Card, b: Card) -> dict:
        """B as a partner of A: the score, its weighted parts and the matches behind it."""
        met = self._best_matches(a, b)
        wanted = self._best_matches(b, a)
        need_coverage = sum(m[0] for m in met) / len(a.needs) if a.needs else 0.0
        offer_coverage = sum(m[0] for m in wanted) / len(b.needs) if b.needs else 0.0
        ta, tb = set(a.topics) & self.topic_bit.keys(), set(b.topics) & self.topic_bit.keys()
        topics = len(ta & tb) / min(len(ta), len(tb)) if ta and tb else 0.0
        proximity = self._proximity(a, b)
        raw = {"need_coverage": need_coverage, "offer_coverage": offer_coverage, "topics": topics,
               "proximity": proximity, "sme": 1.0 if b.sme else 0.0}
        parts = {name: WEIGHTS[name] * value for name, value in raw.items()}
        return {"score": sum(parts.values()), "parts": parts, "raw": raw, "met": met, "wanted": wanted,
                "common_topics": sorted(ta & tb), "matches": need_coverage + offer_coverage > 0}

    @staticmethod
    def _proximity(a: Card, b: Card) -> float:
        if a.postcode[:2] == b.postcode[:2] and a.postcode[:2].isdigit():
            return 1.0
        if a.state == b.state and a.state in STATE_CODES:
            return 0.7
        if b.state in BORDERS.get(a.state, "").split():
            return 0.4
        return 0.0

    def explain(self, member_id: str, partner_id: str) -> dict | None:
        """A suggestion as match-suggestion.v1 describes it, in the member's language."""
        a, b = self.card(member_id), self.card(partner_id)
        if a is None or b is None:
            return None
        pair = self.pair(a, b)
        de = a.language == "de"
        reasons = []
        for i, (strength, j, need_feature, _) in enumerate(pair["met"]):
            if j is not None:
                reasons.append(self._match_reason("need_met", a.needs[i][0], b.offers[j][0], strength,
                                                  need_feature, de))
        for k, (strength, j, need_feature, _) in enumerate(pair["wanted"]):
            if j is not None:
                reasons.append(self._match_reason("offer_wanted", b.needs[k][0], a.offers[j][0], strength,
                                                  need_feature, de))
        if pair["common_topics"]:
            labels = [self.vocabulary.topics[t].label(a.language) for t in pair["common_topics"]]
            reasons.append({"kind": "topic", "text": ("Gemeinsame Themen: " if de else "Topics in common: ")
                            + ", ".join(labels), "topics": pair["common_topics"], "need": None, "offer": None,
                            "term": None})
        proximity = pair["raw"]["proximity"]
        if proximity:
            state = STATES.get(b.state, b.state)
            region = b.postcode[:2]
            text = {1.0: (f"Gleiche Region (PLZ {region}…, {state})", f"Same region (postcode {region}…, {state})"),
                    0.7: (f"Gleiches Bundesland ({state})", f"Same state ({state})"),
                    0.4: (f"Nachbarland ({state})", f"Neighbouring state ({state})")}[proximity][0 if de else 1]
            reasons.append({"kind": "region", "text": text, "need": None, "offer": None, "term": None})
        if b.sme:
            reasons.append({"kind": "sme", "text": ("Kleines oder mittleres Unternehmen" if de
                                                    else "Small or mid-sized enterprise"),
                            "need": None, "offer": None, "term": None})
        return {"partner_id": b.id, "partner_name": b.name, "partner_sector": b.sector,
                "score": round(pair["score"], 4), "parts": {k: round(v, 4) for k, v in pair["parts"].items()},
                "reasons": reasons}

    def _match_reason(self, kind, need_label, offer_label, strength, feature: Feature, de: bool) -> dict:
        via = feature.via
        if feature.kind == "word":
            how = f"gemeinsames Wort „{via}“" if de else f"shared word '{via}'"
            term = None
        else:
            term = via
            label = self.vocabulary.competencies[via].label("de" if de else "en")
            if feature.kind == "related":
                other = self.feature_names[feature.id]
                other_label = self.vocabulary.competencies[other].label("de" if de else "en")
                how = (f"verwandt: {label} ↔ {other_label}" if de else f"related: {label} ↔ {other_label}")
                term = other
            elif feature.kind == "similar":
                how = f"ähnlich wie „{label}“" if de else f"similar to '{label}'"
            else:
                how = f"Begriff „{label}“" if de else f"term '{label}'"
        if kind == "need_met":
            text = (f"Ihr Bedarf „{need_label}“ ↔ deren Angebot „{offer_label}“ ({how})" if de
                    else f"Your need '{need_label}' ↔ their offer '{offer_label}' ({how})")
        else:
            text = (f"Ihr Angebot „{offer_label}“ ↔ deren Bedarf „{need_label}“ ({how})" if de
                    else f"Your offer '{offer_label}' ↔ their need '{need_label}' ({how})")
        return {"kind": kind, "text": text, "need": need_label, "offer": offer_label, "term": term,
                "strength": round(strength, 4), "match": feature.kind}

    # --- partner-project consortia --------------------------------------------------------------------

    def propose(self, member_id: str, *, declined=frozenset(), proposed=frozenset(), unavailable=frozenset(),
                topic: str | None = None) -> dict | None:
        """A consortium of 2-4 members around one member's needs, chosen so that the
        partners together cover them (greedy set cover, preferring a third sector).

        ``declined``: pairs (frozensets of two ids) never to put together, or a function
        that returns them for a list of ids; ``proposed``: teams (frozensets) proposed before, or a
        function of the anchor's id that returns them; ``unavailable``: ids not to invite (or a
        function that picks them from a list of ids)."""
        slot = self.slot_of.get(member_id)
        if slot is None:
            return None
        anchor = self.cards[slot]
        if not anchor.consent or not anchor.needs:
            return None
        slots, _, *_ = self._score(slot, PROPOSAL_POOL, topic)
        pool = [self.cards[s] for s in slots.tolist()]
        if callable(unavailable):
            unavailable = unavailable([b.id for b in pool])
        pool = [b for b in pool if b.id not in unavailable]
        if callable(declined):
            declined = declined([anchor.id] + [b.id for b in pool])
        covers = {b.id: self._best_matches(anchor, b) for b in pool}
        coverage = {member: [m[0] for m in matches] for member, matches in covers.items()}
        pair_scores: dict[tuple[str, str], float] = {}

        def mutual(x: Card, y: Card) -> float:
            key = (x.id, y.id) if x.id < y.id else (y.id, x.id)
            if key not in pair_scores:
                pair_scores[key] = (self.pair(x, y)["score"] + self.pair(y, x)["score"]) / 2
            return pair_scores[key]

        def greedy(banned: set[str]) -> tuple[list[Card], list[float]]:
            team, covered = [anchor], [0.0] * len(anchor.needs)
            while len(team) < MAX_CONSORTIUM:
                sectors = {m.sector for m in team}
                chosen = {m.id for m in team}
                best, best_value = None, 0.0
                for b in pool:
                    if b.id in chosen or b.id in banned or any(frozenset((b.id, m.id)) in declined for m in team):
                        continue
                    gain = sum(max(0.0, c - have)
                               for c, have in zip(coverage[b.id], covered, strict=True)) / len(covered)
                    new_sector = b.sector not in sectors
                    if gain < 0.1 and not (new_sector and gain > 0):
                        continue
                    fit = sum(mutual(b, m) for m in team[1:]) / (len(team) - 1) if len(team) > 1 else 0.0
                    value = gain + (0.2 if new_sector else 0.0) + 0.1 * fit
                    if value > best_value:
                        best, best_value = b, value
                if best is None:
                    break
                team.append(best)
                covered = [max(have, c) for have, c in zip(covered, coverage[best.id], strict=True)]
            return team, covered

        if callable(proposed):
            proposed = proposed(anchor.id)

        def rated(team, covered):
            sectors = sorted({m.sector for m in team})
            pairs = [mutual(x, y) for i, x in enumerate(team) for y in team[i + 1:]]
            score = 0.6 * sum(covered) / len(covered) + 0.2 * (len(sectors) - 1) / 2 + 0.2 * sum(pairs) / len(pairs)
            return score, team, covered, sectors

        team, covered = greedy(set())
        if len(team) < 2:
            return None
        options = [(team, covered)]
        if frozenset(m.id for m in team) in proposed:
            # Proposed before: the best team that does without one of its partners.
            options = [greedy({m.id}) for m in team[1:]]
        options = [rated(t, c) for t, c in options if len(t) >= 2 and frozenset(m.id for m in t) not in proposed]
        if not options:
            return None
        score, team, covered, sectors = max(options, key=lambda option: option[0])
        need_coverage = sum(covered) / len(covered)
        return {"anchor_id": anchor.id, "topic": topic or self._main_topic(team),
                "members": [{"member_id": m.id, "name": m.name, "sector": m.sector} for m in team],
                "sectors": sectors, "score": round(score, 4), "need_coverage": round(need_coverage, 4),
                "title": self._title(anchor, topic), "explanation": self._consortium_reasons(anchor, team, covers)}

    def propose_for_topic(self, topic: str, *, declined=frozenset(), proposed=frozenset(), unavailable=frozenset(),
                          tries: int = 20):
        """The best consortium around any consenting member with this topic and needs."""
        bit = self.topic_bit.get(topic)
        if bit is None:
            return None
        tmask, consent, alive = self.tmask.view, self.consent.view, self.alive.view
        members = np.flatnonzero(alive & consent & ((tmask >> bit) & 1).astype(bool)
                                 & (self.need_count.view > 0))
        members = sorted(members.tolist(), key=lambda s: (-self.need_count.data[s], -self.tie.data[s]))[:tries]
        best = None
        for slot in members:
            proposal = self.propose(self.ids[slot], declined=declined, proposed=proposed, unavailable=unavailable,
                                    topic=topic)
            if proposal and (best is None or proposal["score"] > best["score"]):
                best = proposal
        return best

    def _main_topic(self, team: list[Card]) -> str | None:
        counts: dict[str, int] = {}
        for member in team:
            for topic in member.topics:
                counts[topic] = counts.get(topic, 0) + 1
        shared = [(count, topic) for topic, count in counts.items() if count > 1]
        return max(shared)[1] if shared else None

    def _title(self, anchor: Card, topic: str | None) -> str:
        de = anchor.language == "de"
        if topic and topic in self.vocabulary.topics:
            subject = self.vocabulary.topics[topic].label(anchor.language)
        else:
            subject = ", ".join(label for label, _ in anchor.needs[:3])
        return f"Partnerprojekt: {subject}" if de else f"Partner project: {subject}"

    def _consortium_reasons(self, anchor: Card, team: list[Card], covers) -> list[dict]:
        reasons = []
        for i, (need, _) in enumerate(anchor.needs):
            best = max(((covers[m.id][i][0], m, covers[m.id][i][1]) for m in team[1:]), key=lambda t: t[0])
            if best[0] > 0:
                reasons.append({"kind": "need_covered", "need": need, "member_id": best[1].id,
                                "offer": best[1].offers[best[2]][0], "strength": round(best[0], 4)})
            else:
                reasons.append({"kind": "need_open", "need": need})
        reasons.append({"kind": "sectors", "sectors": sorted({m.sector for m in team})})
        shared = set.intersection(*(set(m.topics) for m in team)) if team else set()
        if shared:
            reasons.append({"kind": "topics", "topics": sorted(shared)})
        return reasons
