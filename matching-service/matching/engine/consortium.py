"""Partner-project consortia: 2-4 members from at least two sectors around one
member's needs (the anchor), chosen by a greedy set cover over its best
partners, preferring a third sector and partners that fit each other."""
from __future__ import annotations

import numpy as np

from matching import wording
from matching.engine.cards import MAX_CONSORTIUM, PROPOSAL_POOL, Card


class Consortium:
    """Part of ``Engine``: uses the index (``_score``, ``cards``, ``slot_of``) and the explanation
    (``need_strengths``, ``pair_score``, ``_best_matches``)."""


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
        # strengths only for the pool; the matches behind them are named for the team chosen
        coverage = {b.id: self.need_strengths(anchor, b) for b in pool}
        pair_scores: dict[tuple[str, str], float] = {}

        def mutual(x: Card, y: Card) -> float:
            key = (x.id, y.id) if x.id < y.id else (y.id, x.id)
            if key not in pair_scores:
                pair_scores[key] = (self.pair_score(x, y) + self.pair_score(y, x)) / 2
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

        def earlier(team) -> bool:
            # Proposed before, or a part of a team proposed before: closing a team and proposing it
            # again, or what is left of it, would go round in circles.
            ids = frozenset(m.id for m in team)
            return any(ids <= before for before in proposed)

        def rated(team, covered):
            sectors = sorted({m.sector for m in team})
            pairs = [mutual(x, y) for i, x in enumerate(team) for y in team[i + 1:]]
            score = 0.6 * sum(covered) / len(covered) + 0.2 * (len(sectors) - 1) / 2 + 0.2 * sum(pairs) / len(pairs)
            return score, team, covered, sectors

        team, covered = greedy(set())
        if len(team) < 2:
            return None
        options = [(team, covered)]
        if earlier(team):
            # The best team without one of its partners (and with someone new instead).
            options = [greedy({m.id}) for m in team[1:]]
        options = [rated(t, c) for t, c in options if len(t) >= 2 and not earlier(t)]
        if not options:
            return None
        score, team, covered, sectors = max(options, key=lambda option: option[0])
        need_coverage = sum(covered) / len(covered)
        return {"anchor_id": anchor.id, "topic": topic or self._main_topic(team),
                "members": [{"member_id": m.id, "name": m.name, "sector": m.sector} for m in team],
                "sectors": sectors, "score": round(score, 4), "need_coverage": round(need_coverage, 4),
                "title": self._title(anchor, topic, covered),
                "explanation": self._consortium_reasons(
                    anchor, team, {m.id: self._best_matches(anchor, m) for m in team[1:]})}

    def team_coverage(self, anchor_id: str, member_ids) -> float:
        """The share of the anchor's needs (0-1, each need with the strength it is met with) that
        these members cover as their profiles are now; members who left or withdrew consent count
        for nothing, an anchor without needs (or unknown) gets 0."""
        anchor = self.card(anchor_id)
        if anchor is None or not anchor.needs:
            return 0.0
        covered = [0.0] * len(anchor.needs)
        for member_id in member_ids:
            partner = self.card(member_id)
            if member_id == anchor_id or partner is None or not partner.consent:
                continue
            covered = [max(have, c) for have, c in zip(covered, self.need_strengths(anchor, partner), strict=True)]
        return round(sum(covered) / len(covered), 4)

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

    def _title(self, anchor: Card, topic: str | None, covered: list[float]) -> str:
        """In the anchor's language: the topic asked for, or the needs the team covers (never one it
        leaves open), the best covered first, at most three (``wording.about``; ``wording.titles``
        tells the same title in either language)."""
        language = "de" if anchor.language == "de" else "en"
        if topic and topic in self.vocabulary.topics:
            subject = self.vocabulary.topics[topic].label(language)
        else:
            met = sorted((i for i, strength in enumerate(covered) if strength > 0), key=lambda i: (-covered[i], i))
            subject = wording.about([anchor.needs[i][0] for i in met], language)
        return wording.TITLE[language].format(subject)

    def _consortium_reasons(self, anchor: Card, team: list[Card], covers) -> list[dict]:
        reasons = []
        for i, (need, term) in enumerate(anchor.needs):
            best = max(((covers[m.id][i][0], m, covers[m.id][i][1], covers[m.id][i][2]) for m in team[1:]),
                       key=lambda t: t[0])
            # The need's vocabulary term (if it is one), so the title can be told in either language.
            named = {"need_term": term} if term else {}
            if best[0] > 0:
                reasons.append({"kind": "need_covered", "need": need, **named, "member_id": best[1].id,
                                "member_name": best[1].name, "offer": best[1].offers[best[2]][0],
                                "strength": round(best[0], 4), "match": best[3].kind})
            else:
                reasons.append({"kind": "need_open", "need": need, **named})
        reasons.append({"kind": "sectors", "sectors": sorted({m.sector for m in team})})
        shared = set.intersection(*(set(m.topics) for m in team)) if team else set()
        if shared:
            reasons.append({"kind": "topics", "topics": sorted(shared)})
        return reasons
