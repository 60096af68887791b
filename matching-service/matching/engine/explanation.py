"""Explaining a pair: why B is a partner for A, as match-suggestion.v1 describes
it (the score's weighted parts and reasons in A's contact language), computed
pairwise from the cards (the index only ranks)."""
from __future__ import annotations

import re

import numpy as np

from matching.engine.cards import BORDERS, CARD_FEATURES_KEPT, STATE_CODES, WEIGHTS, Card, Feature
from matching.text import stem, words
from verbund import wording

# How well a need and an offer fit by meaning, as bands of the strength (0 at 2.0 standard deviations
# above what a text typically scores, about the top 2 % of pairs, rising linearly to 1.0 at 5.0:
# semantic.Calibration): from 0.75 (about 4.25 SD) very well, from 0.45 (about 3.35 SD, what a shared
# word alone counts) well, below that only loosely (just above the threshold the model links texts
# that merely share a field). The band travels with the reason (``fit``), so that pages and mails word
# it without a copy of these thresholds (their words: ``verbund.wording.FIT``); suggestions stored
# before "loosely" say "partly" for it.
FIT_BANDS = ((0.75, "very_well"), (0.45, "well"), (0.0, "loosely"))
# How close a partner is (``level`` of a region reason) by the proximity the score counts.
REGION_LEVELS = {1.0: "same_postcode_area", 0.7: "same_state", 0.4: "neighbouring_state"}


def fit_band(strength: float) -> str:
    """The band of a semantic match's strength (0–1): "very_well", "well" or "loosely"."""
    return next(band for threshold, band in FIT_BANDS if strength >= threshold or threshold == 0.0)


def shown_word(token: str, *labels: str) -> str:
    """A shared word as a member wrote it: the first word of ``labels`` whose stem is ``token``
    ("Ersatzteile" for "ersatzteil"), else the first word that holds it as a part of a compound
    ("Aluminiumstrangpressprofile" for "strangpressprofil"), else ``token`` itself."""
    written = [word for label in labels for word in re.findall(r"\w+", label)]
    for word in written:
        if [stem(w) for w in words(word)] == [token]:
            return word
    return next((word for word in written if any(token in w for w in words(word))), token)


class Explanation:
    """Part of ``Engine``: uses its ``analyse``, ``card``, ``vocabulary``, ``topic_bit`` and
    ``feature_names`` (``matching.engine.index.Index``)."""

    explanations_reused = 0  # items ``explain_list`` took from the list told before (a counter)

    def _features_of(self, card: Card) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
        """A card's features as arrays, as the index reads them (no ``Feature`` objects: a text
        linked by meaning has dozens): its needs' (feature ids, weights, need index), need by need
        and within a need by feature id; its offers' (feature ids, weights, offer index), by feature
        id and then in offer order. Kept for the cards used last (explaining a list or choosing a
        team meets the same cards again and again)."""
        cached = self._card_features.get(card.id)
        if cached is not None and cached[0] is card:
            return cached[1], cached[2]
        needs = self._sorted_features(card.needs, need=True, order=lambda ids, index: np.lexsort((ids, index)))
        offers = self._sorted_features(card.offers, need=False, order=lambda ids, index: np.argsort(ids, kind="stable"))
        if len(self._card_features) >= CARD_FEATURES_KEPT:
            self._card_features.clear()
        self._card_features[card.id] = (card, needs, offers)
        return needs, offers

    def _sorted_features(self, texts, need: bool, order) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The features of ``texts`` ((label, term) pairs) in one set of arrays (ids, weights, index of
        the text), in ``order(ids, index)``."""
        parts = [self.feature_arrays(label, term, need=need) for label, term in texts]
        if not parts:
            return np.zeros(0, np.int32), np.zeros(0), np.zeros(0, np.int32)
        ids = np.concatenate([ids for ids, _ in parts])
        weights = np.concatenate([weights for _, weights in parts])
        index = np.repeat(np.arange(len(parts), dtype=np.int32), [len(ids) for ids, _ in parts])
        at = order(ids, index)
        return ids[at], weights[at], index[at]

    def _named_feature(self, label: str, term: str | None, need: bool, feature_id: int, weight: float) -> Feature:
        """The ``Feature`` behind one of a text's feature ids: a vocabulary or word feature as
        ``analyse`` names it, else the text's link by meaning (``via`` the text itself)."""
        for feature in self._lexical_kept(label, term, need)[2]:
            if feature.id == feature_id:
                return feature
        return Feature(feature_id, weight, "semantic", label)

    @staticmethod
    def _shared_features(need_ids: np.ndarray, need_weights: np.ndarray, offer_ids: np.ndarray,
                         offer_weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Every (need feature, offer feature with the same id; ids sorted), need feature by need
        feature, in the order the first best wins in: (positions among the need features, positions
        among the offer features, products of their weights); None if they share none."""
        lo = np.searchsorted(offer_ids, need_ids, "left")
        counts = np.searchsorted(offer_ids, need_ids, "right") - lo
        total = int(counts.sum())
        if not total:
            return None
        need_at = np.repeat(np.arange(len(need_ids)), counts)
        offer_at = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts) + np.repeat(lo, counts)
        return need_at, offer_at, need_weights[need_at] * offer_weights[offer_at]

    def _best_matches(self, a: Card, b: Card) -> list[tuple[float, int | None, Feature | None, Feature | None]]:
        """For each of A's needs, B's best offer: (strength, index of the offer, the need's and the
        offer's feature). The first best wins: need features by id, then offers in order. All of
        A's needs at once: a handful of array operations per pair, not per need."""
        need_ids, need_weights, need_index = self._features_of(a)[0]
        offer_ids, offer_weights, offer_index = self._features_of(b)[1]
        result: list[tuple[float, int | None, Feature | None, Feature | None]] = [(0.0, None, None, None)]
        result *= len(a.needs)
        shared = self._shared_features(need_ids, need_weights, offer_ids, offer_weights)
        if shared is None:
            return result
        need_at, offer_at, values = shared
        owner = need_index[need_at]
        ranked = np.lexsort((-values, owner))  # stable: of equal values the first stays first
        grouped = owner[ranked]
        first = np.ones(len(ranked), bool)  # the first of each need's run: its best
        first[1:] = grouped[1:] != grouped[:-1]
        firsts = ranked[first]
        for m in firsts.tolist():
            if values[m] <= 0.0:
                continue
            i, j = int(owner[m]), int(offer_index[offer_at[m]])
            feature_id = int(need_ids[need_at[m]])
            need_label, need_term = a.needs[i]
            offer_label, offer_term = b.offers[j]
            result[i] = (float(values[m]), j,
                         self._named_feature(need_label, need_term, True, feature_id, float(need_weights[need_at[m]])),
                         self._named_feature(offer_label, offer_term, False, feature_id,
                                             float(offer_weights[offer_at[m]])))
        return result

    def need_strengths(self, a: Card, b: Card) -> list[float]:
        """For each of A's needs, the strength (0-1) of B's best offer for it: the strengths of
        ``_best_matches`` without finding and naming the features behind them (for scoring many
        pairs, as the consortia do)."""
        need_ids, need_weights, need_index = self._features_of(a)[0]
        offer_ids, offer_weights, _ = self._features_of(b)[1]
        best = np.zeros(len(a.needs))
        shared = self._shared_features(need_ids, need_weights, offer_ids, offer_weights)
        if shared is not None:
            need_at, _, values = shared
            np.maximum.at(best, need_index[need_at], values)
        return best.tolist()

    def _parts(self, a: Card, b: Card, met: list[float], wanted: list[float]):
        """(raw parts, weighted parts, topics in common) of B as a partner of A, from the strengths
        A's needs are met with (``met``) and B's needs (``wanted``)."""
        need_coverage = sum(met) / len(a.needs) if a.needs else 0.0
        offer_coverage = sum(wanted) / len(b.needs) if b.needs else 0.0
        ta, tb = set(a.topics) & self.topic_bit.keys(), set(b.topics) & self.topic_bit.keys()
        topics = len(ta & tb) / min(len(ta), len(tb)) if ta and tb else 0.0
        raw = {"need_coverage": need_coverage, "offer_coverage": offer_coverage, "topics": topics,
               "proximity": self._proximity(a, b), "sme": 1.0 if b.sme else 0.0}
        return raw, {name: WEIGHTS[name] * value for name, value in raw.items()}, ta & tb

    def pair_score(self, a: Card, b: Card) -> float:
        """``pair(a, b)["score"]``, without the matches behind it."""
        return sum(self._parts(a, b, self.need_strengths(a, b), self.need_strengths(b, a))[1].values())

    def pair(self, a: Card, b: Card) -> dict:
        """B as a partner of A: the score, its weighted parts and the matches behind it."""
        met = self._best_matches(a, b)
        wanted = self._best_matches(b, a)
        raw, parts, common = self._parts(a, b, [m[0] for m in met], [m[0] for m in wanted])
        return {"score": sum(parts.values()), "parts": parts, "raw": raw, "met": met, "wanted": wanted,
                "common_topics": sorted(common), "matches": raw["need_coverage"] + raw["offer_coverage"] > 0}

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
        language = "de" if de else "en"  # any other contact language reads English
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
            text = wording.topics_text(pair["common_topics"], language, self.vocabulary)
            reasons.append({"kind": "topic", "text": text,
                            "topics": pair["common_topics"], "need": None, "offer": None, "term": None})
        proximity = pair["raw"]["proximity"]
        if proximity:
            level = REGION_LEVELS[proximity]
            prefix = b.postcode[:2] if level == "same_postcode_area" else None
            # a state the reference does not know (not from a member's profile) is named as it is
            text = (wording.region_text(level, b.state, prefix, language)
                    or wording.REGION_LEVELS[level][language].format(state=b.state, prefix=prefix))
            reasons.append({"kind": "region", "text": text,
                            "need": None, "offer": None, "term": None, "level": level, "state": b.state,
                            "postcode_prefix": prefix})
        if b.sme:
            reasons.append({"kind": "sme", "text": wording.SME[language], "need": None, "offer": None,
                            "term": None})
        return {"partner_id": b.id, "partner_name": b.name, "partner_sector": b.sector,
                "score": round(pair["score"], 4), "parts": {k: round(v, 4) for k, v in pair["parts"].items()},
                "reasons": reasons}

    def explain_list(self, member_id: str, earlier: list[dict] | None = None) -> list[dict]:
        """The member's suggestions as match-suggestion.v1 items (``explain``), best first, each with
        its ``rank`` (1-based).

        ``earlier``: the list last told to the member, if its fingerprint is the one this engine
        remembered for it (``told``, ``told_list_reusable``): the items of partners that neither
        changed nor were the member itself changed since then are taken from it instead of explained
        again. Every slot is new on an upsert (slots are appended, never reused, until a ``load``), so
        "not upserted since" is "slot below the count of slots then", and the explanation of a pair
        depends on the two cards alone (their texts' features are fixed when they are indexed)."""
        reusable: dict[str, dict] = {}
        if earlier:
            slots_then = self._told[member_id][1]
            if self.slot_of.get(member_id, slots_then) < slots_then:
                reusable = {item["partner_id"]: item for item in earlier
                            if self.slot_of.get(item["partner_id"], slots_then) < slots_then}
        suggestions = []
        for rank, (partner_id, _) in enumerate(self.suggestions(member_id), start=1):
            item = reusable.get(partner_id)
            if item is None:
                item = self.explain(member_id, partner_id)
            else:
                self.explanations_reused += 1
            if item is not None:
                suggestions.append({**item, "rank": rank})
        return suggestions

    def told(self, member_id: str, fingerprint: str) -> None:
        """Remember that the member's list with ``fingerprint`` was computed now (``explain_list``)."""
        self._told[member_id] = (fingerprint, len(self.ids))

    def told_list_reusable(self, member_id: str, fingerprint: str | None) -> bool:
        """Whether the stored list with ``fingerprint`` is one this engine computed (its items can be
        given to ``explain_list``): not one another instance wrote, nor one from before a ``load``."""
        return fingerprint is not None and self._told.get(member_id, (None,))[0] == fingerprint

    def _semantic_reason(self, kind, need_label, offer_label, strength, de: bool) -> dict:
        band = fit_band(strength)
        text = wording.match_text(kind, need_label, offer_label, "de" if de else "en", fit=band, strength=strength)
        return {"kind": kind, "text": text, "need": need_label, "offer": offer_label, "term": None,
                "strength": round(strength, 4), "fit": band, "match": "semantic"}

    def _match_reason(self, kind, need_label, offer_label, strength, feature: Feature, de: bool) -> dict:
        """A need met by an offer (or an offer wanted by a need): ``term`` is the offer's vocabulary term,
        ``via`` how an indirect match links them (related: the need's own term, related to ``term``;
        word: the one word both texts share)."""
        via = feature.via
        language = "de" if de else "en"
        if feature.kind == "semantic":
            # Only said when the embeddings really link these two texts (the strength is theirs).
            return self._semantic_reason(kind, need_label, offer_label, strength, de)
        if feature.kind == "word":
            via = shown_word(via, need_label, offer_label)
            how = wording.word_link(via, language)
            term = None
        else:
            term = via
            if feature.kind == "related":
                term = self.feature_names[feature.id]
                how = wording.related_link(via, term, language, self.vocabulary)
            elif feature.kind == "similar":
                how = wording.similar_link(self.vocabulary.competencies[via].label(language), language)
            else:
                how = wording.term_link(self.vocabulary.competencies[via].label(language), language)
        text = wording.match_text(kind, need_label, offer_label, language, link=how)
        reason = {"kind": kind, "text": text, "need": need_label, "offer": offer_label, "term": term,
                  "strength": round(strength, 4), "match": feature.kind}
        if feature.kind in ("related", "word"):
            reason["via"] = via
        return reason
