"""Explaining a pair: why B is a partner for A, as match-suggestion.v1 describes
it (the score's weighted parts and reasons in A's contact language), computed
pairwise from the cards (the index only ranks)."""
from __future__ import annotations

from matching.engine.cards import BORDERS, CARD_FEATURES_KEPT, STATE_CODES, WEIGHTS, Card, Feature
from verbund.reference import STATES

# How well a need and an offer fit by meaning, as bands of the strength (0 at 2.0 standard deviations
# above what a text typically scores, about the top 2 % of pairs, rising linearly to 1.0 at 5.0:
# semantic.Calibration): from 0.75 (about 4.25 SD) very well, from 0.45 (about 3.35 SD, what a shared
# word alone counts) well, below that partly. The band travels with the reason (``fit``), so that
# pages and mails word it without a copy of these thresholds.
FIT_BANDS = ((0.75, "very_well"), (0.45, "well"), (0.0, "partly"))
FIT_WORDS = {"very_well": ("sehr gut", "very well"), "well": ("gut", "well"), "partly": ("teilweise", "partly")}


def fit_band(strength: float) -> str:
    """The band of a semantic match's strength (0–1): "very_well", "well" or "partly"."""
    return next(band for threshold, band in FIT_BANDS if strength >= threshold or threshold == 0.0)


class Explanation:
    """Part of ``Engine``: uses its ``analyse``, ``card``, ``vocabulary``, ``topic_bit`` and
    ``feature_names`` (``matching.engine.index.Index``)."""


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
                    0.4: (f"Benachbartes Bundesland ({state})", f"Neighbouring state ({state})"),
                    }[proximity][0 if de else 1]
            reasons.append({"kind": "region", "text": text, "need": None, "offer": None, "term": None})
        if b.sme:
            reasons.append({"kind": "sme", "text": ("Kleines oder mittleres Unternehmen" if de
                                                    else "Small or mid-sized enterprise"),
                            "need": None, "offer": None, "term": None})
        return {"partner_id": b.id, "partner_name": b.name, "partner_sector": b.sector,
                "score": round(pair["score"], 4), "parts": {k: round(v, 4) for k, v in pair["parts"].items()},
                "reasons": reasons}

    def _semantic_reason(self, kind, need_label, offer_label, strength, de: bool) -> dict:
        band = fit_band(strength)
        how = FIT_WORDS[band][0 if de else 1]
        percent = round(100 * strength)
        if kind == "need_met":
            text = (f"Ihr Bedarf „{need_label}“ passt inhaltlich {how} zu deren Angebot „{offer_label}“ "
                    f"(Stärke {percent} %)" if de else
                    f"Your need '{need_label}' fits their offer '{offer_label}' {how} in substance "
                    f"(strength {percent}%)")
        else:
            text = (f"Ihr Angebot „{offer_label}“ passt inhaltlich {how} zu deren Bedarf „{need_label}“ "
                    f"(Stärke {percent} %)" if de else
                    f"Your offer '{offer_label}' fits their need '{need_label}' {how} in substance "
                    f"(strength {percent}%)")
        return {"kind": kind, "text": text, "need": need_label, "offer": offer_label, "term": None,
                "strength": round(strength, 4), "fit": band, "match": "semantic"}

    def _match_reason(self, kind, need_label, offer_label, strength, feature: Feature, de: bool) -> dict:
        via = feature.via
        if feature.kind == "semantic":
            # Only said when the embeddings really link these two texts (the strength is theirs).
            return self._semantic_reason(kind, need_label, offer_label, strength, de)
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
