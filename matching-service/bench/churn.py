"""Churn of partner-project proposals in a simulated network (``make bench``; not part of ``make test``).

Synthetic members (``matching.synthetic``) register over ``--weeks`` weeks, a share of them edit
their profiles every week (new offers and needs), and members answer open proposals now and then
(one declines, or all accept). Everything runs through the use cases as the service runs them
(``Store.handle`` → ``services.on_member_event``, one transaction per event, on SQLite with a
recording publisher) with an injected clock that moves through the weeks. The same run is made
twice on the same events: with the rules in force (``domain.POLICY``) and with the earlier ones
(``domain.UNSTEADY_POLICY``: any team, replaced by one 20 points better at any time).

Measured from the events published:
  * proposals closed as superseded per proposal made;
  * how often a member's proposal changes in a week: for every member and week, how many
    proposals it was invited to were closed as superseded (mean over the member-weeks with an
    open proposal, the share with two or more, the most);
  * proposals made per registration and the coverage of the anchor's needs they reach.

Writes docs/bench/matching-churn.md.

    .venv/bin/python matching-service/bench/churn.py [--members 400] [--weeks 12] [--edits 0.05] [--seed 3]
"""
from __future__ import annotations

import argparse
import platform
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

from matching import domain, services
from matching.engine import Engine
from matching.synthetic import ProfileFactory
from verbund import envelope
from verbund.auth import Principal
from verbund.errors import AppError
from verbund.testing import FixedClock, use_case_store

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "docs" / "bench" / "matching-churn.md"
WEEK = timedelta(days=7)


def script(members: int, weeks: int, edits: float, answers: float, seed: int) -> list[tuple]:
    """The same story for every policy: (minutes since start, action, payload), in time order.
    Registrations spread evenly over the first two thirds of the time; every week ``edits`` of the
    members registered by then edit their profile; every day each open proposal is answered with
    probability ``answers`` (half of the answers decline, half accept) - drawn when the run sees it,
    from a generator of its own, so both runs draw alike."""
    factory = ProfileFactory(seed=seed)
    rng = random.Random(seed + 1)
    total = weeks * 7 * 24 * 60
    spread = total * 2 // 3
    story = []
    profiles = []
    for i in range(members):
        profile = factory.profile()
        profiles.append(profile)
        story.append((i * spread // members, "register", profile))
    for week in range(weeks):
        start = week * 7 * 24 * 60
        known = [p for i, p in enumerate(profiles) if i * spread // members < start]
        for profile in rng.sample(known, int(len(known) * edits)):
            fresh = factory.profile(profile["sector"])
            story.append((start + rng.randrange(7 * 24 * 60), "edit",
                          {"id": profile["id"], "offers": fresh["offers"], "needs": fresh["needs"],
                           "topics": fresh["topics"]}))
    for day in range(weeks * 7):
        story.append((day * 24 * 60 + 12 * 60, "answer", None))
    story.sort(key=lambda step: step[0])
    return story


def run(story: list[tuple], policy: domain.ProposalPolicy, answers: float, seed: int) -> dict:
    domain.POLICY = policy
    clock = FixedClock()
    start = clock()
    rng = random.Random(seed + 2)
    engine = Engine()
    current: dict[str, dict] = {}
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder, use_case_store("matching", Path(folder), clock=clock) as store:
        open_proposals: dict[str, list[str]] = {}
        registrations = 0
        for minute, action, payload in story:
            clock.moment = start + timedelta(minutes=minute)
            if action == "register":
                current[payload["id"]] = payload
                registrations += 1
                event = envelope.new_event("member.registered", "/verbund/members", payload["id"],
                                           {"profile": payload}, version=1)
            elif action == "edit":
                old = current[payload["id"]]
                new = {**old, **payload, "version": old["version"] + 1}
                current[new["id"]] = new
                event = envelope.new_event("member.updated", "/verbund/members", new["id"],
                                           {"profile": new, "changed": ["offers", "needs", "topics"]}, version=1)
            else:
                for proposal_id, members in sorted(open_proposals.items()):
                    if rng.random() >= answers:
                        continue
                    decline = rng.random() < 0.5
                    who = [rng.choice(members)] if decline else members
                    for member_id in who:
                        try:
                            with store.unit_of_work() as uow:
                                services.respond(uow, Principal(member_id, "member", member_id=member_id),
                                                 proposal_id, {"response": "decline" if decline else "accept",
                                                               "member_id": None})
                        except AppError:
                            break  # closed meanwhile
                open_proposals = track(store, open_proposals)
                continue
            store.handle(event, lambda uow, e: services.on_member_event(uow, engine, e))
            open_proposals = track(store, open_proposals)
        events = store.relay.publisher.published
        seconds = time.perf_counter() - began
    return measure(events, start, registrations, seconds)


def track(store, open_proposals: dict[str, list[str]]) -> dict[str, list[str]]:
    """The open proposals (id -> member ids) after the events published so far."""
    published = store.relay.publisher.published
    for event in published[track.seen.get(id(store), 0):]:
        project = event["data"].get("project") if event["type"].startswith("project.") else None
        if project is None:
            continue
        if project["status"] == "proposed":
            open_proposals[project["id"]] = [m["member_id"] for m in project["members"]]
        else:
            open_proposals.pop(project["id"], None)
    track.seen[id(store)] = len(published)
    return open_proposals


track.seen = {}


def measure(events: list[dict], start, registrations: int, seconds: float) -> dict:
    made = [e for e in events if e["type"] == "project.proposed"]
    closed = Counter(e["data"]["project"]["closed_reason"] for e in events if e["type"] == "project.closed")

    def week_of(event: dict) -> int:
        return (datetime.fromisoformat(event["time"].replace("Z", "+00:00")) - start) // WEEK

    changes: Counter = Counter()           # (member, week) -> its proposals closed as superseded
    invited_weeks: set = set()             # (member, week) with an open proposal at some point
    opened_at: dict[str, tuple[int, list[str]]] = {}
    for event in events:
        if not event["type"].startswith("project."):
            continue
        project = event["data"]["project"]
        members = [m["member_id"] for m in project["members"]]
        if event["type"] == "project.proposed":
            opened_at[project["id"]] = (week_of(event), members)
        else:
            first, _ = opened_at.pop(project["id"], (week_of(event), members))
            for week in range(first, week_of(event) + 1):
                invited_weeks.update((m, week) for m in members)
            if project["closed_reason"] == "superseded":
                for m in members:
                    changes[(m, week_of(event))] += 1
    last_week = max((week_of(e) for e in events), default=0)
    for first, members in opened_at.values():
        for week in range(first, last_week + 1):
            invited_weeks.update((m, week) for m in members)
    per_week = [changes.get(key, 0) for key in invited_weeks]
    coverage = [e["data"]["project"]["need_coverage"] for e in made]
    return {
        "made": len(made), "superseded": closed.get("superseded", 0), "declined": closed.get("declined", 0),
        "formed": sum(1 for e in events if e["type"] == "project.formed"),
        "superseded_per_made": closed.get("superseded", 0) / len(made) if made else 0.0,
        "per_registration": len(made) / registrations if registrations else 0.0,
        "member_weeks": len(per_week),
        "changes_per_week": statistics.fmean(per_week) if per_week else 0.0,
        "two_or_more": sum(1 for c in per_week if c >= 2) / len(per_week) if per_week else 0.0,
        "most_in_a_week": max(per_week, default=0),
        "coverage_median": statistics.median(coverage) if coverage else 0.0,
        "below_0_6": sum(1 for c in coverage if c < 0.6) / len(coverage) if coverage else 0.0,
        "seconds": seconds,
    }


def report(args, results: dict[str, dict]) -> str:
    lines = [
        "# Proposal churn (matching-service)",
        "",
        f"`matching-service/bench/churn.py --members {args.members} --weeks {args.weeks} --edits {args.edits} "
        f"--answers {args.answers} --seed {args.seed}` on {platform.node() or 'this machine'} "
        f"(Python {platform.python_version()}).",
        "",
        f"{args.members} synthetic members register over the first {args.weeks * 2 // 3} of {args.weeks} weeks; "
        f"every week {args.edits:.0%} of those registered edit their offers, needs and topics; every day each open "
        f"proposal is answered with probability {args.answers:.0%} (half decline, half accept). Same story for both "
        "rules, injected clock, the use cases as the service runs them (SQLite, recording publisher).",
        "",
        "| rules | proposals made | per registration | closed as superseded | superseded per proposal made "
        "| a member's proposals changed in a week (mean) | member-weeks with 2+ changes | most changes in one week "
        "| median coverage of the needs | proposals below 0.6 coverage | declined / formed | run time |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['made']} | {r['per_registration']:.2f} | {r['superseded']} | "
            f"**{r['superseded_per_made']:.3f}** | **{r['changes_per_week']:.3f}** | {r['two_or_more']:.1%} | "
            f"{r['most_in_a_week']} | {r['coverage_median']:.2f} | {r['below_0_6']:.0%} | "
            f"{r['declined']} / {r['formed']} | {r['seconds']:.0f} s |")
    lines += [
        "",
        "*steady*: the rules in force (`domain.POLICY`): a team is proposed unasked only if it covers at least "
        f"{domain.ProposalPolicy().min_coverage:.0%} of the anchor's needs; an open proposal gives way only to a "
        f"team that covers {domain.ProposalPolicy().supersede_gain * 100:.0f} percentage points more, and not before "
        "it has stood "
        f"{domain.ProposalPolicy().quiet.days} days (at once if its own team no longer clearly covers the needs); "
        "after a decline the next unasked proposal waits as long; a team proposed before, or a part of it, is never "
        "proposed again. *earlier*: `domain.UNSTEADY_POLICY`, any team, replaced by one that covers 20 points more "
        "at any time (the other changes - the order in which members are considered, the no-part-of-an-earlier-team "
        "rule - apply to both).",
        "",
        "A member-week counts when the member was invited to an open proposal at some time in that week; a change is "
        "one of its proposals closed as superseded.",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=400)
    parser.add_argument("--weeks", type=int, default=12)
    parser.add_argument("--edits", type=float, default=0.05, help="share of members editing per week")
    parser.add_argument("--answers", type=float, default=0.05, help="chance per day that an open proposal is answered")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args()
    story = script(args.members, args.weeks, args.edits, args.answers, args.seed)
    results = {}
    for name, policy in (("steady", domain.ProposalPolicy()), ("earlier", domain.UNSTEADY_POLICY)):
        results[name] = run(story, policy, args.answers, args.seed)
        print(name, {k: round(v, 3) if isinstance(v, float) else v for k, v in results[name].items()}, flush=True)
    domain.POLICY = domain.ProposalPolicy()
    text = report(args, results)
    if not args.no_report:
        REPORT.parent.mkdir(parents=True, exist_ok=True)
        REPORT.write_text(text, encoding="utf-8")
        print(f"wrote {REPORT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
