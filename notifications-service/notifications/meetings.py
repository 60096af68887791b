"""Meetings at matchmaking days (issue 18): the read models notifications keep of joint events and
1:1 meetings, what a consumed ``meeting.*`` event's mail needs to know besides its ids (the event's
title and time zone, the organisations' names: the events carry ids only), and the timed mails —
a reminder before each meeting, a daily summary of open requests, the follow-up survey.

Timed mails are events this service makes itself (``domain.INTERNAL_TYPES``) with an id derived from
what they are about (a meeting and its start, a member and a day, an event and a member). They go
through the idempotent inbox (``Store.handle``) and the ordinary fan-out, so each is written once
however often or on how many instances the timer runs, and the dispatcher sends them like any other
mail (policy, preferences, language, webhooks)."""
from __future__ import annotations

import logging
import uuid
from datetime import datetime

from sqlalchemy import or_, select

from notifications import domain
from notifications.models import JointEventSeen, MeetingSeen, Recipient
from verbund import envelope
from verbund.database import Store, UnitOfWork

log = logging.getLogger(__name__)

SOURCE = "/verbund/notifications"
_NAMESPACE = uuid.UUID("0b7d3d52-5f7e-4c11-9a43-1d2b8e6c7f90")


def _moment(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


# --- read models ------------------------------------------------------------------------------------

def keep_event(uow: UnitOfWork, event: dict) -> None:
    """``event.scheduled/updated/cancelled``: remember the joint event's title, time zone, times and
    status (a newer version only)."""
    joint = event["data"].get("event")
    if not isinstance(joint, dict) or "id" not in joint:
        return
    row = uow.session.get(JointEventSeen, joint["id"], with_for_update=True)
    version = int(joint.get("version") or 1)
    if row is not None and row.version > version:
        return
    if row is None:
        row = JointEventSeen(event_id=joint["id"])
        uow.session.add(row)
    row.version, row.title, row.kind = version, joint.get("title") or "", joint.get("kind")
    row.timezone = joint.get("timezone")
    row.starts_at, row.ends_at = _moment(joint.get("starts_at")), _moment(joint.get("ends_at"))
    row.status = "cancelled" if event["type"] == "event.cancelled" else joint.get("status")


def keep_meeting(uow: UnitOfWork, event: dict) -> None:
    """``meeting.*``: remember the meeting as it now is (an older version than the one held is
    ignored, so a late ``meeting.requested`` cannot reopen a cancelled meeting)."""
    meeting = event["data"]["meeting"]
    row = uow.session.get(MeetingSeen, meeting["id"], with_for_update=True)
    if row is not None and row.version > int(meeting["version"]):
        return
    if row is None:
        row = MeetingSeen(id=meeting["id"], requested_at=_moment(event["time"]))
        uow.session.add(row)
    row.event_id, row.requester_id, row.recipient_id = (meeting["event_id"], meeting["requester_id"],
                                                        meeting["recipient_id"])
    row.status, row.version = meeting["status"], int(meeting["version"])
    row.slot, row.table_no = meeting.get("slot"), meeting.get("table")
    row.starts_at, row.ends_at = _moment(meeting.get("starts_at")), _moment(meeting.get("ends_at"))
    if event["type"] == "meeting.requested":
        row.requested_at = _moment(event["time"])
        row.expires_at = _moment(event["data"].get("expires_at"))


def forget_member(uow: UnitOfWork, member_id: str) -> None:
    """Erasure: the member's meetings leave the read model (the other side's reminders and survey
    entries for them go too: a meeting with an erased member is nobody's to remember here)."""
    from sqlalchemy import delete

    uow.session.execute(delete(MeetingSeen).where(or_(MeetingSeen.requester_id == member_id,
                                                      MeetingSeen.recipient_id == member_id)))


def context(uow: UnitOfWork, event_id: str, member_ids) -> dict:
    """What a meeting mail shows besides ids: the joint event (``id``, ``title``, ``timezone``) as far
    as it is known, and the organisations' names by member id (None for a member not known yet)."""
    joint = uow.session.get(JointEventSeen, event_id)
    ids = list(dict.fromkeys(member_ids))
    names = dict(uow.session.execute(select(Recipient.member_id, Recipient.name)
                                     .where(Recipient.member_id.in_(ids), Recipient.deleted.is_(False))).all())
    return {"event": {"id": event_id, "title": joint.title if joint else None,
                      "timezone": joint.timezone if joint else None},
            "names": {member_id: names.get(member_id) for member_id in ids}}


def enrich(uow: UnitOfWork, event: dict) -> dict:
    """A consumed ``meeting.*`` event with ``data.context`` (``context``) for its mails; integrators
    get the event without it (``dispatch.webhook_payload``)."""
    meeting = event["data"]["meeting"]
    data = {**event["data"], "context": context(uow, meeting["event_id"],
                                                (meeting["requester_id"], meeting["recipient_id"]))}
    return {**event, "data": data}


# --- timed mails ----------------------------------------------------------------------------------------

def _internal(type_: str, key: str, member_id: str, data: dict, now: datetime) -> dict:
    return {"specversion": "1.0", "id": str(uuid.uuid5(_NAMESPACE, f"{type_}:{key}")), "source": SOURCE,
            "type": type_, "subject": member_id, "time": envelope.isoformat(now),
            "datacontenttype": "application/json", "dataschema": "", "data": {"member_id": member_id, **data}}


def _meeting_data(row: MeetingSeen) -> dict:
    return {"id": row.id, "event_id": row.event_id, "requester_id": row.requester_id,
            "recipient_id": row.recipient_id, "status": row.status, "slot": row.slot,
            "starts_at": envelope.isoformat(domain.utc(row.starts_at)) if row.starts_at else None,
            "ends_at": envelope.isoformat(domain.utc(row.ends_at)) if row.ends_at else None,
            "table": row.table_no, "version": row.version}


def run_timers(store: Store, times: domain.MeetingTimes, notify, now: datetime | None = None) -> dict:
    """Write what is due now: reminders, daily summaries of open requests, surveys. ``notify(uow,
    event)`` fans one out (``services.on_event`` with the operator's policy). Returns how many of
    each were written: ``{reminders, summaries, surveys}``. Safe to run often and on several
    instances: each timed mail has one id and is claimed in the inbox."""
    now = now or store.clock()
    return {"reminders": _reminders(store, times, notify, now), "summaries": _summaries(store, times, notify, now),
            "surveys": _surveys(store, times, notify, now)}


def _handle(store: Store, event: dict, effect) -> bool:
    def handler(uow, event):
        effect(uow)

    return store.handle(event, handler)


def _reminders(store: Store, times: domain.MeetingTimes, notify, now: datetime) -> int:
    with store.unit_of_work() as uow:
        rows = list(uow.session.execute(select(MeetingSeen).where(
            MeetingSeen.status == "accepted", MeetingSeen.starts_at.is_not(None),
            MeetingSeen.starts_at > now)).scalars())
    due = [row for row in rows if domain.reminder_due(row.status, row.starts_at, row.reminded_for, now,
                                                      times.reminder_minutes)]
    written = 0
    for row in due:
        meeting = _meeting_data(row)
        for member_id in (row.requester_id, row.recipient_id):
            def effect(uow, member_id=member_id, meeting=meeting, row_id=row.id):
                event = _internal("meeting.reminder", f"{row_id}:{meeting['starts_at']}:{member_id}", member_id,
                                  {"meeting": meeting, "others": [domain.other_side(meeting, member_id)],
                                   "context": context(uow, meeting["event_id"],
                                                      (meeting["requester_id"], meeting["recipient_id"]))}, now)
                notify(uow, event)
                seen = uow.session.get(MeetingSeen, row_id, with_for_update=True)
                if seen is not None:
                    seen.reminded_for = _moment(meeting["starts_at"])

            key = f"{row.id}:{meeting['starts_at']}:{member_id}"
            written += _handle(store, _internal("meeting.reminder", key, member_id, {}, now), effect)
    return written


def _summaries(store: Store, times: domain.MeetingTimes, notify, now: datetime) -> int:
    slot = domain.summary_slot(now, times.summary_hour, times.timezone)
    if slot is None:
        return 0
    day = slot.date().isoformat()
    with store.unit_of_work() as uow:
        rows = list(uow.session.execute(select(MeetingSeen).where(MeetingSeen.status == "pending")
                                        .order_by(MeetingSeen.requested_at)).scalars())
    waiting: dict[tuple[str, str], list[MeetingSeen]] = {}
    for row in rows:
        if domain.open_request(row.status, row.requested_at, row.expires_at, now, times.summary_min_age_hours):
            waiting.setdefault((row.recipient_id, row.event_id), []).append(row)
    written = 0
    for (member_id, event_id), requests in waiting.items():
        key = f"{event_id}:{member_id}:{day}"  # at most one a day

        def effect(uow, member_id=member_id, event_id=event_id, requests=requests, key=key):
            items = [{"meeting_id": r.id, "requester_id": r.requester_id,
                      "expires_at": envelope.isoformat(domain.utc(r.expires_at)) if r.expires_at else None}
                     for r in requests]
            notify(uow, _internal("meeting.requests_pending", key, member_id, {
                "event_id": event_id, "requests": items, "others": [r.requester_id for r in requests],
                "context": context(uow, event_id, [member_id, *(r.requester_id for r in requests)])}, now))

        written += _handle(store, _internal("meeting.requests_pending", key, member_id, {}, now), effect)
    return written


def _surveys(store: Store, times: domain.MeetingTimes, notify, now: datetime) -> int:
    with store.unit_of_work() as uow:
        events = [row for row in uow.session.execute(select(JointEventSeen).where(
            JointEventSeen.surveyed_at.is_(None), JointEventSeen.ends_at.is_not(None))).scalars()
            if domain.survey_due(row.ends_at, row.status, now, times.survey_delay_days)]
    written = 0
    for joint in events:
        with store.unit_of_work() as uow:
            rows = list(uow.session.execute(select(MeetingSeen).where(MeetingSeen.event_id == joint.event_id))
                        .scalars())
        per_member: dict[str, list[dict]] = {}
        for row in rows:
            for member_id in (row.requester_id, row.recipient_id):
                per_member.setdefault(member_id, []).append(_meeting_data(row))
        for member_id, meetings in per_member.items():
            asked = domain.surveyed_meetings(meetings)
            if not asked:
                continue
            key = f"{joint.event_id}:{member_id}"

            def effect(uow, member_id=member_id, asked=asked, key=key, event_id=joint.event_id):
                others = [domain.other_side(m, member_id) for m in asked]
                notify(uow, _internal("meeting.survey", key, member_id, {
                    "event_id": event_id, "meetings": asked, "others": others,
                    "context": context(uow, event_id, [member_id, *others])}, now))

            written += _handle(store, _internal("meeting.survey", key, member_id, {}, now), effect)
        with store.unit_of_work() as uow:
            row = uow.session.get(JointEventSeen, joint.event_id, with_for_update=True)
            if row is not None:
                row.surveyed_at = now
    return written
