"""Whom to meet: the other participants of an event, ranked by matching-service's cross-sector pair
scores with its reasons (``POST /pair-scores``). When matching cannot be reached or refuses, the list
comes unranked (in id order) with a notice saying so: the participant can still choose."""
from __future__ import annotations

import logging
from datetime import timedelta

import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from meetings import domain
from meetings.models import Member, Participant
from meetings.queries import load_setup
from verbund import auth
from verbund.auth import Principal
from verbund.errors import Forbidden
from verbund.settings import Settings, env

log = logging.getLogger(__name__)
TIMEOUT_SECONDS = 5.0
NOTICE = {"de": "Die Rangfolge nach Passung ist gerade nicht verfügbar; die Teilnehmenden stehen ungeordnet da.",
          "en": "Ranking by fit is not available right now; participants are listed unranked."}


def matching_url() -> str:
    """``MATCHING_URL``, else matching-service's address from the settings."""
    if env("MATCHING_URL"):
        return env("MATCHING_URL").rstrip("/")
    settings = Settings.from_env("matching")
    return f"http://{settings.http_host}:{settings.http_port}"


def others(session: Session, principal: Principal, event_id: str) -> list[str]:
    """The active participants the signed-in participant may request (the set-up's sector rule), in id order.
    403 when it does not take part itself; 404 no meetings at the event."""
    setup = load_setup(session, event_id)
    me = session.get(Participant, (event_id, principal.member_id))
    if me is None or not me.active:
        raise Forbidden("opt in to the meetings of this event first")
    ids = session.execute(select(Participant.member_id).where(
        Participant.event_id == event_id, Participant.active.is_(True), Participant.member_id != principal.member_id)
        .order_by(Participant.member_id)).scalars().all()
    sectors = dict(session.execute(select(Member.id, Member.sector).where(
        Member.id.in_([principal.member_id, *ids]))).all())
    return [other for other in ids if domain.may_request(setup.who_may_request, setup.sector_pairs,
                                                         sectors.get(principal.member_id), sectors.get(other))]


def ranked(member_id: str, candidates: list[str], language: str = "en") -> dict:
    """``{"ranked": bool, "notice": str | None, "items": [{member_id, score, reasons, sector, name}]}``:
    scored candidates best first, then the ones matching did not score (score null)."""
    if not candidates:
        return {"ranked": True, "notice": None, "items": []}
    token = auth.issue("admin", "meetings-service", ttl=timedelta(minutes=1))
    try:
        response = requests.post(f"{matching_url()}/pair-scores", json={"member_id": member_id,
                                                                        "others": candidates},
                                 headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT_SECONDS)
        response.raise_for_status()
        scored = response.json()["items"]
    except (requests.RequestException, ValueError, KeyError) as exc:
        log.warning("matching-service gave no pair scores: %s", exc)
        return {"ranked": False, "notice": NOTICE[language],
                "items": [{"member_id": other, "score": None, "reasons": [], "sector": None, "name": None}
                          for other in candidates]}
    by_id = {item["member_id"]: item for item in scored if item.get("member_id") in candidates}
    items = sorted(by_id.values(), key=lambda item: (-item["score"], item["member_id"]))
    items += [{"member_id": other, "score": None, "reasons": [], "sector": None, "name": None}
              for other in candidates if other not in by_id]
    return {"ranked": True, "notice": None, "items": items}
