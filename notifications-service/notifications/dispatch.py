"""Sending what fan-out queued: e-mails at a configured rate, webhooks in
parallel, digests at their hour. Plain functions over a ``Store`` (no
nameko): the service's timers call them, and so do the tests.

A delivery is claimed before it is sent (status ``sending`` with a lease,
committed), and completed after it was sent (``delivered``, or back to
``pending`` with a later ``next_attempt_at``, or ``failed``) together with
its attempt log entry and its ``notification.delivered``/``failed`` event in
one transaction. A delivery whose sender died keeps its lease until it runs
out and is then claimed again, so nothing is lost; two instances never
claim the same delivery (row locks with SKIP LOCKED on PostgreSQL, one
writer at a time on SQLite).
"""
from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from notifications import deliveries, domain
from notifications.channels import email as mail
from notifications.channels import webhook as webhooks
from notifications.config import Config
from notifications.models import (
    CalendarEntry,
    Delivery,
    Mailbox,
    Notification,
    Preference,
    PreferenceKind,
    Recipient,
    SourceEvent,
    WebhookEndpoint,
)
from notifications.rendering import Rendered, Renderer, RenderError, context_for, event_view
from verbund import envelope
from verbund.database import Store, UnitOfWork

log = logging.getLogger(__name__)

MESSAGE_NAMESPACE = uuid.UUID("6f0c8f0e-2d5e-4a57-9a0c-5e1f5d8a9b11")


def _iso(moment: datetime) -> str:
    return envelope.isoformat(domain.utc(moment))


# --- claiming --------------------------------------------------------------------------------------

def _sources(session: Session, ids) -> dict[str, dict]:
    ids = list(set(ids))
    return {row.id: orjson.loads(row.body) for row in
            session.execute(select(SourceEvent).where(SourceEvent.id.in_(ids))).scalars()} if ids else {}


# --- coalescing and the daily budget -----------------------------------------------------------------

MERGED = "merged into a later message about the same thing"
OVER_BUDGET = "the member's daily e-mail budget was used up: waits for its digest"


def _unsent_of_topic(session: Session, target: str, topic: str, claimed_ids) -> list[Delivery]:
    """A member's e-mails about ``topic`` that have not left: waiting (pending, held) or claimed
    by this sender (``claimed_ids``), oldest first, locked."""
    return list(session.execute(select(Delivery).where(
        Delivery.channel == "email", Delivery.target == target, Delivery.topic == topic,
        or_(Delivery.status.in_(("pending", "held")), Delivery.id.in_(list(claimed_ids))))
        .order_by(Delivery.created_at, Delivery.id).with_for_update()).scalars())


def _last_told(session: Session, target: str, topic: str) -> dict | None:
    """The source event of the last mail about ``topic`` that reached the member, or None."""
    source_id = session.execute(select(Delivery.source_event_id).where(
        Delivery.channel == "email", Delivery.target == target, Delivery.topic == topic,
        Delivery.status == "delivered").order_by(Delivery.finished_at.desc(), Delivery.id.desc()).limit(1)).scalar()
    return _sources(session, [source_id]).get(source_id) if source_id else None


def merge_topic(uow: UnitOfWork, group: list[Delivery]) -> tuple[Delivery | None, domain.Merged]:
    """Coalesce a member's unsent e-mails about one topic (``group``, oldest first) by
    ``domain.merge``: the newest carries the message, the others are cancelled as merged into it
    (and what was merged into them before now points to it); when nothing is left to tell, all
    are cancelled and the answer is (None, why)."""
    session = uow.session
    newest = group[-1]
    merged_before = list(session.execute(select(Delivery.source_event_id).where(
        Delivery.merged_into.in_([d.id for d in group])).order_by(Delivery.created_at, Delivery.id)).scalars())
    sources = _sources(session, [*merged_before, *(d.source_event_id for d in group)])
    told = _last_told(session, newest.target, newest.topic)
    ordered = [sources[i] for i in dict.fromkeys([*merged_before, *(d.source_event_id for d in group)])
               if i in sources]
    result = domain.merge(ordered or [sources[newest.source_event_id]], told is not None,
                          told["data"].get("suggestions", []) if told and told["type"] == "match.suggested" else [],
                          told["type"] if told else None)
    if not result.send:
        for delivery in group:
            deliveries.cancel(uow, delivery, result.reason)
        return None, result
    others = [d for d in group if d is not newest]
    for delivery in others:
        # A mail the policy kept for the digest says so still (it was no immediate message late).
        deferred = delivery.status == "held" and delivery.last_error in (OVER_BUDGET, INVITED_TODAY)
        deliveries.cancel(uow, delivery, f"{MERGED}; {delivery.last_error}" if deferred else MERGED)
        delivery.merged_into = newest.id
    if others:
        session.execute(update(Delivery).where(Delivery.merged_into.in_([d.id for d in others]))
                        .values(merged_into=newest.id))
    return newest, result


INVITED_TODAY = "the member was mailed a project invitation today already: waits for its digest"


def _invited_today(session: Session, member_id: str, now: datetime, config: Config, in_batch: int = 0) -> bool:
    """Whether a further project invitation of the member waits for its digest
    (``domain.another_invitation_held``: ``DAILY_INVITATION_MAILS`` delivered today already, counting
    ``in_batch`` ones this sender is about to send)."""
    if config.daily_invitations <= 0:
        return False
    since = domain.day_start(now, config.digest_timezone)
    mailed = in_batch + session.execute(select(func.count()).select_from(Delivery).where(
        Delivery.channel == "email", Delivery.target == member_id, Delivery.source_type == "project.proposed",
        Delivery.status == "delivered", Delivery.finished_at >= since)).scalar_one()
    chosen = session.execute(select(PreferenceKind.mode).where(
        PreferenceKind.member_id == member_id, PreferenceKind.kind == "project_proposed")).scalar()
    return domain.another_invitation_held(mailed, config.daily_invitations, chosen)


def _spend_budget(session: Session, member_id: str, now: datetime, config: Config) -> bool:
    """Count one immediate mail against the member's daily budget (``domain.within_budget``);
    False when it is used up."""
    mailbox = session.get(Mailbox, member_id, with_for_update=True)
    if mailbox is None:
        mailbox = Mailbox(member_id=member_id, budget_used=0)
        session.add(mailbox)
    today = domain.budget_day(now, config.digest_timezone)
    if not domain.within_budget(mailbox.budget_used or 0, mailbox.budget_day, today, config.daily_budget):
        return False
    mailbox.budget_used = (mailbox.budget_used if mailbox.budget_day == today else 0) + 1
    mailbox.budget_day = today
    return True


def coalesce_claimed(uow: UnitOfWork, config: Config, claimed: list[Delivery],
                     lease_until: datetime) -> tuple[list[Delivery], dict[int, domain.Merged]]:
    """What of the claimed e-mails is sent now, after coalescing and the daily budget: a claimed
    mail (first attempt) takes every unsent mail of its member and topic with it (``merge_topic``),
    the newest of them leaving now in place of all (so a message leaves at most the coalescing
    window after its first cause); a mail over the member's budget is held for its digest. Retries
    go as they are. Returns the deliveries to send (leased) and, per id, what each says."""
    session, now = uow.session, uow.now()
    claimed_ids = {d.id for d in claimed if d.attempts == 1}  # retries are not merged into others
    to_send, merged, seen = [], {}, set()
    for delivery in claimed:
        if delivery.id in seen:
            continue
        seen.add(delivery.id)
        if delivery.attempts > 1 or not delivery.topic:
            to_send.append(delivery)
            continue
        group = _unsent_of_topic(session, delivery.target, delivery.topic, claimed_ids)
        seen.update(d.id for d in group)
        if not group:
            continue
        newest, result = merge_topic(uow, group)
        if newest is None:
            continue
        if newest.status == "held":
            continue  # the newest change is news: the digest says it all
        if newest.status == "pending":  # a later change, not yet due: it leaves now for all of them
            deliveries.lease([newest], lease_until)
        if newest.source_type == "project.proposed" and _invited_today(
                session, newest.target, now, config,
                sum(1 for d in to_send if d.target == newest.target and d.source_type == "project.proposed")):
            newest.status, newest.lease_until, newest.last_error = "held", None, INVITED_TODAY
            newest.attempts = max(newest.attempts - 1, 0)
            continue
        if not _spend_budget(session, newest.target, now, config):
            newest.status, newest.lease_until, newest.last_error = "held", None, OVER_BUDGET
            newest.attempts = max(newest.attempts - 1, 0)
            continue
        merged[newest.id] = result
        to_send.append(newest)
    return to_send, merged


# --- e-mail ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EmailJob:
    delivery_id: int
    key: str
    to_address: str | None
    rendered: Rendered | None = None
    message: object | None = None
    error: str | None = None  # a template or calendar that could not be made: fail without sending
    skip: str | None = None  # nothing to send any more (consent withdrawn, e-mail turned off)


def unsubscribe_url(config: Config, secret: str, member_id: str) -> str:
    """The unsubscribe link of a mail, in its footer (for people) and in its ``List-Unsubscribe``
    header (RFC 8058 one-click): the portal's page ``{PORTAL_URL}/unsubscribe/<token>``, the address
    members and their mail programs can reach (this service's own address is internal in production).
    The page asks before it changes anything and accepts the one-click POST without a form token; either
    way the portal calls this service's ``POST /unsubscribe/{token}`` with the same token."""
    return f"{config.portal_url}/unsubscribe/{domain.unsubscribe_token(member_id, secret)}"


def ics_for(source: dict, entry: CalendarEntry | None = None) -> tuple[bytes, str] | None:
    """The ``.ics`` attached to an event or registration mail, and its METHOD (PUBLISH or CANCEL);
    None for mails without one. ``entry`` is the member's calendar entry recorded at fan-out
    (its SEQUENCE and STATUS: ``domain.calendar_sequence``/``calendar_status``); without one
    (mails queued before entries were recorded) the event's version and status as they are."""
    from verbund.calendar import event_ics

    plan = domain.plan(source)
    if plan is None or plan.ics_cancel is None:
        return None
    event = source["data"]["event"]
    if entry is not None:
        ics = event_ics(event, "PUBLISH", sequence=entry.sequence, status=entry.status)
        return ics, "CANCEL" if entry.status == "CANCELLED" or event["status"] == "cancelled" else "PUBLISH"
    if plan.ics_cancel:
        event = {**event, "status": "cancelled"}  # for this member the event is off its calendar
    ics = event_ics(event, "PUBLISH")
    return ics, "CANCEL" if event["status"] == "cancelled" else "PUBLISH"


def compose_email(config: Config, renderer: Renderer, secret: str, delivery: Delivery, recipient: Recipient,
                  preference: Preference | None, source: dict, calendars: dict | None = None,
                  entry: CalendarEntry | None = None, merged: domain.Merged | None = None,
                  entries: dict | None = None):
    """The mail of one notification; RenderError if its template or calendar file cannot be made.
    ``entry`` is the member's calendar entry of this mail (see ``ics_for``); ``calendars`` caches
    the ``.ics`` per source event, SEQUENCE and STATUS: an announcement has one for every recipient.
    ``merged``: what the message says after coalescing (``domain.merge``); a move (``moved_from``) is
    ``registration_moved`` with the cancellation's calendar file first (its entry from ``entries``,
    keyed by member and source event id), then the new registration's."""
    lang = domain.language(preference.language if preference else None, recipient.language)
    shown_type = merged.render_type if merged is not None and merged.render_type else delivery.source_type
    moved_from = merged.moved_from if merged is not None else None
    kind = "registration_moved" if moved_from else domain.KINDS[shown_type]
    footer = {"recipient_name": recipient.contact_name,
              "unsubscribe_url": unsubscribe_url(config, secret, recipient.member_id)}
    context = context_for(shown_type, source["data"], lang, merged, reader=recipient.member_id)
    if moved_from:
        context["moved_from"] = event_view(moved_from["data"]["event"], lang)
    if "registered_member_ids" in source["data"]:
        # Changes reach members only invited (holding the announcement's calendar entry) as well.
        context["registered"] = recipient.member_id in source["data"]["registered_member_ids"]
    rendered = renderer.render(kind, lang, context, footer=footer)
    try:
        calendars = {} if calendars is None else calendars
        cache_key = (source["id"], entry.sequence, entry.status) if entry is not None else (source["id"],)
        if cache_key not in calendars:
            calendars[cache_key] = ics_for(source, entry)
        attachment = calendars[cache_key]
        earlier = ics_for(moved_from, (entries or {}).get((recipient.member_id, moved_from["id"]))) \
            if moved_from else None
    except Exception as exc:  # a calendar that cannot be made is this mail's failure, not the sender's
        raise RenderError(f"calendar file: {type(exc).__name__}: {exc}") from exc
    return rendered, mail.compose(
        mail_from=config.mail_from, to_address=recipient.email, to_name=recipient.contact_name, rendered=rendered,
        language=lang,
        message_id=mail.message_id(kind.replace("_", "-"), f"{delivery.source_event_id}.{delivery.target}",
                                   config.mail_domain),
        unsubscribe_url=unsubscribe_url(config, secret, recipient.member_id), ics=attachment[0] if attachment else None,
        ics_method=attachment[1] if attachment else "PUBLISH",
        earlier_ics=[(earlier[0], earlier[1], "cancelled.ics")] if earlier else ())


def _blocked(recipient: Recipient | None, preference: Preference | None) -> str | None:
    if recipient is None or recipient.deleted:
        return "the member is not known or was deleted"
    if not recipient.consent_email or not mail.valid_address(recipient.email):
        return "no consent to e-mail or no valid address"
    if preference is not None and not preference.email:
        return "the member turned e-mail off"
    return None


def claim_emails(store: Store, config: Config, renderer: Renderer, secret: str, limit: int) -> list[EmailJob]:
    """Claim due e-mails in a short transaction, then compose them outside it (rendering a
    batch takes a while, and on SQLite a transaction holds the one write lock)."""
    with store.unit_of_work() as uow:
        session, now = uow.session, uow.now()
        # The lease covers sending the batch at the configured rate, with room to spare.
        lease_until = now + timedelta(seconds=limit / max(config.email_rate, 0.01) + 60)
        due = deliveries.claim(uow, "email", limit, lease_until, config.email_retry_delays)
        if not due:
            return []
        due, merged = coalesce_claimed(uow, config, due, lease_until)
        if not due:
            return []
        member_ids = [d.target for d in due]
        recipients = {r.member_id: r for r in session.execute(
            select(Recipient).where(Recipient.member_id.in_(member_ids))).scalars()}
        preferences = {p.member_id: p for p in session.execute(
            select(Preference).where(Preference.member_id.in_(member_ids))).scalars()}
        sources = _sources(session, [d.source_event_id for d in due])
        # A move's message carries the calendar entry of the cancellation there too.
        moved_from = {m.moved_from["id"] for m in merged.values() if m.moved_from}
        entries = {(e.member_id, e.source_event_id): e for e in session.execute(select(CalendarEntry).where(
            CalendarEntry.member_id.in_(member_ids),
            CalendarEntry.source_event_id.in_({d.source_event_id for d in due} | moved_from))).scalars()}
    jobs, calendars = [], {}
    for delivery in due:
        recipient, preference = recipients.get(delivery.target), preferences.get(delivery.target)
        key = f"{delivery.source_event_id}.{delivery.target}"
        blocked = _blocked(recipient, preference)
        if blocked:
            jobs.append(EmailJob(delivery.id, key, None, skip=blocked))
            continue
        try:
            rendered, message = compose_email(config, renderer, secret, delivery, recipient, preference,
                                              sources[delivery.source_event_id], calendars,
                                              entries.get((delivery.target, delivery.source_event_id)),
                                              merged.get(delivery.id), entries)
            jobs.append(EmailJob(delivery.id, key, recipient.email, rendered, message))
        except (RenderError, KeyError) as exc:
            jobs.append(EmailJob(delivery.id, key, None, error=f"could not render: {exc}"))
        except Exception as exc:  # whatever else breaks one mail fails that mail, not the batch
            log.exception("e-mail delivery %s could not be composed", delivery.id)
            jobs.append(EmailJob(delivery.id, key, None, error=f"could not compose: {type(exc).__name__}: {exc}"))
    return jobs


class Pacer:
    """At most ``rate`` sends per second on average, kept across batches: time lost
    between batches (claiming, publishing outcomes) may be caught up, up to ``slack`` seconds."""

    def __init__(self, rate: float, slack: float = 1.0):
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.slack = slack
        self.next_at = time.monotonic()

    def wait(self) -> None:
        now = time.monotonic()
        if self.next_at > now:
            time.sleep(self.next_at - now)
        self.next_at = max(self.next_at, now - self.slack) + self.interval


def send_due_emails(store: Store, config: Config, renderer: Renderer, secret: str, sender: mail.SmtpSender,
                    limit: int | None = None, pacer: Pacer | None = None) -> int:
    """Send the e-mails that are due, at most ``limit`` (default: one interval's worth at the rate),
    paced by ``pacer`` (pass the same one every time to hold the rate across batches)."""
    limit = limit or max(1, int(config.email_rate * config.dispatch_interval))
    jobs = claim_emails(store, config, renderer, secret, limit)
    if not jobs:
        return 0
    # Outcome events are published once per batch, not after every mail: half the writes per mail.
    batch_store = Store(store.engine, store.relay, after_commit=lambda: None, source=store.source,
                        clock=store.clock)
    try:
        return _send_jobs(batch_store, config, sender, jobs, pacer or Pacer(config.email_rate, slack=0))
    finally:
        store.relay.relay_quietly()


def _send_jobs(store: Store, config: Config, sender: mail.SmtpSender, jobs: list[EmailJob], pacer: Pacer) -> int:
    """Send each job and record its outcome in its own transaction; an error of one job, expected
    or not, decides that job's fate only (retried or failed with the reason), never the batch's."""
    sent = 0
    for job in jobs:
        try:
            sent += _send_job(store, config, sender, job, pacer)
        except Exception:  # its outcome could not be recorded: the lease runs out and claim() decides
            log.exception("e-mail delivery %s: recording the outcome failed", job.delivery_id)
    return sent


def _send(sender: mail.SmtpSender, message, to_address: str, what: str) -> mail.SendError | None:
    """Send one mail; None when it went, else why not. An unexpected error (a bug, a library's
    surprise) is that mail's error, to be retried on a fresh connection, never the batch's."""
    try:
        sender.send(message, to_address)
    except mail.SendError as exc:
        return exc
    except Exception as exc:
        log.exception("%s failed unexpectedly", what)
        sender.close()
        return mail.SendError(f"unexpected error: {type(exc).__name__}: {exc}"[:500])
    return None


def _send_job(store: Store, config: Config, sender: mail.SmtpSender, job: EmailJob, pacer: Pacer) -> int:
    if job.skip or job.error:
        with store.unit_of_work() as uow:
            delivery = deliveries.locked(uow.session, job.delivery_id)
            if delivery is not None and job.skip:
                deliveries.cancel(uow, delivery, job.skip)
            elif delivery is not None:
                deliveries.fail(uow, delivery, job.error, log_attempt=True)
        return 0
    pacer.wait()
    started = time.monotonic()
    error = _send(sender, job.message, job.to_address, f"e-mail delivery {job.delivery_id}")
    took = int((time.monotonic() - started) * 1000)
    with store.unit_of_work() as uow:
        delivery = deliveries.locked(uow.session, job.delivery_id)
        if delivery is None:
            return 0
        if error is None:
            deliveries.succeed(uow, delivery, duration_ms=took)
            return 1
        if error.permanent:
            deliveries.fail(uow, delivery, str(error), duration_ms=took, log_attempt=True)
        else:
            deliveries.retry_or_fail(uow, delivery, str(error), config.email_retry_delays, duration_ms=took)
    return 0


# --- digests ---------------------------------------------------------------------------------------

def send_due_digests(store: Store, config: Config, renderer: Renderer, secret: str, sender: mail.SmtpSender,
                     now: datetime | None = None) -> int:
    """One mail per member whose digest slot has come (``domain.digest_due``: its period from
    ``domain.digest_period``, at most one per period), grouping what was held; unsent changes of
    one topic become one entry (``merge_topic``)."""
    now = now or store.clock()
    with store.unit_of_work() as uow:
        held = (select(Delivery.target.label("member_id"), func.min(Delivery.created_at).label("oldest"))
                .where(Delivery.channel == "email", Delivery.status == "held").group_by(Delivery.target).subquery())
        waiting = uow.session.execute(
            select(held.c.member_id, held.c.oldest, Preference.frequency, Mailbox.last_digest_at)
            .outerjoin(Preference, Preference.member_id == held.c.member_id)
            .outerjoin(Mailbox, Mailbox.member_id == held.c.member_id)).all()
    due = [row.member_id for row in waiting if domain.digest_due(
        domain.digest_period(row.frequency, config.default_frequency), row.last_digest_at, now, config.digest_hour,
        config.digest_weekday, config.digest_timezone, row.oldest)]
    sent = 0
    for member_id in due:
        try:
            sent += _send_digest(store, config, renderer, secret, sender, member_id, now)
        except Exception:  # one member's digest never holds up the others'; its lease runs out
            log.exception("digest of %s failed", member_id)
    return sent


def _send_digest(store, config, renderer, secret, sender, member_id: str, now: datetime) -> int:
    with store.unit_of_work() as uow:
        session = uow.session
        mailbox = session.get(Mailbox, member_id, with_for_update=True)
        if mailbox is None:
            mailbox = Mailbox(member_id=member_id, budget_used=0)
            session.add(mailbox)
        preference = session.get(Preference, member_id)
        period = domain.digest_period(preference.frequency if preference else None, config.default_frequency)
        held = list(session.execute(select(Delivery).where(
            Delivery.channel == "email", Delivery.target == member_id, Delivery.status == "held")
            .order_by(Delivery.created_at, Delivery.id).with_for_update()).scalars())
        if not held or not domain.digest_due(period, mailbox.last_digest_at, now, config.digest_hour,
                                             config.digest_weekday, config.digest_timezone,
                                             min(domain.utc(d.created_at) for d in held)):
            return 0  # another instance sent it, or the member changed its mind
        recipient = session.get(Recipient, member_id)
        blocked = _blocked(recipient, preference)
        if blocked:
            for delivery in held:
                deliveries.cancel(uow, delivery, blocked)
            return 0
        lang = domain.language(preference.language if preference else None, recipient.language)
        # Changes of one topic become one entry; a topic with nothing left to tell drops out.
        groups: dict[str, list[Delivery]] = {}
        for delivery in held:
            groups.setdefault(delivery.topic or f"delivery:{delivery.id}", []).append(delivery)
        entries = []
        for group in groups.values():
            if group[-1].topic is None:
                entries.extend((delivery, None) for delivery in group)
                continue
            newest, merged = merge_topic(uow, group)
            if newest is not None:
                entries.append((newest, merged))
        entries.sort(key=lambda entry: (entry[0].created_at, entry[0].id))
        sources = _sources(session, [d.source_event_id for d, _ in entries])
        items, included = [], []
        for delivery, merged in entries:
            delivery.attempts += 1
            try:
                source = sources[delivery.source_event_id]
                shown = merged.render_type if merged is not None and merged.render_type else delivery.source_type
                items.append(renderer.render(domain.KINDS[shown], lang, context_for(shown, source["data"], lang,
                                                                                     merged, member_id)))
                included.append(delivery)
            except (RenderError, KeyError) as exc:
                deliveries.fail(uow, delivery, f"could not render: {exc}", log_attempt=True)
        if not items:
            return 0
        mailbox.last_digest_at = now
        footer = {"recipient_name": recipient.contact_name,
                  "unsubscribe_url": unsubscribe_url(config, secret, member_id)}
        try:
            digest = renderer.render_digest(lang, items, footer, period)
        except RenderError as exc:
            for delivery in included:
                deliveries.fail(uow, delivery, str(exc), log_attempt=True)
            return 0
        lease = now + timedelta(seconds=300)
        for delivery in included:
            delivery.status, delivery.lease_until = "sending", lease
        ids = [d.id for d in included]
        message = mail.compose(
            mail_from=config.mail_from, to_address=recipient.email, to_name=recipient.contact_name,
            rendered=digest, language=lang, unsubscribe_url=unsubscribe_url(config, secret, member_id),
            message_id=mail.message_id("digest", f"{member_id}.{int(now.timestamp())}", config.mail_domain))
        to_address = recipient.email
    started = time.monotonic()
    error = _send(sender, message, to_address, f"digest of {member_id}")
    took = int((time.monotonic() - started) * 1000)
    with store.unit_of_work() as uow:
        for delivery in uow.session.execute(select(Delivery).where(Delivery.id.in_(ids)).with_for_update()).scalars():
            if error is None:
                deliveries.succeed(uow, delivery, duration_ms=took)
            else:
                # Back to waiting for the next try; the digest slot is used, so it goes out as a single mail.
                deliveries.retry_or_fail(uow, delivery, str(error), config.email_retry_delays, duration_ms=took)
    return 1 if error is None else 0


# --- webhooks --------------------------------------------------------------------------------------

def webhook_message_id(delivery: Delivery) -> str:
    """The same on every retry of a delivery, so receivers can drop repeats."""
    return "msg_" + uuid.uuid5(MESSAGE_NAMESPACE, f"{delivery.target}:{delivery.source_event_id}").hex


def webhook_payload(delivery: Delivery, source: dict, renderer: Renderer, lang: str,
                    notification_created_at: datetime | None) -> dict:
    """What the endpoint gets: the member's notification, or for integrators the CloudEvent itself."""
    if delivery.member_id is None:
        if "context" in source["data"] and source["type"].startswith("meeting."):
            # names and titles added for meeting mails (meetings.enrich) are not the platform's event
            source = {**source, "data": {k: v for k, v in source["data"].items() if k != "context"}}
        return {"type": source["type"], "timestamp": envelope.isoformat(envelope.utcnow()), "data": source}
    kind = domain.KINDS[delivery.source_type]
    rendered = renderer.render(kind, lang, context_for(delivery.source_type, source["data"], lang,
                                                       reader=delivery.member_id))
    return {
        "type": delivery.source_type,
        "timestamp": envelope.isoformat(envelope.utcnow()),
        "data": {
            "notification_id": str(delivery.notification_id),
            "member_id": delivery.member_id,
            "kind": kind,
            "language": lang,
            "title": rendered.subject,
            "summary": rendered.summary,
            "source_event_id": delivery.source_event_id,
            "source_type": delivery.source_type,
            "subject": source["subject"],
            "created_at": _iso(notification_created_at) if notification_created_at else None,
            "event_data": source["data"],
        },
    }


@dataclass(frozen=True)
class WebhookJob:
    delivery_id: int
    endpoint_id: str
    url: str
    secret: str
    allow_private: bool
    message_id: str
    body: bytes | None
    error: str | None = None


class WebhookDispatcher:
    """Claims due webhook deliveries and posts each as its own task in ``pool``
    (anything with ``spawn_n(fn, *args)`` and ``free()``, e.g. an eventlet GreenPool).

    A slow receiver holds at most ``per_endpoint`` tasks at once, each bounded
    by the timeout, so other endpoints keep being served.
    """

    def __init__(self, config: Config, renderer: Renderer, pool):
        self.config = config
        self.renderer = renderer
        self.pool = pool
        self.in_flight: dict[str, int] = {}

    def dispatch_due(self, store: Store) -> int:
        capacity = self.pool.free()
        if capacity <= 0:
            return 0
        jobs = self._claim(store, capacity)
        for job in jobs:
            self.in_flight[job.endpoint_id] = self.in_flight.get(job.endpoint_id, 0) + 1
            self.pool.spawn_n(self._deliver, store, job)
        return len(jobs)

    def _claim(self, store: Store, capacity: int) -> list[WebhookJob]:
        with store.unit_of_work() as uow:
            session, now = uow.session, uow.now()
            candidates = deliveries.due(session, "webhook", now, capacity * 5)
            chosen, taken = [], dict(self.in_flight)
            for delivery in candidates:
                if len(chosen) >= capacity:
                    break
                if taken.get(delivery.target, 0) < self.config.webhook_per_endpoint:
                    taken[delivery.target] = taken.get(delivery.target, 0) + 1
                    chosen.append(delivery)
            chosen = deliveries.take(uow, chosen, now + timedelta(seconds=self.config.webhook_timeout * 2 + 30),
                                     self.config.webhook_retry_delays)
            if not chosen:
                return []
            endpoints = {e.id: e for e in session.execute(select(WebhookEndpoint).where(
                WebhookEndpoint.id.in_({d.target for d in chosen}))).scalars()}
            sources = _sources(session, [d.source_event_id for d in chosen])
            members = [d.member_id for d in chosen if d.member_id]
            recipients = {r.member_id: r for r in session.execute(
                select(Recipient).where(Recipient.member_id.in_(members))).scalars()} if members else {}
            preferences = {p.member_id: p for p in session.execute(
                select(Preference).where(Preference.member_id.in_(members))).scalars()} if members else {}
            created = dict(session.execute(select(Notification.id, Notification.created_at).where(
                Notification.id.in_([d.notification_id for d in chosen if d.notification_id]))).all())
            jobs = []
            for delivery in chosen:
                endpoint = endpoints.get(delivery.target)
                if endpoint is None or not endpoint.enabled:
                    deliveries.fail(uow, delivery, "endpoint removed or disabled")
                    continue
                recipient, preference = recipients.get(delivery.member_id), preferences.get(delivery.member_id)
                lang = domain.language(preference.language if preference else None,
                                       recipient.language if recipient else None)
                body, error = None, None
                try:
                    payload = webhook_payload(delivery, sources[delivery.source_event_id], self.renderer, lang,
                                              created.get(delivery.notification_id))
                    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
                except (RenderError, KeyError) as exc:
                    error = f"could not render: {exc}"
                except Exception as exc:  # fails this delivery, not the claim of all the others
                    log.exception("webhook delivery %s could not be composed", delivery.id)
                    error = f"could not compose: {type(exc).__name__}: {exc}"[:500]
                jobs.append(WebhookJob(delivery.id, endpoint.id, endpoint.url, endpoint.secret, endpoint.allow_private,
                                       webhook_message_id(delivery), body, error))
            return jobs

    def _deliver(self, store: Store, job: WebhookJob) -> None:
        try:
            if job.error:
                with store.unit_of_work() as uow:
                    delivery = deliveries.locked(uow.session, job.delivery_id)
                    if delivery is not None:
                        deliveries.fail(uow, delivery, job.error, log_attempt=True)
                return
            result = webhooks.post(job.url, job.body, webhooks.headers(job.secret, job.message_id, job.body),
                                   timeout=self.config.webhook_timeout, allow_private=job.allow_private)
            with store.unit_of_work() as uow:
                complete_webhook(uow, job.delivery_id, result, self.config.webhook_retry_delays)
        except Exception as exc:  # this delivery's problem only: retried, finally in the failure log
            log.exception("webhook delivery %s failed unexpectedly", job.delivery_id)
            reason = webhooks.Outcome("retry", None, 0, f"unexpected error: {type(exc).__name__}: {exc}"[:500])
            try:
                with store.unit_of_work() as uow:
                    complete_webhook(uow, job.delivery_id, reason, self.config.webhook_retry_delays)
            except Exception:  # not even that could be recorded: the lease runs out, deliveries.take decides
                log.exception("webhook delivery %s: recording the failure failed", job.delivery_id)
        finally:
            self.in_flight[job.endpoint_id] = self.in_flight.get(job.endpoint_id, 1) - 1
            if self.in_flight[job.endpoint_id] <= 0:
                self.in_flight.pop(job.endpoint_id, None)


def complete_webhook(uow: UnitOfWork, delivery_id: int, result: webhooks.Outcome, delays: tuple[float, ...]) -> None:
    """Record the outcome of one POST: delivered, retried (``delays`` in seconds) or failed;
    a 410 Gone also disables the endpoint."""
    delivery = deliveries.locked(uow.session, delivery_id)
    if delivery is None or delivery.status != "sending":
        return  # erased meanwhile, or the endpoint was disabled and the delivery already failed
    if result.outcome == "delivered":
        deliveries.succeed(uow, delivery, status_code=result.status_code, duration_ms=result.duration_ms)
    elif result.outcome == "gone":
        deliveries.fail(uow, delivery, result.error or "410 Gone", status_code=410, duration_ms=result.duration_ms,
                        log_attempt=True)
        endpoint = uow.session.execute(select(WebhookEndpoint).where(WebhookEndpoint.id == delivery.target)
                                       .with_for_update()).scalar()
        if endpoint is not None and endpoint.enabled:
            deliveries.disable_endpoint(uow, endpoint, "the receiver answered 410 Gone")
    else:
        deliveries.retry_or_fail(uow, delivery, result.error or "failed", delays, status_code=result.status_code,
                                 duration_ms=result.duration_ms)
