"""The index: profiles as flat numpy arrays (per member its offer features and
need rows, with related terms expanded) and inverted indexes feature ->
members offering it / need rows wanting it, scored by the compiled kernels
(``matching.kernel``). Slots are append-only: a changed member gets a new slot
and the old one is dead. Updates go to a small delta index, folded into the
main index when it exceeds 5% of the members. Keeps every member's best
``k`` partners current as members come, change and go."""
from __future__ import annotations

import numba
import numpy as np

from matching import kernel
from matching.engine.cards import (
    RELATED_FACTOR,
    SECTOR_CODES,
    STATE_CODES,
    SUGGESTIONS,
    WEIGHTS,
    WORD_WEIGHT,
    WORD_WEIGHT_WITH_SEMANTIC,
    Card,
    Changes,
    Column,
    Feature,
    _neighbours,
    _pause,
    card_from_profile,
    tiebreak,
)
from matching.semantic import NEED, OFFER, Space
from matching.text import TextAnalyzer
from verbund.vocabulary import Vocabulary
from verbund.vocabulary import load as load_vocabulary


class Index:
    """Members' cards in slots, their postings, and each live member's best partners (no I/O)."""

    def __init__(self, vocabulary: Vocabulary | None = None, k: int = SUGGESTIONS, text: TextAnalyzer | None = None,
                 semantic: Space | None = None, word_weight: float | None = None):
        self.vocabulary = vocabulary or load_vocabulary()
        # Semantic links between need and offer texts (None: lexical only). With them, a shared
        # word alone counts less: the embedding says whether the texts mean the same.
        self.semantic = semantic
        self.word_weight = word_weight if word_weight is not None else (
            WORD_WEIGHT_WITH_SEMANTIC if semantic is not None else WORD_WEIGHT)
        self.text = text or TextAnalyzer(self.vocabulary)
        self.k = k
        self.term_ids = sorted(self.vocabulary.competencies)
        self.feature_of = {term: i for i, term in enumerate(self.term_ids)}
        self.feature_names = list(self.term_ids)
        self.topic_bit = {topic: i for i, topic in enumerate(sorted(self.vocabulary.topics))}
        self.related = self._symmetric_related()
        self.neighbours = _neighbours()
        self.weights = np.array([WEIGHTS[name] for name in WEIGHTS], np.float64)
        self._analyse = {}  # (label, term, need) -> its vocabulary and word features as arrays
        self._bridged = {}  # need label -> the terms it is about in meaning (TermBridge), while loading
        self._confirmed = {}  # offer label -> the terms it is close to in meaning (TermBridge.offer_terms)
        self._semantic_feature = {NEED: Column(np.int32), OFFER: Column(np.int32)}  # text id -> feature id
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
        self._told: dict[str, tuple[str, int]] = {}  # member id -> (fingerprint, slots then), see explain_list
        self.seq = 0  # the read model's change counter this state reflects (kept by the service layer)

    # --- reading profiles -------------------------------------------------------------------------

    def _feature(self, word: str, prefix: str = "w:") -> int:
        key = prefix + word
        if key not in self.feature_of:
            self.feature_of[key] = len(self.feature_names)
            self.feature_names.append(key)
        return self.feature_of[key]

    def _bridge_terms(self, labels: list[str]) -> None:
        """Ask the term bridge which terms these need labels are about; ``_lexical_features`` reads
        the answers (``_bridged``)."""
        bridge = self.semantic.bridge if self.semantic is not None else None
        if bridge is not None:
            self._ask(labels, NEED, self._bridged, bridge.links)

    def _confirm_offers(self, labels: list[str]) -> None:
        """Ask the term bridge which terms these offer labels are close to in meaning, when it checks
        offers; ``_lexical_features`` reads the answers (``_confirmed``)."""
        bridge = self.semantic.bridge if self.semantic is not None else None
        if bridge is not None and bridge.checks_offers:
            self._ask(labels, OFFER, self._confirmed, bridge.offer_terms)

    def _ask(self, labels: list[str], kind: str, answers: dict, question) -> None:
        """``answers[label] = question(vectors)[i]`` for the labels with a vector not asked yet, all in
        one product; a member's texts come once, so the answers are dropped beyond 50,000."""
        if len(answers) > 50_000:
            answers.clear()
        asked, vectors = [], []
        for label in dict.fromkeys(labels):
            vector = None if label in answers else self.semantic.vector(kind, label)
            if vector is not None:
                asked.append(label)
                vectors.append(vector)
        if asked:
            answers.update(zip(asked, question(np.stack(vectors)), strict=True))

    def _lexical_features(self, label: str, term: str | None, need: bool) -> tuple[Feature, ...]:
        """The vocabulary and word features of one offer or need (``_lexical_computed``)."""
        return self._lexical_computed(label, term, need)[0]

    def _lexical_computed(self, label: str, term: str | None, need: bool) -> tuple[tuple[Feature, ...], bool]:
        """The vocabulary and word features of one offer or need; a need also reaches related terms.
        With the term bridge, a need in free text also has the terms it is about in meaning and an
        offer the terms it names or resembles (confirmed by meaning, when the bridge checks offers),
        as features of their own (``b:`` and the term id, kind ``similar``): a bridged need meets
        only offers that really are about its term. Also whether they are final: False while the
        bridge's answer it needs is missing (the text has no vector yet)."""
        final = True
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
                put(Feature(self._feature(word), self.word_weight, "word", word))
        if need:
            for linked, weight in links:
                for other in sorted(self.related.get(linked, ())):
                    put(Feature(self.feature_of[other], RELATED_FACTOR * weight, "related", linked))
            # only free text: a need that names a term has it at 1.0, and the bridge's neighbours of
            # that term would tie with its real partners
            if self.semantic is not None and self.semantic.bridge is not None and (not links or links[0][1] < 1.0):
                self._bridge_terms([label])
                final = label in self._bridged
                for linked, weight in self._bridged.get(label, ()):
                    put(Feature(self._feature(linked, "b:"), weight, "similar", linked))
        elif self.semantic is not None and self.semantic.bridge is not None and links:
            checked = self.semantic.bridge.checks_offers and links[0][1] < 1.0
            if checked:
                self._confirm_offers([label])
            confirmed = self._confirmed.get(label, frozenset()) if checked else None
            final = not checked or label in self._confirmed
            for linked, weight in links:
                if confirmed is None or linked in confirmed:
                    put(Feature(self._feature(linked, "b:"), weight, "term" if weight == 1.0 else "similar", linked))
        return tuple(found.values()), final

    def _lexical_kept(self, label: str, term: str | None, need: bool) -> tuple[np.ndarray, np.ndarray, tuple]:
        """``_lexical_computed`` as arrays (feature ids, weights) and the features themselves, kept
        for the labels seen last once final (a text without a vector yet is asked again later)."""
        key = (label, term, need)
        cached = self._analyse.get(key)
        if cached is None:
            features, final = self._lexical_computed(label, term, need)
            cached = (np.array([f.id for f in features], np.int32), np.array([f.weight for f in features]),
                      features)
            if len(self._analyse) > 50_000:  # member-written texts are distinct: they come once
                self._analyse.clear()
            if final:
                self._analyse[key] = cached
        return cached

    def _lexical(self, label: str, term: str | None, need: bool) -> tuple[np.ndarray, np.ndarray]:
        """``_lexical_features`` as arrays (feature ids, weights), kept for the labels seen last."""
        return self._lexical_kept(label, term, need)[:2]

    def _semantic_features(self, kind: str) -> np.ndarray:
        """Feature id of each registered text of a side (its own id is a feature on its side: 1.0 for
        itself, the calibrated strength for the texts of the other side it links to); new texts get
        theirs here."""
        column, rows = self._semantic_feature[kind], self.semantic.rows(kind)
        if column.length < rows:
            first, new = len(self.feature_names), rows - column.length
            column.extend(np.arange(first, first + new, dtype=np.int32))
            self.feature_names.extend([None] * new)  # no name: explanations read the text itself
        return column.view

    def _text_features(self, kind: str, label: str, own: np.ndarray, linked: np.ndarray):
        """A text's semantic features: (ids, weights), or None if it has no vector yet."""
        row = self.semantic.ids.get((kind, label))
        if row is None:
            return None
        to, strength = self.semantic.link_arrays(kind, row)
        # filled in place: one array each, not a concatenation and a conversion per label
        ids, weights = np.empty(len(to) + 1, np.int32), np.empty(len(to) + 1, np.float64)
        ids[0], weights[0] = own[row], 1.0
        ids[1:], weights[1:] = linked[to], strength
        return ids, weights

    def feature_arrays(self, label: str, term: str | None, need: bool) -> tuple[np.ndarray, np.ndarray]:
        """The features of one offer or need as the index holds them: (ids int32, weights float64),
        vocabulary and words first, then its semantic links (``analyse`` with names)."""
        ids, weights = self._lexical(label, term, need)
        if self.semantic is None:
            return ids, weights
        kind, other = (NEED, OFFER) if need else (OFFER, NEED)
        if (kind, label) not in self.semantic.ids:
            self.semantic.link_all(kind, [label])  # registered now if it has a vector and is new
        found = self._text_features(kind, label, self._semantic_features(kind), self._semantic_features(other))
        if found is None:
            return ids, weights
        return np.concatenate([ids, found[0]]), np.concatenate([weights, found[1]])

    def analyse(self, label: str, term: str | None, need: bool) -> tuple[Feature, ...]:
        """The features of one offer or need (by id): vocabulary and words, and its semantic links
        (kind ``semantic``, ``via`` the label itself)."""
        features = list(self._lexical_features(label, term, need))
        if self.semantic is not None:
            kind, other = (NEED, OFFER) if need else (OFFER, NEED)
            self.semantic.link_all(kind, [label])  # registered now if it has a vector and is new
            own, linked = self._semantic_features(kind), self._semantic_features(other)
            found = self._text_features(kind, label, own, linked)
            if found is not None:
                features += [Feature(int(f), float(w), "semantic", label) for f, w in zip(*found, strict=True)]
        return tuple(sorted(features, key=lambda f: f.id))

    # --- adding and removing members ---------------------------------------------------------------

    def link_texts(self, cards: list[Card]) -> None:
        """Register and link the cards' new texts (needs first, then offers: blocks of matrix
        products over the other side); ``_append`` then finds their links made."""
        if self.semantic is not None:
            self.semantic.link_all(NEED, [label for card in cards for label, _ in card.needs])
            self.semantic.link_all(OFFER, [label for card in cards for label, _ in card.offers])

    def _append(self, cards: list[Card]) -> None:
        """Give each card the next slot; columns grow once per call, not once per value."""
        cols: dict[str, list] = {name: [] for name in (
            "alive", "group", "consent", "sector", "state", "region", "sme", "tmask", "tcount", "tie", "need_count",
            "need_ptr", "need_owner")}
        rows = self.need_owner.length
        self.link_texts(cards)
        self._bridge_terms([label for card in cards for label, term in card.needs if term not in self.feature_of])
        self._confirm_offers([label for card in cards for label, term in card.offers if term not in self.feature_of])
        semantic = self.semantic is not None
        if semantic:
            features = {NEED: self._semantic_features(NEED), OFFER: self._semantic_features(OFFER)}
        need_parts, need_weights, need_sizes = [], [], []
        offer_parts, offer_weights, offer_cards = [], [], []
        for number, card in enumerate(cards):
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
                ids, weights = self._lexical(label, term, need=True)
                size = len(ids)
                need_parts.append(ids)
                need_weights.append(weights)
                if semantic:
                    found = self._text_features(NEED, label, features[NEED], features[OFFER])
                    if found is not None:
                        need_parts.append(found[0])
                        need_weights.append(found[1])
                        size += len(found[0])
                need_sizes.append(size)
                cols["need_owner"].append(slot)
            rows += len(card.needs)
            cols["need_ptr"].append(rows)
            cols["need_count"].append(len(card.needs))
            for label, term in card.offers:
                ids, weights = self._lexical(label, term, need=False)
                offer_parts.append(ids)
                offer_weights.append(weights)
                offer_cards.append(np.full(len(ids), number, np.int32))
                if semantic:
                    found = self._text_features(OFFER, label, features[OFFER], features[NEED])
                    if found is not None:
                        offer_parts.append(found[0])
                        offer_weights.append(found[1])
                        offer_cards.append(np.full(len(found[0]), number, np.int32))
        for name, values in cols.items():
            getattr(self, name).extend(values)
        # need rows: their features one after the other
        self.nf_feat.extend(np.concatenate(need_parts) if need_parts else np.zeros(0, np.int32))
        self.nf_w.extend(np.concatenate(need_weights) if need_weights else np.zeros(0))
        self.nf_ptr.extend(self.nf_ptr.view[-1] + np.cumsum(np.asarray(need_sizes, np.int64)))
        # offers: per card each feature once, with the best weight among its offers
        feat = np.concatenate(offer_parts) if offer_parts else np.zeros(0, np.int32)
        weight = np.concatenate(offer_weights) if offer_weights else np.zeros(0)
        owner = np.concatenate(offer_cards) if offer_cards else np.zeros(0, np.int32)
        order = np.lexsort((-weight, feat, owner))
        feat, weight, owner = feat[order], weight[order], owner[order]
        first = np.ones(len(feat), np.bool_)
        first[1:] = (feat[1:] != feat[:-1]) | (owner[1:] != owner[:-1])
        self.of_feat.extend(feat[first])
        self.of_w.extend(weight[first])
        self.of_ptr.extend(self.of_ptr.view[-1] + np.cumsum(np.bincount(owner[first], minlength=len(cards))))
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
        offer = kernel.postings(o_feat, o_slot, o_w, keep, features)
        del o_slot, keep
        r_lo, r_hi = self.need_ptr.view[lo], self.need_ptr.view[hi]
        n_lo, n_hi = self.nf_ptr.view[r_lo], self.nf_ptr.view[r_hi]
        n_row = np.repeat(np.arange(r_lo, r_hi, dtype=np.int32), np.diff(self.nf_ptr.view[r_lo: r_hi + 1]))
        n_feat, n_w = self.nf_feat.view[n_lo:n_hi], self.nf_w.view[n_lo:n_hi]
        keep = alive[self.need_owner.view[n_row]] if len(n_row) else np.zeros(0, np.bool_)
        need = kernel.postings(n_feat, n_row, n_w, keep, features)
        return offer + need

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
        self.link_texts(cards)  # every new text at once: one pass over the other side per block
        for start in range(0, len(cards), 5000):
            self._append(cards[start:start + 5000])
            _pause()
        if self.semantic is not None:
            self.semantic.prepare()  # the clusters of a large side now, not at the first event
        self.trim()
        self.compact()
        self.compute_all()

    def trim(self) -> None:
        """Give back the columns' spare capacity after a load (before the postings are built, so
        that the peak is lower too)."""
        for column in vars(self).values():
            if isinstance(column, Column):
                column.trim()
        self._bridged.clear()  # the load's answers: a later event asks for its own labels
        self._confirmed.clear()

    def warm_up(self) -> None:
        """Compile (or load from numba's cache) every kernel now, not on the first event."""
        def member(number: int, sector: str, offers: list[str], needs: list[str]) -> dict:
            return {"id": f"00000000-0000-4000-8000-{number:012d}", "version": 1, "name": f"warm-up {number}",
                    "sector": sector, "region": {"state": "BW", "postcode": "70173", "city": "-"},
                    "size": {"employees": 1, "sme": True, "category": "micro"}, "contact": {"language": "de"},
                    "offers": [{"term": t, "label": t} for t in offers],
                    "needs": [{"term": t, "label": t} for t in needs], "topics": [],
                    "consent": {"suggest_as_partner": True}}

        tiny = type(self)(self.vocabulary, text=self.text)
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

    def link_profiles(self, profiles: list[dict]) -> None:
        """Register and link the new texts of many profiles at once (a batch of events, before each
        is upserted in turn): two blocks of matrix products for the batch instead of two per
        member, with the links ``load`` would make for them (needs first, then offers). Texts
        without a vector yet are left for ``upsert``."""
        self.link_texts([card_from_profile(profile) for profile in profiles])

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
