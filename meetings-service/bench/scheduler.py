"""Benchmark of the matchmaking-day scheduler (not part of `make test`): generated matchmaking days,
CP-SAT (`schedule`) against the greedy baseline (`greedy`).

    .venv/bin/python meetings-service/bench/scheduler.py [--time-limit 30] [--workers 2] [--seed 7]
        [--only realistic] [--out docs/bench/meetings-scheduler.md]

Prints a Markdown report and writes it to --out.
"""
from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "meetings-service"))

from meetings.scheduler import Meeting, Problem, Result, Slot, check, greedy, schedule  # noqa: E402


@dataclass(frozen=True)
class Spec:
    name: str
    participants: int
    slots_per_session: int  # per session, two sessions
    tables: int
    meetings: int
    max_per_session: int = 8
    most_per_participant: int = 15  # what a participant accepts at most (platforms cap open requests)


SPECS = [
    Spec("small", 60, 6, 12, 200, max_per_session=4, most_per_participant=7),
    Spec("realistic", 300, 12, 60, 1500),
    Spec("realistic, 70 tables", 300, 12, 70, 1500),
    Spec("big", 600, 12, 130, 3000),
]


def generate(spec: Spec, seed: int) -> Problem:
    """A matchmaking day: two sessions (09:00 and 13:30) of 15-minute slots, the morning with a coffee
    break (a missing index) after 6 slots; popularity skewed (a few participants are asked a lot);
    about a fifth of participants with availability gaps (arrive late, leave early, away for an
    hour, morning only)."""
    rng = random.Random(seed)
    day = datetime(2027, 3, 10)
    slots = []
    for session, start in enumerate((day.replace(hour=9), day.replace(hour=13, minute=30))):
        index = 0
        at = start
        while sum(1 for s in slots if s.session == session) < spec.slots_per_session:
            if session == 0 and index == 6:  # coffee break: one missing index
                index += 1
                at += timedelta(minutes=15)
                continue
            slots.append(Slot(len(slots), session, index, at, at + timedelta(minutes=15)))
            index += 1
            at += timedelta(minutes=15)
    people = [f"m{n:04d}" for n in range(spec.participants)]
    popularity = [1.0 / (1 + rank) ** 0.6 for rank in range(spec.participants)]
    rng.shuffle(popularity)
    degree = dict.fromkeys(people, 0)
    pairs: set[tuple[str, str]] = set()
    attempts = 0
    while len(pairs) < spec.meetings and attempts < spec.meetings * 200:
        attempts += 1
        a = rng.choices(people, weights=popularity)[0]
        b = rng.choice(people)  # requesters are spread evenly, the requested are skewed
        pair = tuple(sorted((a, b)))
        if a == b or pair in pairs or degree[a] >= spec.most_per_participant \
                or degree[b] >= spec.most_per_participant:
            continue
        pairs.add(pair)
        degree[a] += 1
        degree[b] += 1
    meetings = tuple(Meeting(i, a, b) for i, (a, b) in enumerate(sorted(pairs)))
    by_session = {s: [x.id for x in slots if x.session == s] for s in (0, 1)}
    everything = frozenset(x.id for x in slots)
    availability = {}
    for person in people:
        roll = rng.random()
        if roll < 0.06:  # arrives late: misses the first hour
            availability[person] = everything - set(by_session[0][:4])
        elif roll < 0.12:  # leaves early: misses the last hour
            availability[person] = everything - set(by_session[1][-4:])
        elif roll < 0.17:  # away for an hour (a talk of their own)
            session = rng.choice((0, 1))
            start = rng.randrange(0, len(by_session[session]) - 3)
            availability[person] = everything - set(by_session[session][start:start + 4])
        elif roll < 0.20:  # morning only
            availability[person] = frozenset(by_session[0])
    return Problem(slots=tuple(slots), tables=tuple(range(1, spec.tables + 1)), meetings=meetings,
                   availability=availability, max_per_session=spec.max_per_session)


def feasible(problem: Problem) -> int:
    """Meetings whose two participants have at least one common available slot."""
    everything = frozenset(s.id for s in problem.slots)
    return sum(1 for m in problem.meetings
               if problem.availability.get(m.a, everything) & problem.availability.get(m.b, everything))


def row(spec: Spec, problem: Problem, method: str, result: Result, n_feasible: int, bound: int | None) -> str:
    problems = check(problem, result.placements)
    assert not problems, problems[:5]
    people = len({p for m in problem.meetings for p in (m.a, m.b)})
    bound_text = f"{bound}" if bound is not None else "–"
    of_bound = f"{100 * result.placed / bound:.1f} %" if bound else "–"
    return (f"| {spec.name} | {method} | {result.placed} / {n_feasible} | {100 * result.placed / n_feasible:.1f} % "
            f"| {bound_text} | {of_bound} | {result.idle_gaps} ({result.idle_gaps / people:.2f}) "
            f"| {result.seconds:.2f} s | {result.status} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-limit", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--only", help="run only the instance with this name")
    parser.add_argument("--out", default=str(ROOT / "docs" / "bench" / "meetings-scheduler.md"))
    args = parser.parse_args()
    rows = []
    sizes = []
    for spec in SPECS:
        if args.only and spec.name != args.only:
            continue
        problem = generate(spec, args.seed)
        n_feasible = feasible(problem)
        sizes.append(f"| {spec.name} | {spec.participants} | 2 x {spec.slots_per_session} | {spec.tables} "
                     f"| {spec.tables * 2 * spec.slots_per_session} | {len(problem.meetings)} | {n_feasible} "
                     f"| {spec.max_per_session} | {len(problem.availability)} |")
        greedy_result = greedy(problem)
        # CP-SAT's time limit covers the search; the wall time below is everything (greedy hint, model, search)
        solved = schedule(problem, time_limit_s=args.time_limit - 0.5, workers=args.workers, seed=args.seed)
        rows.append(row(spec, problem, "greedy", greedy_result, n_feasible, None))
        rows.append(row(spec, problem, "CP-SAT", solved, n_feasible, solved.bound))
        print(rows[-2], rows[-1], sep="\n", flush=True)
    report = "\n".join([
        "# Meetings scheduler: CP-SAT against greedy",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores shared with other work "
        f"({platform.python_version()}, OR-Tools {_ortools_version()}), `{' '.join(sys.argv[1:]) or 'defaults'}`: "
        f"CP-SAT with {args.workers} workers and a {args.time_limit - 0.5:g} s limit "
        f"(greedy hint, model build and search), seed {args.seed}. "
        "`meetings-service/bench/scheduler.py` generates each matchmaking day (see `generate`: two sessions "
        "of 15-minute slots with a coffee break, skewed popularity, about a fifth of participants with "
        "availability gaps); every schedule below passed `check()` (no double-booked person or table, "
        "no unavailable slot, no limit exceeded).",
        "",
        "| instance | participants | slots | tables | table-slots | accepted meetings | feasible | max per session "
        "| with gaps |",
        "|---|---|---|---|---|---|---|---|---|",
        *sizes,
        "",
        "*feasible*: the two have at least one common available slot. *bound*: CP-SAT's proven upper bound "
        "on the meetings any schedule can place (tables, limits, availability together). *idle gaps*: free "
        "slots between a participant's first and last meeting of a session (per participant in brackets).",
        "",
        "| instance | method | placed / feasible | of feasible | bound | of bound | idle gaps | wall time | status |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
    ])
    Path(args.out).write_text(report + NOTES)
    print(report)


def _ortools_version() -> str:
    import ortools
    return ortools.__version__


NOTES = """
## Reading the figures

"""

if __name__ == "__main__":
    main()
