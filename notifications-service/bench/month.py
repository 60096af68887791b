"""Simulation: a month of a 500-member cooperation, through the real notification rules.

What a month brings (seeded, reproducible): members joining and editing their profiles (and with
them partner suggestions that change, sometimes back again within minutes), three joint events
with waitlists (announcements, registrations, cancellations and promotions, an event changed once
and one changed twice within minutes), and partner-project proposals answered (formed, declined,
or superseded by a better team within two minutes).

Every event goes through the use cases a real notifications-service runs (``Store.handle`` with
``services.on_event``: inbox claim, fan-out, the policy) on a migrated SQLite database, with the
injected clock set to the event's time; between events the clock moves on to each moment a
mail falls due and to each digest check, and the timers' functions run there
(``dispatch.send_due_emails``, ``dispatch.send_due_digests``) into a recording sender. The same
code decides what is sent as in the service; only the broker hop and SMTP are left out.

Counts messages per member and day by kind and channel, checks the targets of issue 15 (at most
one non-action e-mail per member per week on average at the default settings, no duplicates,
every action message within a minute of its cause), and writes docs/bench/notifications-month.md.
The same month with every message sent at once (the settings before the policy) is the comparison.

    .venv/bin/python notifications-service/bench/month.py [--members 500] [--seed 15] [--report PATH]
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from notifications import dispatch, domain, services
from notifications.config import Config
from notifications.models import Delivery, Notification
from notifications.rendering import Renderer
from notifications.testing import (
    RecordingSender,
    event_changed,
    joint_event,
    match_suggested,
    member,
    member_updated,
    profile_of,
    project,
    registration,
    scheduled,
)
from verbund.testing import FixedClock, use_case_store

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "docs" / "bench" / "notifications-month.md"
BERLIN = ZoneInfo("Europe/Berlin")
START = datetime(2027, 3, 1, tzinfo=BERLIN)  # a Monday
DAYS = 31
SECRET = "month-simulation-secret"
SECTORS = (("automotive", 0.4), ("it", 0.3), ("logistics", 0.24), ("research", 0.06))
TOPICS = ("battery-value-chain", "e-mobility", "ai", "hydrogen", "predictive-maintenance", "circular-economy")
WAVE = 12  # newcomers who sign up on one morning
ACTION_KINDS = {kind for kind, rule in domain.POLICY.items() if rule.need == domain.ACTION}


# --- the month's events ------------------------------------------------------------------------------

@dataclass(order=True)
class Cause:
    at: datetime
    order: int
    event: dict = field(compare=False)


class Month:
    """The events of a month, in time order, made with the test fixtures' event builders."""

    def __init__(self, members: int, seed: int):
        self.rng = random.Random(seed)
        self.causes: list[Cause] = []
        self.profiles: dict[str, dict] = {}  # member id -> its member.registered event
        self.versions: dict[str, int] = {}
        self.suggestions: dict[str, list[str]] = {}
        self.by_sector: dict[str, list[str]] = defaultdict(list)
        founders = members - members // 20  # 5% join during the month
        for n in range(members):
            if n < founders:
                self._register(START - timedelta(days=30))
            elif n - founders < WAVE:  # an onboarding morning: a dozen firms sign up within half an hour
                self._register(START + timedelta(days=1, hours=10, minutes=2.5 * (n - founders)))
            else:
                self._register(self._working_moment())
        for member_id in list(self.profiles)[:founders]:  # everyone starts with a list of suggestions
            self._suggest(member_id, START - timedelta(days=29), changes=None)
        # The members a newcomer's teams are built from most often (the best-known offers of a sector).
        popular = [m for sector, _ in SECTORS for m in self.by_sector[sector][:5]]
        for member_id in list(self.profiles)[founders:]:
            joined = self.causes_of(member_id)[0]
            self._suggest(member_id, joined + timedelta(minutes=2), changes=None)
            for other in self.rng.sample(self._others(member_id), 12):  # the newcomer enters others' lists
                self._suggest(other, joined + timedelta(minutes=2), changes=1)
            if self.rng.random() < 0.7:  # its needs make a team at once, with members others were invited with
                sector = profile_of(self.profiles[member_id])["sector"]
                pool = [m for m in popular if profile_of(self.profiles[m])["sector"] != sector]
                self._proposal(member_id, self.rng.sample(pool, self.rng.choice((1, 2))),
                               joined + timedelta(minutes=3))
        for _ in range(members // 4):  # profile edits, often a few in a row, each moving some lists
            self._profile_edits()
        for day, capacity in ((1, 40), (8, 30), (15, 40)):
            self._joint_event(START + timedelta(days=day, hours=10), capacity, twice=day == 8, once=day == 1)
        for _ in range(members // 12):
            self._proposal()
        self.causes.sort()

    def add(self, at: datetime, event: dict) -> None:
        self.causes.append(Cause(at.astimezone(UTC), len(self.causes), event))

    def causes_of(self, member_id: str) -> list[datetime]:
        return [c.at for c in self.causes if c.event["type"] == "member.registered" and c.event["subject"] == member_id]

    def _working_moment(self, after: datetime | None = None, within_days: float = DAYS) -> datetime:
        base = after or START
        while True:
            moment = base + timedelta(seconds=self.rng.uniform(0, within_days * 86400))
            local = moment.astimezone(BERLIN)
            if local.weekday() < 5 and 8 <= local.hour < 18 and moment < START + timedelta(days=DAYS):
                return moment

    def _register(self, at: datetime) -> None:
        sector = self.rng.choices([s for s, _ in SECTORS], [w for _, w in SECTORS])[0]
        event = member(sector=sector, topics=self.rng.sample(TOPICS, self.rng.randint(1, 3)),
                       language="en" if self.rng.random() < 0.2 else "de",
                       consent_email=self.rng.random() < 0.9, name=f"Firma {len(self.profiles) + 1}")
        member_id = profile_of(event)["id"]
        self.profiles[member_id], self.versions[member_id] = event, 1
        self.by_sector[sector].append(member_id)
        self.add(at, event)

    def _others(self, member_id: str) -> list[str]:
        sector = profile_of(self.profiles[member_id])["sector"]
        return [m for m in self.profiles if profile_of(self.profiles[m])["sector"] != sector]

    def _suggest(self, member_id: str, at: datetime, changes: int | None, back_to: list[str] | None = None) -> None:
        """A match.suggested with the member's whole list: new, ``changes`` partners swapped, or ``back_to``."""
        current = self.suggestions.get(member_id, [])
        if back_to is not None:
            partners = list(back_to)
        elif changes is None:
            partners = self.rng.sample(self._others(member_id), 8)
        else:
            pool = [m for m in self._others(member_id) if m not in current]
            partners = current[:]
            for _ in range(changes):
                if partners:
                    partners.pop(self.rng.randrange(len(partners)))
                partners.insert(self.rng.randrange(len(partners) + 1), self.rng.choice(pool))
        self.suggestions[member_id] = partners
        event = match_suggested(member_id)
        template = event["data"]["suggestions"][0]
        event["data"]["suggestions"] = [
            {**template, "partner_id": p, "partner_name": profile_of(self.profiles[p])["name"],
             "partner_sector": profile_of(self.profiles[p])["sector"], "rank": rank}
            for rank, p in enumerate(partners, 1)]
        self.add(at, event)

    def _profile_edits(self) -> None:
        member_id = self.rng.choice(list(self.profiles))
        at = self._working_moment()
        affected = self.rng.sample(self._others(member_id), 6)
        edits = self.rng.choice((1, 1, 2, 3))  # a member often saves its profile a few times in a row
        before = {m: list(self.suggestions.get(m, [])) for m in affected}
        for edit in range(edits):
            self.versions[member_id] += 1
            self.add(at, member_updated(self.profiles[member_id], self.versions[member_id],
                                        topics=self.rng.sample(TOPICS, 2)))
            for other in affected:
                if edit == edits - 1 and edits > 1 and self.rng.random() < 0.4:
                    self._suggest(other, at + timedelta(seconds=20), changes=None, back_to=before[other])
                else:
                    self._suggest(other, at + timedelta(seconds=20), changes=1)
            at += timedelta(minutes=self.rng.uniform(1, 6))

    def _joint_event(self, at: datetime, capacity: int, twice: bool, once: bool) -> None:
        sectors = self.rng.sample(["automotive", "it", "logistics"], 2)
        joint = joint_event(title=f"Gemeinsamer Workshop {at:%d.%m.}", capacity=capacity, target_sectors=sectors,
                            topics=[self.rng.choice(TOPICS)],
                            starts_at=(at + timedelta(days=20)).astimezone(UTC).isoformat(),
                            ends_at=(at + timedelta(days=20, hours=6)).astimezone(UTC).isoformat())
        self.add(at, scheduled(joint))
        audience = [m for s in sectors for m in self.by_sector[s]]
        registrants = self.rng.sample(audience, capacity + capacity // 2)
        confirmed, waiting, seats = [], [], 0
        for member_id in registrants:
            when = self._working_moment(at, within_days=10)
            want = 2 if self.rng.random() < 0.15 else 1
            if seats + want <= capacity:
                seats += want
                confirmed.append((member_id, when))
                self.add(when, registration("registration.confirmed", member_id, joint, seats=want))
            else:
                waiting.append(member_id)
                self.add(when, registration("registration.waitlisted", member_id, joint, seats=want,
                                            waitlist_position=len(waiting)))
        later = max(when for _, when in confirmed) + timedelta(days=1)
        for (member_id, _), promoted in zip(self.rng.sample(confirmed, 6), waiting, strict=False):
            cancel_at = self._working_moment(later, within_days=4)
            self.add(cancel_at, registration("registration.cancelled", member_id, joint, version=2))
            self.add(cancel_at + timedelta(seconds=1),
                     registration("registration.promoted", promoted, joint, version=2))
        registered = [m for m, _ in confirmed]
        if once or twice:
            moved = {**joint, "version": 2}
            update = event_changed("event.updated", moved, registered)
            update["data"]["changed"] = ["starts_at", "ends_at"]
            change_at = at + timedelta(days=12)
            self.add(change_at, update)
            if twice:  # the organizer notices a second thing three minutes later
                room = event_changed("event.updated", {**moved, "version": 3}, registered)
                room["data"]["changed"] = ["venue"]
                self.add(change_at + timedelta(minutes=3), room)

    def _proposal(self, anchor: str | None = None, partners: list[str] | None = None,
                  at: datetime | None = None) -> None:
        anchor = anchor or self.rng.choice(list(self.profiles))
        team = [anchor, *(partners or self.rng.sample(self._others(anchor), self.rng.choice((1, 2))))]
        at = at or self._working_moment()
        proposed = project("project.proposed", team, title=f"Partnerprojekt: Team {len(self.causes)}")
        project_id = proposed["data"]["project"]["id"]
        self.add(at, proposed)
        fate = self.rng.random()
        if fate < 0.15:  # a better team turned up at once: closed as superseded, the new one proposed
            self.add(at + timedelta(seconds=40), project("project.closed", team, id=project_id,
                                                         closed_reason="superseded"))
            better = [anchor, *self.rng.sample(self._others(anchor), 2)]
            self.add(at + timedelta(seconds=41), project("project.proposed", better,
                                                          title="Partnerprojekt: Team (neu)"))
        elif fate < 0.5:
            self.add(at + timedelta(days=self.rng.uniform(1, 5)),
                     project("project.closed", team, id=project_id, closed_reason="declined"))
        else:
            self.add(at + timedelta(days=self.rng.uniform(1, 5)), project("project.formed", team, id=project_id))


# --- running it through the rules --------------------------------------------------------------------

def run(month: Month, config: Config, workdir: Path) -> dict:
    clock = FixedClock(month.causes[0].at)
    sender = RecordingSender(clock)
    renderer = Renderer(portal_url=config.portal_url)
    handle = partial(services.on_event, policy=config.policy)
    tick = timedelta(seconds=config.dispatch_interval)
    end = START + timedelta(days=DAYS)
    digest_checks = [datetime(d.year, d.month, d.day, config.digest_hour, 1, tzinfo=BERLIN).astimezone(UTC)
                     for d in (START + timedelta(days=n) for n in range(DAYS + 16))]
    started = time.monotonic()
    with use_case_store("notifications", workdir, clock=clock) as store:

        def next_due() -> datetime | None:
            with store.unit_of_work() as uow:
                due = uow.session.execute(select(func.min(Delivery.next_attempt_at)).where(
                    Delivery.channel == "email", Delivery.status == "pending")).scalar()
            return domain.utc(due)

        def advance_to(moment: datetime) -> None:
            """Run the timers for every moment before ``moment`` at which they have work."""
            while True:
                due = next_due()
                check = next((c for c in digest_checks if c > clock()), None)
                # The e-mail timer runs every DISPATCH_INTERVAL_SECONDS: a due mail leaves at the next tick.
                candidates = [t for t in ((due + tick) if due else None, check) if t is not None and t <= moment]
                if not candidates:
                    return
                clock.moment = max(min(candidates), clock())
                if clock() == check:
                    dispatch.send_due_digests(store, config, renderer, SECRET, sender)
                while dispatch.send_due_emails(store, config, renderer, SECRET, sender, limit=200,
                                               pacer=dispatch.Pacer(0)):
                    pass

        for cause in month.causes:
            advance_to(cause.at)
            clock.moment = max(cause.at, clock())
            store.handle(cause.event, handle)
        advance_to(end + timedelta(days=14, hours=1))  # what the month left waiting goes out
        with store.unit_of_work() as uow:
            inbox = uow.session.execute(select(Notification.member_id, Notification.source_type,
                                               Notification.created_at)).all()
            emails = uow.session.execute(select(Delivery).where(Delivery.channel == "email")).scalars().all()
            merged_causes: dict[int, datetime] = {}  # the first cause that needed the member, per message
            for d in emails:
                # A mail the policy kept for the digest (budget, invited that day) waited on purpose.
                deferred = d.last_error and d.last_error.endswith((dispatch.OVER_BUDGET, dispatch.INVITED_TODAY))
                if d.merged_into and domain.KINDS[d.source_type] in ACTION_KINDS and not deferred:
                    merged_causes[d.merged_into] = min(merged_causes.get(d.merged_into, domain.utc(d.created_at)),
                                                       domain.utc(d.created_at))
            deliveries = {(d.source_event_id, d.target): d for d in emails}
            left = Counter(d.status for d in emails if d.status in ("pending", "held", "sending"))
    return {"sender": sender, "inbox": inbox, "deliveries": deliveries, "merged_causes": merged_causes,
            "left": left, "seconds": time.monotonic() - started, "statuses": Counter(d.status for d in emails),
            "profiles": month.profiles}


def analyse(result: dict) -> dict:
    """Counts per member and day by kind and channel, and the checks of the targets."""
    members = len(result["profiles"])
    weeks = DAYS / 7
    address_of = {profile_of(e)["contact"]["email"]: m for m, e in result["profiles"].items()}
    per_kind = defaultdict(Counter)  # kind -> channel -> messages
    per_member_day = defaultdict(Counter)  # (member, day) -> channel
    non_action = Counter()  # member -> non-action e-mails
    latencies, late, ids = [], [], Counter()
    for member_id, source_type, created in result["inbox"]:
        per_kind[domain.KINDS[source_type]]["inbox"] += 1
        per_member_day[(member_id, domain.utc(created).astimezone(BERLIN).date())]["inbox"] += 1
    for mail in result["sender"].sent:
        ids[str(mail.message["Message-ID"])] += 1
        member_id = address_of[mail.to]
        day = mail.at.astimezone(BERLIN).date()
        if mail.is_digest:
            per_kind["(digest)"]["digest e-mail"] += 1
            per_member_day[(member_id, day)]["digest e-mail"] += 1
            non_action[member_id] += 1
            continue
        key = str(mail.message["Message-ID"]).strip("<>").split("@")[0]
        kind_part, source_event_id, target = key.split(".", 2)
        kind = kind_part.replace("-", "_")
        per_kind[kind]["e-mail"] += 1
        per_member_day[(member_id, day)]["e-mail"] += 1
        if kind == "project_proposed":
            per_member_day[(member_id, day)]["invitation e-mail"] += 1
        delivery = result["deliveries"][(source_event_id, target)]
        if kind in ACTION_KINDS:
            cause = min(domain.utc(delivery.created_at), result["merged_causes"].get(delivery.id, datetime.max.replace(
                tzinfo=UTC)))
            latency = (mail.at - cause).total_seconds()
            latencies.append(latency)
            if latency > 60:
                late.append((kind, latency))
        else:
            non_action[member_id] += 1
    for (_source, _target), delivery in result["deliveries"].items():
        if delivery.status == "delivered" and delivery.last_error == dispatch.OVER_BUDGET:
            per_kind[domain.KINDS[delivery.source_type]]["in a digest (over budget)"] += 1
    e_mails_per_day = [c["e-mail"] + c["digest e-mail"] for c in per_member_day.values()]
    all_days = members * DAYS
    mails_per_member = Counter()
    for mail in result["sender"].sent:
        mails_per_member[address_of[mail.to]] += 1
    distribution = Counter(mails_per_member.get(m, 0) for m in result["profiles"])
    return {
        "members": members,
        "per_kind": per_kind,
        "emails": len(result["sender"].sent),
        "digests": sum(1 for m in result["sender"].sent if m.is_digest),
        "non_action_per_member_week": sum(non_action.values()) / members / weeks,
        "max_non_action_per_member_week": max(non_action.values(), default=0) / weeks,
        "emails_per_member_day_mean": sum(e_mails_per_day) / all_days,
        "emails_per_member_day_max": max(e_mails_per_day, default=0),
        "member_days_with_more_than_2": sum(1 for n in e_mails_per_day if n > 2),
        "invitation_mails_per_member_day_max": max((c["invitation e-mail"] for c in per_member_day.values()),
                                                   default=0),
        "member_days_with_several_invitation_mails": sum(1 for c in per_member_day.values()
                                                         if c["invitation e-mail"] > 1),
        "inbox_per_member_day_mean": sum(c["inbox"] for c in per_member_day.values()) / all_days,
        "duplicates": sum(n - 1 for n in ids.values() if n > 1),
        "action_latency": (min(latencies, default=0), statistics.median(latencies) if latencies else 0,
                           max(latencies, default=0)),
        "late": late,
        "left": result["left"],
        "statuses": result["statuses"],
        "distribution": distribution,
        "seconds": result["seconds"],
    }


def examples(result: dict) -> list[tuple[str, str]]:
    """A few rendered mails, German and English: digests, merged changes, a registration, a proposal."""
    english = {profile_of(e)["contact"]["email"] for e in result["profiles"].values()
               if profile_of(e)["contact"]["language"] == "en"}
    wanted = [("digest", "de"), ("digest", "en"), ("event-updated", "de"), ("registration-promoted", "en"),
              ("project-proposed", "de"), ("event-updated", "en")]
    found, richest = {}, {}
    for mail in result["sender"].sent:
        key = (str(mail.message["Message-ID"]).strip("<>").split(".")[0], "en" if mail.to in english else "de")
        text = mail.text.replace("\r\n", "\n").split("\n--\n")[0].rstrip()
        entries = text.count("\n* ")
        # The first mail of each kind; of digests the one with the most entries.
        if key in wanted and (key not in found or (key[0] == "digest" and entries > richest[key])):
            found[key], richest[key] = (mail.subject, text), entries
    return [found[key] for key in wanted if key in found]


def report(default: dict, before: dict, samples: list[tuple[str, str]], args, uncapped: dict) -> str:
    lines = [
        "# notifications-service: a month of a 500-member cooperation",
        "",
        f"Simulated with `make bench` (`notifications-service/bench/month.py --members {args.members} --seed "
        f"{args.seed}`): {DAYS} days from {START:%d.%m.%Y}, every event through the service's own use cases",
        "(inbox claim, fan-out, the notification policy) on SQLite with the injected clock, the e-mail and",
        "digest timers' functions run at each moment they have work (mails leave at the next 1 s tick).",
        "The month: members joining and editing their profiles (partner suggestions that change, 40% of",
        "multi-edit bursts changing lists back), three joint events with waitlists (one changed once, one",
        "twice within three minutes), partner-project proposals (formed, declined, or superseded within",
        f"a minute by a better team; {WAVE} firms signing up on one morning, most newcomers' needs making a team at",
        "once with the best-known members of other sectors, so these are invited several times a day). No webhooks.",
        "",
        "| | default settings | every message at once (before) |",
        "|---|---|---|",
        f"| e-mails in the month | {default['emails']} | {before['emails']} |",
        f"| of them digests | {default['digests']} | {before['digests']} |",
        f"| non-action e-mails per member and week (target ≤ 1) | **{default['non_action_per_member_week']:.2f}** | "
        f"{before['non_action_per_member_week']:.2f} |",
        f"| most non-action e-mails of one member per week | {default['max_non_action_per_member_week']:.2f} | "
        f"{before['max_non_action_per_member_week']:.2f} |",
        f"| e-mails per member and day, mean / max | {default['emails_per_member_day_mean']:.3f} / "
        f"{default['emails_per_member_day_max']} | {before['emails_per_member_day_mean']:.3f} / "
        f"{before['emails_per_member_day_max']} |",
        f"| member-days with more than 2 e-mails | {default['member_days_with_more_than_2']} | "
        f"{before['member_days_with_more_than_2']} |",
        f"| project invitation e-mails of one member in a day, max | "
        f"{default['invitation_mails_per_member_day_max']} | {before['invitation_mails_per_member_day_max']} |",
        f"| member-days with more than one project invitation e-mail | "
        f"{default['member_days_with_several_invitation_mails']} | "
        f"{before['member_days_with_several_invitation_mails']} |",
        f"| inbox entries per member and day (mean) | {default['inbox_per_member_day_mean']:.2f} | "
        f"{before['inbox_per_member_day_mean']:.2f} |",
        f"| duplicate e-mails (same Message-ID twice) | **{default['duplicates']}** | {before['duplicates']} |",
        "| action message latency from its (first) cause, min / median / max s (target ≤ 60) | "
        + " / ".join(f"{x:.0f}" for x in default["action_latency"]) + " | "
        + " / ".join(f"{x:.0f}" for x in before["action_latency"]) + " |",
        f"| action messages later than a minute | **{len(default['late'])}** | {len(before['late'])} |",
        f"| e-mails left waiting at the end | {sum(default['left'].values())} | {sum(before['left'].values())} |",
        f"| simulation time | {default['seconds']:.0f} s | {before['seconds']:.0f} s |",
        "",
        "Project invitations (`DAILY_INVITATION_MAILS`, default 1): with every invitation mailed at once "
        f"(`DAILY_INVITATION_MAILS=0`, the rest as default) one member got up to "
        f"{uncapped['invitation_mails_per_member_day_max']} invitation e-mails in a day and "
        f"{uncapped['member_days_with_several_invitation_mails']} member-days had more than one "
        f"({uncapped['emails']} e-mails in the month, {uncapped['non_action_per_member_week']:.2f} non-action "
        f"per member and week); with the default, at most {default['invitation_mails_per_member_day_max']} a day, "
        "the others in the digest (the first mail links to the portal's projects page, which lists every open "
        "invitation; the inbox has each at once).",
        "",
        "## By kind and channel, default settings (messages in the month)",
        "",
        "| kind | policy | inbox entries | e-mails of their own | in a digest over the budget |",
        "|---|---|---|---|---|",
    ]
    for kind in sorted(default["per_kind"], key=lambda k: (k.startswith("("), k)):
        counts = default["per_kind"][kind]
        rule = domain.POLICY.get(kind)
        need = "" if rule is None else ("at once" if rule.need == domain.ACTION else "news → digest")
        if kind == "(digest)":
            lines.append(f"| digest | weekly | – | {counts['digest e-mail']} | – |")
            continue
        lines.append(f"| {kind} | {need} | {counts['inbox']} | {counts['e-mail']} | "
                     f"{counts['in a digest (over budget)']} |")
    lines += ["", "What happened to the e-mail work items (default settings): "
              + ", ".join(f"{status} {n}" for status, n in sorted(default["statuses"].items()))
              + " (cancelled: merged into a later message about the same thing, a suggestion list back as it was,"
              " a proposal closed before its message left).", "",
              "## E-mails per member in the month (default settings)", "",
              "| e-mails | members |", "|---|---|"]
    for n, members in sorted(default["distribution"].items()):
        lines.append(f"| {n} | {members} |")
    lines += ["", "## Examples (rendered by the simulation)", ""]
    for subject, text in samples:
        lines += [f"**{subject}**", "", "```", text, "```", ""]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=500)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--report", default=str(REPORT))
    args = parser.parse_args()
    month = Month(args.members, args.seed)
    print(f"{len(month.causes)} events in the month", flush=True)
    default_config = Config()
    at_once = Config(default_frequency="immediately", coalesce_seconds=0, daily_budget=0, daily_invitations=0)
    every_invitation = Config(daily_invitations=0)
    with tempfile.TemporaryDirectory() as first, tempfile.TemporaryDirectory() as second:
        result = run(month, default_config, Path(first))
        default = analyse(result)
        samples = examples(result)
        before = analyse(run(month, at_once, Path(second)))
    with tempfile.TemporaryDirectory() as third:
        uncapped = analyse(run(month, every_invitation, Path(third)))
    Path(args.report).parent.mkdir(parents=True, exist_ok=True)
    Path(args.report).write_text(report(default, before, samples, args, uncapped))
    print(f"report written to {args.report}")
    summary = {k: default[k] for k in ("emails", "digests", "non_action_per_member_week", "duplicates",
                                        "action_latency", "left")}
    print(summary, "late:", default["late"][:5])
    failed = (default["non_action_per_member_week"] > 1 or default["duplicates"] or default["late"]
              or sum(default["left"].values()))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
