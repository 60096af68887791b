"""Pair scores for a given set of members (meetings-service ranks whom to meet at a matchmaking day with
them): for one member, each of the others from another sector scored and explained by the engine, as a
suggestion would be (the same score, parts and reasons, in the member's language), best first."""
from __future__ import annotations

from marshmallow import Schema, fields, validate

from matching.engine import Engine
from verbund.auth import Principal
from verbund.database import UnitOfWork
from verbund.errors import Forbidden, NotFound
from verbund.schema_fields import Text

MAX_OTHERS = 2000  # a large matchmaking day; more would be a bulk export, not a ranking


class PairScoresSchema(Schema):
    member_id = Text(required=True, validate=validate.Length(min=1, max=36))
    others = fields.List(Text(validate=validate.Length(min=1, max=36)), required=True,
                         validate=validate.Length(max=MAX_OTHERS))


def pair_scores(uow: UnitOfWork, engine: Engine, principal: Principal, body: dict) -> dict:
    """``{"member_id", "items": [{member_id, name, sector, score, parts, reasons}]}``: the ``others`` that are
    known, of another sector than the member, scored best first (ties by id); others are left out.
    403 for another member's scores; 404 when the member is not known to matching."""
    member_id = body["member_id"]
    if not principal.is_admin and not principal.is_member(member_id):
        raise Forbidden("a member sees its own pair scores only")
    card = engine.card(member_id)
    if card is None:
        raise NotFound(f"member {member_id} is not known to matching (no profile, or no consent to be suggested)")
    items = []
    for other in dict.fromkeys(body["others"]):
        partner = engine.card(other)
        if other == member_id or partner is None or partner.sector == card.sector:
            continue
        explained = engine.explain(member_id, other)
        if explained is not None:
            items.append({"member_id": other, "name": explained["partner_name"],
                          "sector": explained["partner_sector"], "score": explained["score"],
                          "parts": explained["parts"], "reasons": explained["reasons"]})
    items.sort(key=lambda item: (-item["score"], item["member_id"]))
    return {"member_id": member_id, "items": items}
