"""Scheduling a matchmaking day: accepted 1:1 meetings into slots and tables (pure rules, no I/O).

The rules (issue 18):

* a participant has at most one meeting per slot, and none in a slot they are unavailable or busy in;
* a table holds at most one meeting per slot;
* a participant has at most ``max_per_session`` meetings per session;
* a locked meeting keeps its slot (and its table when one is locked); locked meetings that break a rule
  among themselves are reported as ``locked_conflict``, never dropped silently;
* the schedule places as many meetings as possible first, then minimises idle gaps: free slots between
  a participant's first and last meeting of a session (slots they marked unavailable or are busy in do
  not count as idle, nor do breaks, which are simply missing slot indexes).

Tables are interchangeable within a slot, so the models decide slots only, under a per-slot capacity,
and table numbers are handed out afterwards (:func:`assign_tables`). Meetings whose table is fixed (a
locked table, or the meeting point of a participant in fixed-table mode) take that table instead and
count against it rather than against the shared pool.

:func:`greedy` is a fast baseline and the fallback; :func:`schedule` solves the same rules with
OR-Tools CP-SAT, seeded with the greedy solution, and falls back to it when the solver finds nothing
better within its time limit. :func:`check` lists the rule violations of any set of placements.
"""
from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

NO_COMMON_SLOT = "no_common_slot"
LIMIT = "limit"
CAPACITY = "capacity"
LOCKED_CONFLICT = "locked_conflict"


@dataclass(frozen=True)
class Slot:
    """One meeting slot. Sessions are disjoint time ranges; ``index`` is the position in its session
    (0..n-1), a break is simply a missing index."""
    id: int
    session: int
    index: int
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Meeting:
    """An accepted meeting between participants ``a`` and ``b`` (member ids). ``locked_slot`` /
    ``locked_table``: the organizer locked it or the participants agreed on it; it must keep them."""
    id: int
    a: str
    b: str
    locked_slot: int | None = None
    locked_table: int | None = None


@dataclass(frozen=True)
class Problem:
    """Everything the scheduler needs.

    ``availability``: participant -> slot ids they are available in; a participant not in it is
    available in all slots. ``busy``: participant -> slot ids taken elsewhere (e.g. meetings already
    published on another day's schedule). ``meeting_points``: fixed-table mode, participant -> own
    table; a meeting takes place at ``a``'s table if ``a`` has one, else at ``b``'s, else at a table
    of the shared pool (the tables no participant owns).
    """
    slots: tuple[Slot, ...]
    tables: tuple[int, ...]
    meetings: tuple[Meeting, ...]
    availability: Mapping[str, frozenset[int]]
    max_per_session: int | None = None
    meeting_points: Mapping[str, int] | None = None
    busy: Mapping[str, frozenset[int]] = field(default_factory=dict)


@dataclass(frozen=True)
class Placement:
    meeting_id: int
    slot_id: int
    table: int


@dataclass
class Result:
    """A schedule.

    ``unplaced``: meeting id -> reason: ``no_common_slot`` (the two have no slot both are available
    in), ``limit`` (a common slot was free for both but one of them had reached the per-session
    limit), ``capacity`` (every common slot is taken by their other meetings or has no table left),
    ``locked_conflict`` (a locked meeting that cannot keep its slot/table without breaking a rule).
    ``status``: ``optimal`` / ``feasible`` (CP-SAT, proven optimal or not), ``greedy`` (the greedy
    result, or CP-SAT's fallback to it), ``infeasible_locked`` (locked meetings conflict; the rest is
    scheduled around the locked meetings that could be kept). ``idle_gaps``: total idle slots (see the
    module docstring). ``seconds``: wall time. ``bound``: a proven upper bound on the number of placed
    meetings (from CP-SAT and :func:`upper_bound`; None for greedy).
    """
    placements: list[Placement]
    unplaced: dict[int, str]
    status: str
    idle_gaps: int
    seconds: float
    bound: int | None = None

    @property
    def placed(self) -> int:
        return len(self.placements)


# --- the prepared problem -----------------------------------------------------------------------


class _Prepared:
    """Indexes shared by both solvers: candidate slots per meeting, fixed tables, session order."""

    def __init__(self, problem: Problem):
        self.problem = problem
        self.slot = {s.id: s for s in problem.slots}
        # slots ordered in time within each session; idle gaps are counted along this order
        self.session_slots: dict[int, list[int]] = defaultdict(list)
        for s in sorted(problem.slots, key=lambda s: (s.session, s.index, s.id)):
            self.session_slots[s.session].append(s.id)
        self.rank = {sid: i for ids in self.session_slots.values() for i, sid in enumerate(ids)}
        self.slot_order = {s.id: i for i, s in enumerate(sorted(problem.slots, key=lambda s: (s.start, s.session,
                                                                                             s.index, s.id)))}
        points = problem.meeting_points or {}
        self.point_tables = set(points.values())
        self.tables = set(problem.tables)
        self.pool = sorted(t for t in problem.tables if t not in self.point_tables)
        self.all_slots = frozenset(self.slot)
        self._free: dict[str, frozenset[int]] = {}
        self.fixed_table: dict[int, int | None] = {}
        self.candidates: dict[int, list[int]] = {}
        for m in problem.meetings:
            table = m.locked_table
            if table is None and points:
                table = points.get(m.a, points.get(m.b))
            self.fixed_table[m.id] = table
            common = self.free(m.a) & self.free(m.b)
            if table is None and not self.pool:
                common = frozenset()
            self.candidates[m.id] = sorted(common, key=self.slot_order.__getitem__)

    def free(self, person: str) -> frozenset[int]:
        """Slots the person can meet in: available and not busy elsewhere."""
        if person in self._free:
            return self._free[person]
        available = self.problem.availability.get(person, self.all_slots) & self.all_slots
        self._free[person] = frozenset(available - self.problem.busy.get(person, frozenset()))
        return self._free[person]

    def people(self) -> set[str]:
        return {p for m in self.problem.meetings for p in (m.a, m.b)}


class _Board:
    """Occupancy while building a schedule: persons per slot, tables per slot, counts per session."""

    def __init__(self, prep: _Prepared):
        self.prep = prep
        self.person_slots: dict[str, set[int]] = defaultdict(set)
        self.per_session: dict[tuple[str, int], int] = defaultdict(int)
        self.pool_used: dict[int, int] = defaultdict(int)
        self.table_used: set[tuple[int, int]] = set()  # (fixed table, slot)
        self.where: dict[int, int] = {}
        self.at: dict[tuple[str, int], int] = {}  # (person, slot) -> meeting id

    def blocked(self, m: Meeting, sid: int) -> str | None:
        """Why ``m`` cannot go into slot ``sid`` now: None, "person", "limit" or "capacity"."""
        prep = self.prep
        if sid in self.person_slots[m.a] or sid in self.person_slots[m.b]:
            return "person"
        limit = prep.problem.max_per_session
        session = prep.slot[sid].session
        if limit is not None and (self.per_session[(m.a, session)] >= limit
                                  or self.per_session[(m.b, session)] >= limit):
            return LIMIT
        table = prep.fixed_table[m.id]
        if table is None or table in prep.pool:
            if self.pool_used[sid] >= len(prep.pool):
                return CAPACITY
        if table is not None and (table, sid) in self.table_used:
            return CAPACITY
        return None

    def put(self, m: Meeting, sid: int) -> None:
        prep = self.prep
        session = prep.slot[sid].session
        self.person_slots[m.a].add(sid)
        self.person_slots[m.b].add(sid)
        self.per_session[(m.a, session)] += 1
        self.per_session[(m.b, session)] += 1
        table = prep.fixed_table[m.id]
        if table is None or table in prep.pool:
            self.pool_used[sid] += 1
        if table is not None:
            self.table_used.add((table, sid))
        self.where[m.id] = sid
        self.at[(m.a, sid)] = self.at[(m.b, sid)] = m.id

    def remove(self, m: Meeting) -> int:
        """Takes ``m`` off the board; returns the slot it had."""
        prep = self.prep
        sid = self.where.pop(m.id)
        session = prep.slot[sid].session
        for person in (m.a, m.b):
            self.person_slots[person].discard(sid)
            self.per_session[(person, session)] -= 1
            del self.at[(person, sid)]
        table = prep.fixed_table[m.id]
        if table is None or table in prep.pool:
            self.pool_used[sid] -= 1
        if table is not None:
            self.table_used.discard((table, sid))
        return sid

    def gap_cost(self, m: Meeting, sid: int) -> int:
        """How much placing ``m`` at ``sid`` adds to both participants' idle gaps (may be negative)."""
        return sum(self._gaps_with(p, sid) - self._gaps_with(p, None) for p in (m.a, m.b))

    def _gaps_with(self, person: str, extra: int | None) -> int:
        prep = self.prep
        session = prep.slot[extra].session if extra is not None else None
        taken = self.person_slots[person] | ({extra} if extra is not None else set())
        if session is None:
            return 0
        return _session_gaps(prep, person, session, taken)


def _session_gaps(prep: _Prepared, person: str, session: int, taken: Iterable[int]) -> int:
    ids = prep.session_slots[session]
    ranks = sorted(prep.rank[s] for s in taken if prep.slot[s].session == session)
    if len(ranks) < 2:
        return 0
    free = prep.free(person)
    taken_set = set(taken)
    return sum(1 for sid in ids[ranks[0]:ranks[-1] + 1] if sid in free and sid not in taken_set)


def idle_gaps(problem: Problem, placements: Iterable[Placement]) -> int:
    """Total idle slots over all participants and sessions: slots between a participant's first and
    last meeting of a session in which they have no meeting although they are available and not busy."""
    prep = _Prepared(problem)
    return _idle(prep, {p.meeting_id: p.slot_id for p in placements})


def _idle(prep: _Prepared, where: Mapping[int, int]) -> int:
    taken: dict[str, set[int]] = defaultdict(set)
    meetings = {m.id: m for m in prep.problem.meetings}
    for mid, sid in where.items():
        m = meetings[mid]
        taken[m.a].add(sid)
        taken[m.b].add(sid)
    total = 0
    for person, slots in taken.items():
        for session in {prep.slot[s].session for s in slots}:
            total += _session_gaps(prep, person, session, slots)
    return total


# --- locked meetings ----------------------------------------------------------------------------


def _place_locked(prep: _Prepared, board: _Board) -> dict[int, str]:
    """Puts the locked-slot meetings on the board in id order; returns those that conflict."""
    conflicts: dict[int, str] = {}
    for m in sorted(prep.problem.meetings, key=lambda m: m.id):
        table = prep.fixed_table[m.id]
        if m.locked_table is not None and m.locked_table not in prep.tables:
            conflicts[m.id] = LOCKED_CONFLICT
            continue
        if m.locked_slot is None:
            continue
        sid = m.locked_slot
        if sid not in prep.slot or sid not in prep.free(m.a) or sid not in prep.free(m.b) \
                or (table is None and not prep.pool) or board.blocked(m, sid) is not None:
            conflicts[m.id] = LOCKED_CONFLICT
            continue
        board.put(m, sid)
    return conflicts


def upper_bound(problem: Problem) -> int:
    """A quick upper bound on the meetings any schedule can place (used to stop the search early and
    reported with the solver's own): the meetings with a common free slot, at most the table-slots,
    and less the meetings over each participant's own ceiling (per-session limit, or free slots, summed
    over the sessions), a meeting between two people over their ceilings counting for both."""
    prep = _Prepared(problem)
    reachable = [m for m in problem.meetings if prep.candidates[m.id]]
    degree: dict[str, int] = defaultdict(int)
    for m in reachable:
        degree[m.a] += 1
        degree[m.b] += 1
    over: dict[str, int] = {}
    for person, count in degree.items():
        free = prep.free(person)
        ceiling = 0
        for ids in prep.session_slots.values():
            here = sum(1 for sid in ids if sid in free)
            ceiling += here if problem.max_per_session is None else min(here, problem.max_per_session)
        if count > ceiling:
            over[person] = count - ceiling
    # each person over their ceiling leaves that many meetings out; one meeting between two such
    # people counts for both
    excess = sum(over.values())
    shared = sum(1 for m in reachable if m.a in over and m.b in over)
    unplaced = max(excess - min(shared, excess // 2), max(over.values(), default=0))
    tables = len(prep.pool) * len(prep.slot) + len(prep.point_tables & prep.tables) * len(prep.slot)
    return min(len(reachable) - unplaced, tables)


def _reasons(prep: _Prepared, board: _Board, unplaced: Iterable[Meeting]) -> dict[int, str]:
    reasons = {}
    for m in unplaced:
        if not prep.candidates[m.id]:
            reasons[m.id] = NO_COMMON_SLOT
            continue
        blocks = {board.blocked(m, sid) for sid in prep.candidates[m.id]}
        reasons[m.id] = LIMIT if LIMIT in blocks else CAPACITY
    return reasons


# --- tables -------------------------------------------------------------------------------------


def assign_tables(problem: Problem, where: Mapping[int, int]) -> list[Placement]:
    """Table numbers for meetings already given a slot (meeting id -> slot id).

    Fixed tables (locked, or meeting points) first; the others get the pool's tables in slot order,
    preferring the table one of the two sat at in the previous slot, so people move less. Assumes the
    slot assignment respects the capacities (both solvers guarantee it); raises ValueError otherwise.
    """
    prep = _Prepared(problem)
    meetings = {m.id: m for m in problem.meetings}
    by_slot: dict[int, list[int]] = defaultdict(list)
    for mid, sid in where.items():
        by_slot[sid].append(mid)
    placements = []
    last_table: dict[str, tuple[int, int]] = {}  # person -> (slot order, table)
    for sid in sorted(by_slot, key=prep.slot_order.__getitem__):
        order = prep.slot_order[sid]
        used = set()
        fixed = [mid for mid in sorted(by_slot[sid]) if prep.fixed_table[mid] is not None]
        loose = [mid for mid in sorted(by_slot[sid]) if prep.fixed_table[mid] is None]
        chosen: dict[int, int] = {}
        for mid in fixed:
            chosen[mid] = prep.fixed_table[mid]
            used.add(chosen[mid])
        free = [t for t in prep.pool if t not in used]
        free_set = set(free)
        rest = []
        for mid in loose:
            m = meetings[mid]
            kept = None
            for person in (m.a, m.b):
                previous = last_table.get(person)
                if previous and previous[0] == order - 1 and previous[1] in free_set:
                    kept = previous[1]
                    break
            if kept is None:
                rest.append(mid)
            else:
                chosen[mid] = kept
                free_set.discard(kept)
        for mid in rest:
            if not free_set:
                raise ValueError(f"slot {sid} has more meetings than tables")
            table = min(free_set)
            chosen[mid] = table
            free_set.discard(table)
        for mid, table in chosen.items():
            m = meetings[mid]
            last_table[m.a] = last_table[m.b] = (order, table)
            placements.append(Placement(mid, sid, table))
    placements.sort(key=lambda p: p.meeting_id)
    return placements


# --- greedy -------------------------------------------------------------------------------------


def greedy(problem: Problem, repair: bool = True) -> Result:
    """Greedy baseline: locked meetings first, then the meetings with the fewest common slots first,
    each into the feasible slot that adds least to the two participants' idle gaps (ties: earliest);
    then (``repair``) each meeting left out may take a slot by moving one meeting in its way.
    Deterministic. Status ``greedy``, or ``infeasible_locked`` when locked meetings conflict."""
    started = time.perf_counter()
    prep = _Prepared(problem)
    board = _Board(prep)
    unplaced = _place_locked(prep, board)
    _greedy_fill(prep, board, unplaced, repair)
    return _result(prep, board.where, unplaced, "greedy", started)


def _greedy_fill(prep: _Prepared, board: _Board, skip: Mapping[int, str], repair: bool = True) -> None:
    load: dict[str, int] = defaultdict(int)
    for m in prep.problem.meetings:
        load[m.a] += 1
        load[m.b] += 1
    pending = [m for m in prep.problem.meetings if m.id not in skip and m.id not in board.where]
    # hardest first: few common slots, busy participants
    pending.sort(key=lambda m: (len(prep.candidates[m.id]), -(load[m.a] + load[m.b]), m.id))
    for m in pending:
        best = None
        for sid in prep.candidates[m.id]:
            if board.blocked(m, sid) is not None:
                continue
            cost = board.gap_cost(m, sid)
            if best is None or cost < best[0]:
                best = (cost, sid)
        if best is not None:
            board.put(m, best[1])
    if repair:
        _repair(prep, board, pending)


def _repair(prep: _Prepared, board: _Board, pending: list[Meeting]) -> None:
    """One-move repair after the greedy pass: an unplaced meeting takes a slot where one of the two
    is in another (unlocked) meeting, if that meeting can move to another free slot. Repeated while
    it places more."""
    meetings = {m.id: m for m in prep.problem.meetings}
    locked = {m.id for m in prep.problem.meetings if m.locked_slot is not None}
    changed = True
    while changed:
        changed = False
        for m in pending:
            if m.id in board.where:
                continue
            for sid in prep.candidates[m.id]:
                blockers = {board.at.get((m.a, sid)), board.at.get((m.b, sid))} - {None}
                if not blockers or blockers & locked:
                    continue
                moved = [meetings[mid] for mid in sorted(blockers)]
                for other in moved:
                    board.remove(other)
                if board.blocked(m, sid) is not None:
                    for other in moved:
                        board.put(other, sid)
                    continue
                board.put(m, sid)
                targets = []
                for other in moved:
                    target = next((t for t in prep.candidates[other.id]
                                   if t != sid and board.blocked(other, t) is None), None)
                    if target is None:
                        break
                    board.put(other, target)
                    targets.append(other)
                if len(targets) == len(moved):
                    changed = True
                    break
                for other in targets:
                    board.remove(other)
                board.remove(m)
                for other in moved:
                    board.put(other, sid)


def _result(prep: _Prepared, where: Mapping[int, int], locked_conflicts: Mapping[int, str], status: str,
            started: float, bound: int | None = None) -> Result:
    board = _Board(prep)
    meetings = {m.id: m for m in prep.problem.meetings}
    for mid, sid in where.items():
        board.put(meetings[mid], sid)
    unplaced = dict(locked_conflicts)
    unplaced.update(_reasons(prep, board, [m for m in prep.problem.meetings
                                           if m.id not in where and m.id not in unplaced]))
    if locked_conflicts:
        status = "infeasible_locked"
    return Result(placements=assign_tables(prep.problem, where), unplaced=dict(sorted(unplaced.items())),
                  status=status, idle_gaps=_idle(prep, where), seconds=time.perf_counter() - started,
                  bound=bound)


# --- CP-SAT -------------------------------------------------------------------------------------


def schedule(problem: Problem, time_limit_s: float = 20.0, workers: int = 2, seed: int = 0,
             deterministic_time: float | None = None) -> Result:
    """Places the meetings with OR-Tools CP-SAT: most meetings placed first, then fewest idle gaps.

    The model has one boolean per meeting and common free slot (tables are pooled per slot, numbers
    are handed out afterwards by :func:`assign_tables`). It is solved lexicographically (see
    :func:`_solve`): first the most placed meetings, hinted with the greedy schedule, then the fewest
    idle gaps at that number. ``time_limit_s``: wall-clock budget of the whole call (greedy, model
    building and both searches; the last table assignment comes on top, milliseconds); ``workers``:
    search threads; ``seed``: the solver's random seed. A search that stops on a wall-clock limit may
    end differently on a loaded machine; pass ``deterministic_time`` (CP-SAT's deterministic time
    units, roughly seconds, split between the phases; the wall-clock limit still applies) to make the
    result depend on the input and seed only.

    Returns CP-SAT's schedule (status ``optimal`` when both phases were proven optimal, else
    ``feasible``) when it is at least as good as the greedy one, otherwise the greedy schedule (status
    ``greedy``); ``bound`` is the solver's proven upper bound on the number of placed meetings. Locked
    meetings that conflict are reported as ``locked_conflict`` (status ``infeasible_locked``) and the
    rest is scheduled around the locked meetings that could be kept.
    """
    started = time.perf_counter()
    prep = _Prepared(problem)
    base = _Board(prep)
    locked_conflicts = _place_locked(prep, base)
    hint = _Board(prep)
    for m in problem.meetings:
        if m.id in base.where:
            hint.put(m, base.where[m.id])
    _greedy_fill(prep, hint, locked_conflicts)
    fallback = dict(hint.where)
    budget = _Budget(started, time_limit_s, deterministic_time)
    solved = _solve(prep, base, locked_conflicts, fallback, budget, workers, seed)
    if solved is None:
        return _result(prep, fallback, locked_conflicts, "greedy", started)
    where, status, bound = solved
    ours = (len(where), -_idle(prep, where))
    theirs = (len(fallback), -_idle(prep, fallback))
    if ours < theirs:
        return _result(prep, fallback, locked_conflicts, "greedy", started, bound)
    return _result(prep, where, locked_conflicts, status, started, bound)


def _solve(prep: _Prepared, base: _Board, skip: Mapping[int, str], hint: Mapping[int, int],
           budget: _Budget, workers: int, seed: int) -> tuple[dict[int, int], str, int] | None:
    """Two CP-SAT solves over the meetings not locked into a slot (lexicographic objective):

    1. most placed meetings (a small model: slot choices and the hard rules), hinted with ``hint``;
    2. fewest idle gaps among schedules placing that many, hinted with the best schedule so far.

    Phase 1 is skipped when the hint already reaches :func:`upper_bound` (it has nothing to find then)
    and otherwise gets 40 % of the budget, handing what it leaves over to phase 2. Returns the schedule
    (locked meetings included), "optimal" when both phases proved optimality, else "feasible", and
    the proven bound on placed meetings (phase 1's or :func:`upper_bound`, the lower); None when
    neither phase found a schedule of its own.
    """
    quick = upper_bound(prep.problem) if not skip else len(prep.problem.meetings)
    placed = {mid: sid for mid, sid in hint.items() if mid not in base.where}
    if len(hint) >= quick:  # the hint places all that can be: phase 1 has nothing to find
        code1, bound = "OPTIMAL", quick
    else:
        first = _Model(prep, base, skip)
        first.model.maximize(sum(first.x.values()))
        first.hint(hint)
        solver1 = first.solve(budget.share(0.4), workers, seed)
        code1 = first.status if solver1 is not None else "NONE"
        bound = quick
        if code1 in ("OPTIMAL", "FEASIBLE"):
            reachable = len({mid for mid, _sid in first.x})  # meetings with at least one open slot
            bound = min(int(solver1.best_objective_bound + 1e-6), reachable) + len(base.where)
            bound = min(bound, quick)
            if len(first.solution(solver1)) > len(placed):
                placed = first.solution(solver1)
        # (no solution in time: phase 2 goes on from the greedy's placements)
        if len(placed) + len(base.where) >= bound:
            code1 = "OPTIMAL"

    # phase 2 keeps phase 1's set of placed meetings: a smaller model than "at least as many", and
    # the same count (which meetings stay unplaced can only matter for the gaps, rarely by much)
    second = _Model(prep, base, skip, placed=placed)
    idle = second.add_idle()
    second.model.minimize(sum(idle))
    second.hint({**placed, **base.where})
    solver2 = second.solve(budget.share(1.0), workers, seed)
    code2 = second.status if solver2 is not None else None
    if code2 in ("OPTIMAL", "FEASIBLE"):
        where = second.solution(solver2)
    elif placed == {mid: sid for mid, sid in hint.items() if mid not in base.where}:
        return None  # neither phase got to search: the greedy schedule it is
    else:
        where = placed
    where.update(base.where)
    status = "optimal" if code1 == "OPTIMAL" and code2 == "OPTIMAL" else "feasible"
    return where, status, bound


class _Budget:
    """What is left of the wall-clock (and, if given, deterministic) time limit."""

    def __init__(self, started: float, seconds: float, deterministic: float | None):
        # keep a little back for the table assignment and the result (and a search overrunning a bit)
        self.deadline = started + seconds - min(1.0, 0.04 * seconds)
        self.deterministic = deterministic

    def share(self, part: float) -> tuple[float, float | None]:
        left = max(0.0, self.deadline - time.perf_counter())
        if self.deterministic is None:
            return left * part, None
        given = self.deterministic * part
        self.deterministic -= given
        return left * part, given


class _Model:
    """Slot choices x[meeting, slot] under the hard rules, for the meetings not locked into a slot."""

    def __init__(self, prep: _Prepared, base: _Board, skip: Mapping[int, str], placed: Iterable[int] | None = None):
        """``placed``: when given, exactly these meetings are placed (and no others)."""
        from ortools.sat.python import cp_model  # imported here: greedy() and check() do not need it

        self.prep = prep
        self.base = base
        self.model = model = cp_model.CpModel()
        self.x: dict[tuple[int, int], object] = {}
        self.by_person_slot: dict[tuple[str, int], list] = defaultdict(list)
        by_pool_slot: dict[int, list] = defaultdict(list)
        by_table_slot: dict[tuple[int, int], list] = defaultdict(list)
        by_person_session: dict[tuple[str, int], list] = defaultdict(list)
        problem = prep.problem
        only = None if placed is None else set(placed)
        for m in problem.meetings:
            if m.id in skip or m.id in base.where or (only is not None and m.id not in only):
                continue
            table = prep.fixed_table[m.id]
            # slots still open after the locked meetings: neither person nor the fixed table taken there
            slots = [sid for sid in prep.candidates[m.id]
                     if sid not in base.person_slots[m.a] and sid not in base.person_slots[m.b]
                     and (table is None or (table, sid) not in base.table_used)]
            for sid in slots:
                var = self.x[(m.id, sid)] = model.new_bool_var(f"x{m.id}_{sid}")
                session = prep.slot[sid].session
                for person in (m.a, m.b):
                    self.by_person_slot[(person, sid)].append(var)
                    by_person_session[(person, session)].append(var)
                if table is None or table in prep.pool:
                    by_pool_slot[sid].append(var)
                if table is not None:
                    by_table_slot[(table, sid)].append(var)
            if only is not None:
                model.add_exactly_one(self.x[(m.id, sid)] for sid in slots)
            elif len(slots) > 1:
                model.add_at_most_one(self.x[(m.id, sid)] for sid in slots)
        for terms in self.by_person_slot.values():
            if len(terms) > 1:
                model.add_at_most_one(terms)
        for sid, terms in by_pool_slot.items():
            room = len(prep.pool) - base.pool_used[sid]
            if len(terms) > room:
                model.add(sum(terms) <= room)
        for terms in by_table_slot.values():
            if len(terms) > 1:
                model.add_at_most_one(terms)
        if problem.max_per_session is not None:
            for (person, session), terms in by_person_session.items():
                room = problem.max_per_session - base.per_session[(person, session)]
                if len(terms) > room:
                    model.add(sum(terms) <= room)
        self.status = "NONE"  # after solve(): "OPTIMAL", "FEASIBLE" or "NONE" (no solution)
        self._lines: list[tuple] = []  # (person, free slots of a session, position, idle)
        self._sides: list[tuple] = []  # (person, free slots of a session, position, "before"/"after", var)

    def add_idle(self) -> list:
        """Idle-gap indicators along each person's free slots of a session:
        idle[k] >= before[k] + after[k] - 1 - occupied[k], where before[k] (after[k]) is implied by
        any meeting of the person earlier (later) in the session. Minimising idle pulls them down to
        exactly "has a meeting before and after and none here"."""
        model, base, prep = self.model, self.base, self.prep
        idle_vars = []
        for person in sorted(prep.people()):
            free = prep.free(person)
            for ids in prep.session_slots.values():
                line = [sid for sid in ids if sid in free]
                occ = [(1 if sid in base.person_slots[person] else 0, self.by_person_slot.get((person, sid), []))
                       for sid in line]
                possible = [k for k, (const, terms) in enumerate(occ) if const or terms]
                if len(possible) < 2:
                    continue
                first, last = possible[0], possible[-1]
                before: dict[int, object] = {}
                after: dict[int, object] = {}
                for k in range(first + 1, last + 1):
                    before[k] = self._either(occ[k - 1], before.get(k - 1))
                    self._sides.append((person, line, k, "before", before[k]))
                for k in range(last - 1, first - 1, -1):
                    after[k] = self._either(occ[k + 1], after.get(k + 1))
                    self._sides.append((person, line, k, "after", after[k]))
                for k in range(first + 1, last):
                    const, terms = occ[k]
                    if const:
                        continue
                    var = model.new_bool_var("")
                    model.add(var >= before[k] + after[k] - 1 - sum(terms))
                    idle_vars.append(var)
                    self._lines.append((person, line, k, var))
        return idle_vars

    def _either(self, occupied: tuple[int, list], chained: object) -> object:
        const, terms = occupied
        if const or isinstance(chained, int):
            return 1
        var = self.model.new_bool_var("")
        if terms:  # one linear row, not one implication per term: at most one term is true (one per slot)
            self.model.add(var >= sum(terms))
        if chained is not None:
            self.model.add_implication(chained, var)
        return var

    def hint(self, where: Mapping[int, int]) -> None:
        """Hints a complete schedule (meeting id -> slot id, locked meetings included)."""
        for (mid, sid), var in self.x.items():
            self.model.add_hint(var, int(where.get(mid) == sid))
        if not self._lines:
            return
        meetings = {m.id: m for m in self.prep.problem.meetings}
        taken: dict[str, set[int]] = defaultdict(set)
        for mid, sid in where.items():
            taken[meetings[mid].a].add(sid)
            taken[meetings[mid].b].add(sid)
        for person, line, k, idle in self._lines:
            earlier = any(sid in taken[person] for sid in line[:k])
            later = any(sid in taken[person] for sid in line[k + 1:])
            self.model.add_hint(idle, int(earlier and later and line[k] not in taken[person]))
        for person, line, k, kind, side in self._sides:
            if not isinstance(side, int):
                part = line[:k] if kind == "before" else line[k + 1:]
                self.model.add_hint(side, int(any(sid in taken[person] for sid in part)))

    def solve(self, limits: tuple[float, float | None], workers: int, seed: int):
        from ortools.sat.python import cp_model

        seconds, deterministic = limits
        if seconds <= 0.05:
            return None
        solver = cp_model.CpSolver()
        params = solver.parameters
        params.num_workers = max(1, workers)
        params.random_seed = seed
        params.max_time_in_seconds = seconds
        if self._lines:
            # the gap model is large (~50,000 booleans for 1,500 meetings); probing in presolve took
            # most of a 15 s budget on the benchmark, and the search (LNS) gains more from that time
            params.cp_model_probing_level = 0
        if deterministic is not None:
            params.max_deterministic_time = deterministic
            params.interleave_search = True
        code = solver.solve(self.model)
        self.status = {cp_model.OPTIMAL: "OPTIMAL", cp_model.FEASIBLE: "FEASIBLE"}.get(code, "NONE")
        return solver

    def solution(self, solver) -> dict[int, int]:
        return {mid: sid for (mid, sid), var in self.x.items() if solver.boolean_value(var)}


# --- checking -----------------------------------------------------------------------------------


def check(problem: Problem, placements: Iterable[Placement]) -> list[str]:
    """Rule violations of ``placements``, one plain code per finding, sorted:

    ``person_double_booked:<person>:<slot>``, ``table_double_booked:<table>:<slot>``,
    ``unavailable:<person>:<slot>`` (unavailable or busy elsewhere), ``over_limit:<person>:<session>``,
    ``unknown_slot:<meeting>:<slot>``, ``unknown_table:<meeting>:<table>``, ``unknown_meeting:<meeting>``,
    ``placed_twice:<meeting>``, ``locked_moved:<meeting>`` (a locked slot or table not kept),
    ``wrong_meeting_point:<meeting>`` (fixed-table mode: not at the participant's table).
    """
    prep = _Prepared(problem)
    meetings = {m.id: m for m in problem.meetings}
    points = problem.meeting_points or {}
    found: set[str] = set()
    persons: dict[tuple[str, int], int] = defaultdict(int)
    tables: dict[tuple[int, int], int] = defaultdict(int)
    sessions: dict[tuple[str, int], int] = defaultdict(int)
    seen: set[int] = set()
    for p in placements:
        m = meetings.get(p.meeting_id)
        if m is None:
            found.add(f"unknown_meeting:{p.meeting_id}")
            continue
        if p.meeting_id in seen:
            found.add(f"placed_twice:{m.id}")
        seen.add(m.id)
        if p.slot_id not in prep.slot:
            found.add(f"unknown_slot:{m.id}:{p.slot_id}")
            continue
        if p.table not in prep.tables:
            found.add(f"unknown_table:{m.id}:{p.table}")
        if (m.locked_slot is not None and m.locked_slot != p.slot_id) or \
                (m.locked_table is not None and m.locked_table != p.table):
            found.add(f"locked_moved:{m.id}")
        elif m.locked_table is None and points:
            expected = points.get(m.a, points.get(m.b))
            if (expected is None and p.table in prep.point_tables) or (expected is not None and p.table != expected):
                found.add(f"wrong_meeting_point:{m.id}")
        tables[(p.table, p.slot_id)] += 1
        session = prep.slot[p.slot_id].session
        for person in (m.a, m.b):
            persons[(person, p.slot_id)] += 1
            sessions[(person, session)] += 1
            if p.slot_id not in prep.free(person):
                found.add(f"unavailable:{person}:{p.slot_id}")
    found.update(f"person_double_booked:{person}:{sid}" for (person, sid), n in persons.items() if n > 1)
    found.update(f"table_double_booked:{table}:{sid}" for (table, sid), n in tables.items() if n > 1)
    if problem.max_per_session is not None:
        found.update(f"over_limit:{person}:{session}" for (person, session), n in sessions.items()
                     if n > problem.max_per_session)
    return sorted(found)
