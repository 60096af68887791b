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

from matching.engine.cards import WEIGHTS, Card, Changes, Feature, card_from_profile, tiebreak
from matching.engine.consortium import Consortium
from matching.engine.explanation import Explanation
from matching.engine.index import Index


class Engine(Consortium, Explanation, Index):
    """The matching engine: ``load``/``upsert``/``remove`` profiles, ``suggestions`` and
    ``all_suggestions`` (the index), ``explain`` and ``pair`` (the explanation), ``propose`` and
    ``propose_for_topic`` (the consortia)."""


__all__ = ["WEIGHTS", "Card", "Changes", "Consortium", "Engine", "Explanation", "Feature", "Index",
           "card_from_profile", "tiebreak"]
