"""The rules of notifications: who hears of what, in which language, when a
digest is due, how long to wait before a retry, what erasure removes. No
I/O, no nameko: plain functions."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from itsdangerous import BadSignature, URLSafeSerializer

from verbund.errors import Forbidden, Unprocessable
from verbund.reference import LANGUAGES
from verbund.topics import covers, topic_matches

CHANNELS = ("inbox", "email", "webhook")
# ``frequency`` in the preferences: how often news reach the member by e-mail (in a digest daily or
# weekly, or each on its own); what needs the member goes out at once whatever it says.
FREQUENCIES = ("immediately", "daily", "weekly")
DIGEST_FREQUENCIES = ("daily", "weekly")
DEFAULT_FREQUENCY = "weekly"
DEFAULT_LANGUAGE = "de"

# Which template tells a member of which event.
KINDS = {
    "event.scheduled": "event_announced",
    "event.updated": "event_updated",
    "event.cancelled": "event_cancelled",
    "registration.confirmed": "registration_confirmed",
    "registration.waitlisted": "registration_waitlisted",
    "registration.promoted": "registration_promoted",
    "registration.cancelled": "registration_cancelled",
    "match.suggested": "match_suggested",
    "project.proposed": "project_proposed",
    "project.formed": "project_formed",
    "project.closed": "project_closed",
    "contact.requested": "contact_requested",
    "contact.accepted": "contact_accepted",
    "contact.declined": "contact_declined",
    # 1:1 meetings at matchmaking days (meetings-service, issue 18)
    "meeting.requested": "meeting_requested",
    "meeting.accepted": "meeting_accepted",
    "meeting.declined": "meeting_declined",
    "meeting.scheduled": "meeting_scheduled",
    "meeting.cancelled": "meeting_cancelled",
    # made here by the meetings timers (``notifications.meetings``), never consumed from the broker
    "meeting.reminder": "meeting_reminder",
    "meeting.requests_pending": "meeting_requests_pending",
    "meeting.survey": "meeting_survey",
}

# Types this service makes itself from its timers: fanned out like consumed events, but never
# delivered to integrators (they are no platform events).
INTERNAL_TYPES = ("meeting.reminder", "meeting.requests_pending", "meeting.survey")
# The portal pages of an event's matchmaking day: where a member answers requests and finds partners
# (``MATCHMAKING_PATH``), its personal agenda (``AGENDA_PATH``, print and calendar too) and one
# meeting's outcome. A mail links to the page its words name ("Ihr Ablaufplan" → the agenda).
MATCHMAKING_PATH = "/events/{event_id}/matchmaking"
AGENDA_PATH = "/events/{event_id}/agenda"
OUTCOME_PATH = "/events/{event_id}/meetings/{meeting_id}/outcome"


# --- the notification policy -----------------------------------------------------------------------
#
# Which kinds need the member (``action``: mailed at once) and which are news (``news``: inbox and the
# member's digest), and the portal page where the member acts on it. The README's policy table is
# this table. A member overrides a kind in its preferences (``MODES``).

ACTION, NEWS = "action", "news"
# What a member may choose per kind: mail it at once, collect it in the digest, or the inbox only.
MODES = ("immediately", "digest", "inbox")


@dataclass(frozen=True)
class Rule:
    """How one kind of notification reaches a member by default, and where it acts on it."""
    kind: str
    need: str  # ACTION or NEWS
    path: str  # the portal page, "{event_id}" filled in from the notification
    label_de: str
    label_en: str


POLICY: dict[str, Rule] = {rule.kind: rule for rule in (
    # Contact requests between members (``contact.*`` of members-service): a request waits for an
    # answer and an acceptance opens the contact details, so both go at once; a decline is news.
    Rule("contact_requested", ACTION, "/contacts", "Kontaktanfrage", "contact request"),
    Rule("contact_accepted", ACTION, "/contacts", "Kontaktanfrage angenommen", "contact request accepted"),
    Rule("project_proposed", ACTION, "/projects", "Einladung zu einem Partnerprojekt",
         "invitation to a partner project"),
    Rule("project_formed", ACTION, "/projects", "Partnerprojekt steht", "partner project formed"),
    Rule("registration_confirmed", ACTION, "/events/{event_id}", "Anmeldung bestätigt", "registration confirmed"),
    Rule("registration_waitlisted", ACTION, "/events/{event_id}", "Warteliste", "waitlisted"),
    Rule("registration_promoted", ACTION, "/events/{event_id}", "von der Warteliste nachgerückt",
         "moved up from the waitlist"),
    Rule("registration_cancelled", ACTION, "/events/{event_id}", "Anmeldung storniert", "registration cancelled"),
    Rule("event_updated", ACTION, "/events/{event_id}", "Veranstaltung geändert", "event changed"),
    Rule("event_cancelled", ACTION, "/events/{event_id}", "Veranstaltung abgesagt", "event cancelled"),
    # Meetings: a request waits for an answer; an acceptance, a slot and a cancellation change the
    # member's day at the fair; reminders, the daily summary of open requests and the survey ask for
    # something. A decline is news (neutral words, in the inbox and the digest).
    Rule("meeting_requested", ACTION, MATCHMAKING_PATH, "Gesprächsanfrage", "meeting request"),
    Rule("meeting_accepted", ACTION, MATCHMAKING_PATH, "Gesprächsanfrage angenommen", "meeting request accepted"),
    Rule("meeting_scheduled", ACTION, AGENDA_PATH, "Gesprächstermin", "meeting time"),
    Rule("meeting_cancelled", ACTION, MATCHMAKING_PATH, "Gespräch abgesagt", "meeting cancelled"),
    Rule("meeting_reminder", ACTION, AGENDA_PATH, "Erinnerung an ein Gespräch", "meeting reminder"),
    Rule("meeting_requests_pending", ACTION, MATCHMAKING_PATH, "offene Gesprächsanfragen", "open meeting requests"),
    Rule("meeting_survey", ACTION, AGENDA_PATH, "Umfrage zu Ihren Gesprächen", "survey on your meetings"),
    Rule("meeting_declined", NEWS, MATCHMAKING_PATH, "Gesprächsanfrage abgelehnt", "meeting request declined"),
    Rule("contact_declined", NEWS, "/contacts", "Kontaktanfrage abgelehnt", "contact request declined"),
    Rule("project_closed", NEWS, "/projects", "Projektvorschlag beendet", "project proposal closed"),
    Rule("match_suggested", NEWS, "/suggestions", "Partnervorschläge geändert", "partner suggestions changed"),
    Rule("event_announced", NEWS, "/events/{event_id}", "neue passende Veranstaltung", "new event that fits"),
)}


@dataclass(frozen=True)
class MailPolicy:
    """The operator's settings of the policy (``Config.policy``): the frequency of a member who
    chose none, how long an immediate mail waits for more changes of its topic (seconds; the
    first change's mail leaves at most this long after it), and how many immediate mails a member
    gets a day at most (0: no limit; overflow goes to the digest)."""
    default_frequency: str = DEFAULT_FREQUENCY
    coalesce_seconds: float = 30.0
    daily_budget: int = 8


def mail_mode(kind: str, override: str | None, frequency: str | None,
              default_frequency: str = DEFAULT_FREQUENCY) -> str:
    """How a member's e-mail of a ``kind`` goes: ``immediately``, ``digest`` or ``inbox`` (no mail).

    The member's per-kind ``override`` wins; else what needs the member goes at once and news go
    to the digest, unless the member's ``frequency`` (None: ``default_frequency``) is
    ``immediately``. The SQL in ``services.fanout`` does the same for an announcement's audience."""
    if override in MODES:
        return override
    rule = POLICY.get(kind)
    if rule is None or rule.need == ACTION:
        return "immediately"
    return "immediately" if (frequency or default_frequency) == "immediately" else "digest"


def holder_kind(kind: str) -> str:
    """The policy kind for a member told of an event's change only because it was invited (it holds
    the announcement, not a registration): news about its invitation, as the announcement was."""
    return "event_announced" if kind in ("event_updated", "event_cancelled") else kind


def digest_period(frequency: str | None, default_frequency: str = DEFAULT_FREQUENCY) -> str:
    """When a member's digest comes: its frequency if that is ``daily`` or ``weekly``; a member
    who takes news at once gets what overflowed its budget or what it put in the digest daily."""
    frequency = frequency or default_frequency
    return frequency if frequency in DIGEST_FREQUENCIES else "daily"


def action_path(kind: str, data: dict) -> str:
    """The portal path where the member acts on a notification of ``kind`` about ``data`` (the
    source event's data): ``/events/<id>``, ``/projects``, ``/suggestions``, ``/contacts``; the inbox
    (``/inbox``) for anything else."""
    rule = POLICY.get(kind)
    if rule is None:
        return "/inbox"
    event = data.get("event") or {}
    event_id = event.get("id") or (data.get("meeting") or {}).get("event_id") or data.get("event_id")
    if "{event_id}" in rule.path:
        return rule.path.format(event_id=event_id) if event_id else "/inbox"
    return rule.path


def topic_of(event: dict) -> str | None:
    """What a notification is about, for coalescing: all mails of one member about one joint event
    (announcement, changes, its registration), one partner project, or its suggestion list are
    one thing; unsent ones become one message (``merge``)."""
    data, type_ = event["data"], event["type"]
    if type_ == "match.suggested":
        return "suggestions"
    if type_.startswith("project."):
        return f"project:{data['project']['id']}"
    if moved_to(event):  # a move: one message about the new registration there (``merge``)
        return f"event:{moved_to(event)}"
    if type_.startswith(("event.", "registration.")) and isinstance(data.get("event"), dict):
        return f"event:{data['event']['id']}"
    if type_ in MEETING_STEPS:  # a request accepted and scheduled within the window: one mail
        return f"meeting:{data['meeting']['id']}"
    return None  # reminders, summaries and surveys go as they are


def moved_to(event: dict) -> str | None:
    """The event id a ``registration.cancelled`` with reason ``moved`` moved to (events-service's
    ``moved_to``, emitted in the same transaction as the registration there), else None."""
    if event["type"] != "registration.cancelled":
        return None
    registration = event["data"].get("registration") or {}
    return registration.get("moved_to") if registration.get("reason") == "moved" else None


# The consumed meeting.* types, in the order a meeting goes through them.
MEETING_STEPS = ("meeting.requested", "meeting.accepted", "meeting.scheduled", "meeting.declined",
                 "meeting.cancelled")


@dataclass(frozen=True)
class Merged:
    """What one message about a topic says after coalescing its unsent changes (``merge``): the
    newest source event (its kind decides the template), and what changed since the member last
    heard of it; ``send`` False when nothing is left to tell."""
    send: bool
    reason: str | None = None  # why nothing is sent
    changed: tuple[str, ...] = ()  # event.updated: the fields changed, over all merged updates
    added: tuple[dict, ...] = ()  # match.suggested: partners new on the list
    removed: tuple[dict, ...] = ()  # match.suggested: partners no longer on it
    count: int = 1  # how many changes the message stands for
    # Render as this source type with the newest data (an invitation not yet sent, showing the
    # event as it now is, rather than "changed" about something the member never heard of).
    render_type: str | None = None
    steps: tuple[str, ...] = ()  # the source types merged, oldest first ("accepted and scheduled")
    # A registration moved here from another event: the cancellation there (its source event), told in
    # this one message ("moved from A to B") with both calendar files.
    moved_from: dict | None = None


CLOSED_BEFORE_MAILED = "the proposal was closed before its message left"
CANCELLED_BEFORE_INVITED = "the event was cancelled before its invitation left"
NOTHING_CHANGED = "the suggestions changed back to what the member last heard"
REGISTERED_AND_CANCELLED = "the registration was cancelled before its confirmation left"
WITHDRAWN_BEFORE_TOLD = "the meeting was cancelled before the member heard of it"
# A registration's first word to the member: made within the window and cancelled within it, the
# member never heard of it (and its calendar never held it), so there is nothing to take back.
_REGISTRATION_MADE = ("registration.confirmed", "registration.waitlisted", "registration.promoted")


def merge(sources: list[dict], told_before: bool, baseline: list[dict] | None = None,
          told_type: str | None = None) -> Merged:
    """Coalesce a member's unsent notifications about one topic (``topic_of``), oldest first, into
    one message of the newest (``sources[-1]``). ``told_before``: the member was mailed about this
    topic before; ``baseline``: the suggestion list it last heard of (match.suggested);
    ``told_type``: the type of the last message about it that reached the member, if known.

    * a proposal closed before any message about it left is never mailed;
    * a registration moved to another event (``registration.cancelled`` with ``moved_to``, whose topic
      is the other event's) and made there within the window is one message of the move
      (``moved_from``: the cancellation), with the calendar files of both events;
    * a registration made and cancelled before its message left sends nothing (no mail, no
      METHOD:CANCEL ``.ics`` for an appointment never sent);
    * a suggestion list that changed back to the baseline sends nothing; else the message names
      the partners that came and went;
    * an invitation not yet sent shows the event as it now is, and is not sent at all once the
      event is cancelled;
    * event changes name every field changed over all merged updates."""
    newest = sources[-1]
    type_ = newest["type"]
    if type_ == "project.closed" and not told_before:
        return Merged(False, CLOSED_BEFORE_MAILED, count=len(sources))
    if type_ == "match.suggested":
        before = {s["partner_id"]: s for s in (baseline or [])}
        after = {s["partner_id"]: s for s in newest["data"].get("suggestions", [])}
        added = tuple(after[p] for p in after if p not in before)
        removed = tuple(before[p] for p in before if p not in after)
        if not added and not removed:
            return Merged(False, NOTHING_CHANGED, count=len(sources))
        return Merged(True, added=added, removed=removed, count=len(sources))
    if type_ in _REGISTRATION_MADE:
        moved = [source for source in sources[:-1] if moved_to(source) == newest["data"]["event"]["id"]]
        if moved:  # the cancellation there and the registration here arrived within the window
            return Merged(True, count=len(sources), moved_from=moved[-1])
    if (type_ == "registration.cancelled" and told_type not in _REGISTRATION_MADE
            and any(source["type"] in _REGISTRATION_MADE for source in sources[:-1])):
        return Merged(False, REGISTERED_AND_CANCELLED, count=len(sources))
    steps = tuple(source["type"] for source in sources)
    if type_ == "meeting.cancelled" and not told_before and len(sources) > 1:
        # asked (or accepted) and withdrawn before the first mail left: nothing to take back
        return Merged(False, WITHDRAWN_BEFORE_TOLD, count=len(sources))
    if type_.startswith("meeting."):
        return Merged(True, count=len(sources), steps=steps)
    invited = any(source["type"] == "event.scheduled" for source in sources)
    if invited and type_ == "event.cancelled" and not told_before:
        return Merged(False, CANCELLED_BEFORE_INVITED, count=len(sources))
    if invited and type_ == "event.updated" and not told_before:
        return Merged(True, count=len(sources), render_type="event.scheduled")
    changed = tuple(dict.fromkeys(field for source in sources if source["type"] == "event.updated"
                                  for field in source["data"].get("changed", [])))
    return Merged(True, changed=changed, count=len(sources))


def budget_day(now: datetime, tz: str) -> str:
    """The day a member's daily e-mail budget counts in (ISO date in ``tz``)."""
    return now.astimezone(ZoneInfo(tz)).date().isoformat()


def day_start(now: datetime, tz: str) -> datetime:
    """Midnight of ``now``'s day in ``tz`` (the day a daily limit counts in), as an aware datetime."""
    local = now.astimezone(ZoneInfo(tz))
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def another_invitation_held(invitations_mailed_today: int, limit: int, chosen: str | None) -> bool:
    """Whether a project invitation waits for the member's digest instead of going at once: the
    member got ``limit`` invitation mails today already (``limit`` 0: no limit) and did not choose
    ``immediately`` for invitations itself (``chosen``: its per-kind choice). Why: a burst of
    registrations invites a member into several teams within minutes; the first mail leads to its
    portal page of projects, which lists every open invitation, and the rest come in the digest
    (the inbox has each at once)."""
    return limit > 0 and chosen != "immediately" and invitations_mailed_today >= limit


def within_budget(used: int, day: str | None, today: str, budget: int) -> bool:
    """Whether one more immediate mail fits the member's budget for ``today``: ``used`` mails were
    counted on ``day`` (another day: none today). ``budget`` 0 or less: no limit."""
    return budget <= 0 or (used if day == today else 0) < budget


@dataclass(frozen=True)
class Plan:
    """Who a source event reaches and how.

    An announcement reaches every member whose sector is targeted or who
    shares a topic with the event (``sectors``/``topics``); anything else
    reaches the members it names (``member_ids``).
    """
    kind: str
    announcement: bool = False
    sectors: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()
    member_ids: tuple[str, ...] = field(default_factory=tuple)
    ics_cancel: bool | None = None  # None: no .ics; False: the event as it is; True: a cancellation
    # Also every member that holds the event in its calendar (was sent its .ics and not its removal).
    calendar_holders: bool = False


def plan(event: dict) -> Plan | None:
    """The plan for a consumed event, or None if no member is to be told."""
    kind = KINDS.get(event["type"])
    if kind is None:
        return None
    data = event["data"]
    type_ = event["type"]
    if type_ == "event.scheduled":
        joint = data["event"]
        return Plan(kind, announcement=True, sectors=tuple(joint.get("target_sectors") or ()),
                    topics=tuple(joint.get("topics") or ()), ics_cancel=False)
    if type_ in ("event.updated", "event.cancelled"):
        return Plan(kind, member_ids=_unique(data["registered_member_ids"]),
                    ics_cancel=type_ == "event.cancelled", calendar_holders=True)
    if type_.startswith("registration."):
        if type_ == "registration.cancelled" and ended_with_event(data):
            return None
        # A member who cancelled gets a cancellation for its own calendar.
        return Plan(kind, member_ids=(data["registration"]["member_id"],),
                    ics_cancel=type_ == "registration.cancelled")
    if type_ == "match.suggested":
        return Plan(kind, member_ids=(data["member_id"],))
    if type_.startswith("project."):
        return Plan(kind, member_ids=_unique(member["member_id"] for member in data["project"]["members"]))
    if type_ == "contact.requested":  # the member asked hears of it; the requester of the answer
        return Plan(kind, member_ids=(data["request"]["recipient_id"],))
    if type_ in ("contact.accepted", "contact.declined"):
        return Plan(kind, member_ids=(data["request"]["requester_id"],))
    if type_ in MEETING_STEPS:
        return Plan(kind, member_ids=meeting_audience(type_, data))
    if type_ in INTERNAL_TYPES:
        return Plan(kind, member_ids=(data["member_id"],))
    return None


def ended_with_event(data: dict) -> bool:
    """Whether a ``registration.cancelled`` (its ``data``) ended because its event was cancelled (reason
    ``event_cancelled``): events-service emits it with the ``event.cancelled`` that names the member in
    ``registered_member_ids``, and that one message (inbox, mail, calendar cancellation) says both, so the
    registration's own tells nobody. Integrators still receive it."""
    return (data.get("registration") or {}).get("reason") == "event_cancelled"


def meeting_audience(type_: str, data: dict) -> tuple[str, ...]:
    """Who hears of a ``meeting.*`` event: the other side of whoever acted. A request reaches the
    member asked; an acceptance or a decline the requester; a slot (picked by a side or placed by
    the organizers) both; a cancellation both but the member who cancelled (``cancelled_by``;
    absent or null when the organizers or the event's end cancelled it)."""
    meeting = data["meeting"]
    requester, recipient = meeting["requester_id"], meeting["recipient_id"]
    if type_ == "meeting.requested":
        return (recipient,)
    if type_ in ("meeting.accepted", "meeting.declined"):
        return (requester,)
    if type_ == "meeting.cancelled":
        return tuple(m for m in (requester, recipient) if m != data.get("cancelled_by"))
    return (requester, recipient)


def other_side(meeting: dict, member_id: str) -> str:
    """The member a participant meets."""
    return meeting["recipient_id"] if meeting["requester_id"] == member_id else meeting["requester_id"]


# --- meetings: reminders, the daily summary of open requests, the survey ----------------------------

@dataclass(frozen=True)
class MeetingTimes:
    """The operator's settings of the meetings timers (``Config.meeting_times``): minutes before a
    meeting its reminder is due, the hour (in ``timezone``) of the daily summary of open requests,
    how old a request must be to be in it (hours: a request is mailed at once, the summary is a
    nudge), and days after the event's end the survey goes out (about six months, issue 18)."""
    reminder_minutes: int = 15
    summary_hour: int = 8
    summary_min_age_hours: int = 12
    survey_delay_days: int = 182
    timezone: str = "Europe/Berlin"


def reminder_due(status: str, starts_at: datetime | None, reminded_for: datetime | None, now: datetime,
                 minutes: int) -> bool:
    """Whether a meeting's reminder goes out now: it is accepted with a slot that starts within
    ``minutes`` and has not started; one reminder per meeting, again after a move only when the
    new start is later than the one reminded of (an earlier move: the member was reminded
    already, and a second mail minutes later helps nobody). None for cancelled meetings."""
    if status != "accepted" or starts_at is None:
        return False
    starts_at = utc(starts_at)
    if not (starts_at - timedelta(minutes=minutes) <= now < starts_at):
        return False
    return reminded_for is None or starts_at > utc(reminded_for)


def summary_slot(now: datetime, hour: int, tz: str) -> datetime | None:
    """Today's slot of the daily summary of open requests (``hour`` in ``tz``), None before it."""
    local = now.astimezone(ZoneInfo(tz))
    slot = local.replace(hour=hour, minute=0, second=0, microsecond=0)
    return slot if slot <= local else None


def open_request(status: str, requested_at: datetime, expires_at: datetime | None, now: datetime,
                 min_age_hours: int) -> bool:
    """Whether a request belongs in the summary: still pending, not expired, and older than
    ``min_age_hours`` (its own mail went out at once)."""
    return (status == "pending" and (expires_at is None or utc(expires_at) > now)
            and utc(requested_at) <= now - timedelta(hours=min_age_hours))


def survey_due(event_ends_at: datetime | None, event_status: str | None, now: datetime, delay_days: int) -> bool:
    """Whether the follow-up survey of an event's meetings is due: ``delay_days`` after its end
    (default 182, about six months), and the event was not cancelled."""
    if event_ends_at is None or event_status == "cancelled":
        return False
    return now >= utc(event_ends_at) + timedelta(days=delay_days)


def surveyed_meetings(meetings: list[dict]) -> list[dict]:
    """The meetings a participant is asked about: accepted ones that held a slot (a meeting never
    placed or cancelled did not happen), in the order of their start."""
    return sorted((m for m in meetings if m["status"] == "accepted" and m.get("starts_at")),
                  key=lambda m: m["starts_at"])


# --- calendar entries ------------------------------------------------------------------------------
#
# A member's calendar copy of a joint event (the .ics of its mails) has one UID; each mail that
# carries it is a revision with a higher SEQUENCE (RFC 5546 2.1.4), and a removal is METHOD:CANCEL
# with the same UID (RFC 5546 3.2.5). STATUS says how sure the member's seat is: a waitlisted
# registration is TENTATIVE (it may already hold the announcement's CONFIRMED copy, which must not
# stand; sending nothing would leave it), a promotion makes it CONFIRMED again.

_CALENDAR_STATUS = {
    "event.scheduled": "CONFIRMED",
    "event.cancelled": "CANCELLED",
    "registration.confirmed": "CONFIRMED",
    "registration.promoted": "CONFIRMED",
    "registration.waitlisted": "TENTATIVE",
    "registration.cancelled": "CANCELLED",
}


def calendar_status(event_type: str, previous: str | None = None) -> str | None:
    """STATUS (RFC 5545 3.8.1.11) of the calendar copy a mail about ``event_type`` carries, given
    the member's ``previous`` copy's (None: it has none); None when the mail carries no ``.ics``.
    An update keeps a waitlisted member's copy TENTATIVE. The SQL in ``commands`` does the same."""
    if event_type == "event.updated":
        return "TENTATIVE" if previous == "TENTATIVE" else "CONFIRMED"
    return _CALENDAR_STATUS.get(event_type)


def calendar_sequence(event_version: int, status: str, previous: tuple[int, int, str] | None = None) -> int:
    """SEQUENCE (RFC 5545 3.8.7.4) of a member's next calendar copy showing the joint event at
    ``event_version`` with ``status``, given its ``previous`` copy as (sequence, event version,
    status), None if it has none. The first copy has the event's version (what the
    events-service's own ``.ics`` says); the same copy again keeps its sequence; any revision
    (a new event version, another status) goes above the previous one, since a registration's
    changes revise the member's copy without a new event version. The SQL in ``commands`` does
    the same."""
    if previous is None:
        return event_version
    sequence, shown_version, shown_status = previous
    if (shown_version, shown_status) == (event_version, status):
        return sequence
    return max(event_version, sequence + 1)


def _unique(values) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def wants_announcement(sector: str | None, topics, preferred_topics, target_sectors, event_topics) -> bool:
    """The targeting rule of ``event.scheduled`` for one member (the SQL in
    ``commands`` does the same for all members at once).

    ``preferred_topics`` None means the member did not narrow its topics.
    """
    event_topics = set(event_topics)
    fits = sector in set(target_sectors) or bool(set(topics) & event_topics)
    if preferred_topics is None:
        return fits
    return fits and bool(set(preferred_topics) & event_topics)


def email_status(consent: bool | None, address: str | None, email_on: bool | None,
                 frequency: str | None, kind: str = "registration_confirmed", override: str | None = None,
                 default_frequency: str = DEFAULT_FREQUENCY) -> str | None:
    """How a member's e-mail of a notification of ``kind`` is queued: ``pending``, ``held`` for its
    digest, or None (no consent, no address, e-mail off, or the kind set to the inbox only).
    ``consent`` and ``address`` are None while the member's registration has not arrived;
    ``email_on``/``frequency`` None: no preferences yet (the defaults); ``override`` the member's
    choice for the kind (``mail_mode``). The SQL in ``services.fanout`` does the same for an
    announcement's audience."""
    if not consent or address is None or email_on is False:
        return None
    mode = mail_mode(kind, override, frequency, default_frequency)
    return None if mode == "inbox" else "held" if mode == "digest" else "pending"


def wants_webhooks(webhook_on: bool | None) -> bool:
    """Whether a member's endpoints receive its notifications (None: no preferences yet)."""
    return webhook_on is not False


def language(preferred: str | None, contact: str | None) -> str:
    for candidate in (preferred, contact):
        if candidate in LANGUAGES:
            return candidate
    return DEFAULT_LANGUAGE


def utc(moment: datetime | None) -> datetime | None:
    """A stored timestamp as an aware UTC datetime (SQLite hands them back without a zone)."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def latest_digest_slot(frequency: str, now: datetime, hour: int, weekday: int, tz: str) -> datetime | None:
    """The most recent moment a digest of this frequency was scheduled for, at or before ``now``."""
    if frequency not in ("daily", "weekly"):
        return None
    local = now.astimezone(ZoneInfo(tz))
    slot = local.replace(hour=hour, minute=0, second=0, microsecond=0)
    if slot > local:
        slot -= timedelta(days=1)
    if frequency == "weekly":
        slot -= timedelta(days=(slot.weekday() - weekday) % 7)
    return slot


def digest_due(frequency: str, last_sent: datetime | None, now: datetime, hour: int, weekday: int,
               tz: str, oldest_held: datetime | None = None) -> bool:
    """A member's digest is due once per slot: when the latest slot passed after the last digest
    and (``oldest_held`` given) something held waits from before that slot, so a member who joined
    on a Tuesday gets its first weekly digest on the Monday after, not at once. At most one digest
    per period follows from the first condition."""
    slot = latest_digest_slot(frequency, now, hour, weekday, tz)
    if slot is None or (last_sent is not None and utc(last_sent) >= slot):
        return False
    return oldest_held is None or utc(oldest_held) < slot


def retry_delay(delays: tuple[float, ...], attempts: int) -> float | None:
    """Seconds to wait after the ``attempts``-th failed attempt; None: give up."""
    return delays[attempts - 1] if 1 <= attempts <= len(delays) else None


# Topic patterns as RabbitMQ binds them: the kit's one implementation.
type_matches = topic_matches


def about_member(event: dict, member_id: str) -> bool:
    """Whether an event is first of all about this member (its profile, its registration,
    its suggestions): erasure forgets such an event with everything sent of it."""
    type_, data = event["type"], event["data"]
    if type_.startswith("member."):
        return event["subject"] == member_id
    if type_.startswith("registration."):
        return data["registration"]["member_id"] == member_id
    if type_ == "match.suggested":
        return data["member_id"] == member_id
    if type_.startswith("contact."):
        return member_id in (data["request"]["requester_id"], data["request"]["recipient_id"])
    if type_ in MEETING_STEPS:
        return member_id in (data["meeting"]["requester_id"], data["meeting"]["recipient_id"])
    if type_ in INTERNAL_TYPES:
        return data["member_id"] == member_id or member_id in data.get("others", ())
    return event["subject"] == member_id


def redact(type_: str, data: dict, member_id: str) -> dict:
    """An event's data with what it says about an erased member taken out,
    for events kept because they still concern other members."""
    data = json.loads(json.dumps(data))
    if type_ == "match.suggested":
        data["suggestions"] = [s for s in data.get("suggestions", []) if s.get("partner_id") != member_id]
    elif type_.startswith("project."):
        for member in data["project"].get("members", []):
            if member.get("member_id") == member_id:
                member["name"] = None
                member["member_id"] = "erased"
    elif type_ in ("event.updated", "event.cancelled"):
        data["registered_member_ids"] = [m for m in data.get("registered_member_ids", []) if m != member_id]
    return data


# --- the unsubscribe link -------------------------------------------------------------------------

_UNSUBSCRIBE_SALT = "verbund.notifications.unsubscribe"


def _unsubscribe_serializer(secret: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret, salt=_UNSUBSCRIBE_SALT)


def unsubscribe_token(member_id: str, secret: str) -> str:
    """A token that lets whoever holds the mail turn e-mail off for this member, and nothing else
    (RFC 8058 one-click: the link itself is the permission). URL-safe, signed with itsdangerous
    (HMAC-SHA1 over the member id, keyed with ``secret`` and a salt of its own), no expiry: an
    unsubscribe link in an old mail keeps working."""
    return _unsubscribe_serializer(secret).dumps(member_id)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _legacy_member(token: str, secret: str) -> str | None:
    """Links in mails sent before tokens came from itsdangerous: base64 member id, a dot, and
    the first 18 bytes of HMAC-SHA256("unsubscribe:<id>"). Read only, never made any more."""
    try:
        encoded, _ = token.split(".", 1)
        member_id = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    mac = hmac.new(secret.encode(), f"unsubscribe:{member_id}".encode(), hashlib.sha256).digest()
    return member_id if hmac.compare_digest(f"{encoded}.{_b64(mac[:18])}", token) else None


def member_of_unsubscribe_token(token: str, secret: str) -> str | None:
    """The member id a token was made for, or None if it is forged, garbled or another secret's."""
    try:
        member_id = _unsubscribe_serializer(secret).loads(token)
    except BadSignature:
        return _legacy_member(token, secret)
    return member_id if isinstance(member_id, str) else None


# --- authorization and policy of the use cases -----------------------------------------------------

def check_own(principal, member_id: str, what: str) -> None:
    """Only the member itself (a ``member`` token with its ``member_id``) or an admin sees and
    changes a member's ``what`` (preferences, inbox); else ``verbund.errors.Forbidden`` (403)."""
    if not (principal.is_admin or principal.is_member(member_id)):
        raise Forbidden(f"you may see and change your own {what} only")


def may_manage_endpoint(principal, owner_role: str, owner_subject: str, member_id: str | None) -> bool:
    """Who may see and change a webhook endpoint: an admin; for a member's endpoint that member;
    for an integrator's endpoint the same role and subject that made it."""
    if principal.is_admin:
        return True
    if member_id is not None:
        return principal.is_member(member_id)
    return principal.role == owner_role and principal.subject == owner_subject


def webhook_member(principal, body: dict) -> str | None:
    """Whose notifications a new webhook endpoint receives (``body`` as WebhookSchema loads it):
    a member id, or None for an integrator's endpoint of platform events.

    Raises Forbidden (403) for ``allow_private`` without admin rights, a member registering for
    another member, and organizers; Unprocessable (422) for ``member_id`` from an integrator and
    ``event_types`` on a member's endpoint (a member narrows by topics in its preferences)."""
    if body.get("allow_private") and not principal.is_admin:
        raise Forbidden("only an admin may allow private or loopback webhook addresses")
    if principal.role == "member":
        member_id = body.get("member_id", principal.member_id)
        if member_id != principal.member_id:
            raise Forbidden("you may register webhooks for your own member only")
    elif principal.role == "integrator":
        if "member_id" in body:
            raise Unprocessable("validation failed", fields={"member_id": ["integrators receive platform events, "
                                                                           "not a member's notifications"]})
        member_id = None
    elif principal.is_admin:
        member_id = body.get("member_id")
    else:
        raise Forbidden("organizers do not register webhooks")
    if member_id is not None and body.get("event_types"):
        raise Unprocessable("validation failed", fields={"event_types": [
            "a member's webhook receives all its notifications; choose topics in the preferences"]})
    return member_id


def integrator_event_types(principal, event_types: list[str] | None) -> list[str]:
    """The event-type patterns an integrator's webhook endpoint gets: ``event_types`` as given, or
    without them the token's scope (``principal.events``). Each must lie within that scope by the
    rule the broker's topic permission applies to binding keys (``verbund.topics.covers``), so a
    webhook is no way around it; raises Unprocessable (422) on ``event_types`` naming the patterns
    outside. Other principals (an admin) are not scoped: ``event_types`` or ``["#"]``."""
    if principal.role != "integrator":
        return list(event_types or ["#"])
    chosen = list(event_types or principal.events)
    outside = [pattern for pattern in chosen if not covers(principal.events, pattern)]
    if outside:
        raise Unprocessable("validation failed", fields={"event_types": [
            f"{', '.join(outside)} lies outside your integrator scope ({', '.join(principal.events)}); "
            f"ask the platform's admin to widen it (verbund integrator --events)"]})
    return chosen


def releases_held(email_on: bool, frequency: str) -> bool:
    """True when mails held for a digest go out at once: e-mail on and ``immediately``."""
    return email_on and frequency == "immediately"
