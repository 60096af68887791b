"""The compiled inner loops of the matching engine (numba). No I/O.

``score_one`` scores one member against everybody through the inverted
indexes in ``Index`` and keeps its best ``k`` partners (and every candidate,
for the other side's view); ``score_all`` is the full rebuild: each member's
best ``k`` with score upper bounds (``_best_k_pruned``), exact, without
enumerating the long tail of weak matches.

Both directions go through postings, never through all members:
  need coverage   for each need row of ``a``, each (expanded) feature, every
                  member offering it: the best match per need, summed
  offer coverage  for each offer feature of ``a``, every need row wanting it:
                  the best match per need row, summed per owner
Scratch arrays are reset by stamping, so a query costs what it touches.
Arrays are read from the tuples into locals once per call: every access
through a tuple would cost reference counting in the hot loops.
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np
from numba import njit, prange

# Every array the kernel reads. Slots are append-only member positions;
# postings exist twice: "main" (built at the last compaction) and "delta"
# (slots added since), so an update never rebuilds the big arrays. Within a
# posting list, entries are by weight, strongest first (equal ones in ascending slot / need row):
# the rebuild reads a list only down to the weight that can still matter.
# ``group`` is the sector code of a live slot and -1 for a dead one: one read in the hot loops.
Index = namedtuple("Index", [
    "alive", "group", "consent", "sector", "state", "region", "sme", "tmask", "tcount", "need_count", "tiebreak",
    "need_ptr",                          # slot -> its need rows [need_ptr[s], need_ptr[s+1])
    "nf_ptr", "nf_feat", "nf_w",         # need row -> expanded features
    "need_owner",                        # need row -> slot
    "of_ptr", "of_feat", "of_w",         # slot -> offer features (best weight per feature)
    "op_ptr", "op_slot", "op_w",         # main offer postings: feature -> slots
    "np_ptr", "np_row", "np_w",          # main need postings: feature -> need rows
    "dop_ptr", "dop_slot", "dop_w",      # delta offer postings
    "dnp_ptr", "dnp_row", "dnp_w",       # delta need postings
    "neighbours",                        # state x state: borders
    "weights",                           # need, offer, topics, proximity, sme
])

Scratch = namedtuple("Scratch", [
    "stamp",                             # int64[2]: query stamp, need stamp
    "mark", "need_mark", "best", "fwd", "rev", "cands", "touched",
    "row_mark", "best_row", "touched_rows",
    "rows_met", "rows_wanted", "row_done",  # the rebuild's bounds: which need rows of a pair are known
])

W_NEED, W_OFFER, W_TOPICS, W_PROXIMITY, W_SME = 0, 1, 2, 3, 4


# Stamps are int32 (less memory to touch at random); they start again from 0 before they overflow.
STAMP_LIMIT = 2_000_000_000


def new_scratch(slots: int, rows: int) -> Scratch:
    """Scratch arrays for queries over ``slots`` members with ``rows`` need rows in all."""
    return Scratch(np.zeros(2, np.int64),
                   np.zeros(slots, np.int32), np.zeros(slots, np.int32), np.zeros(slots), np.zeros(slots),
                   np.zeros(slots), np.zeros(slots, np.int32), np.zeros(slots, np.int32),
                   np.zeros(rows, np.int32), np.zeros(rows), np.zeros(rows, np.int32),
                   np.zeros(slots, np.int64), np.zeros(slots, np.int32), np.zeros(rows, np.int32))


@njit(cache=True, inline="always")
def popcount(x):
    count = 0
    while x:
        x &= x - 1
        count += 1
    return count


@njit(cache=True, inline="always")
def topic_overlap(tmask, tcount, a, b):
    if tcount[a] == 0 or tcount[b] == 0:
        return 0.0
    return popcount(tmask[a] & tmask[b]) / min(tcount[a], tcount[b])


@njit(cache=True, inline="always")
def proximity(region, state, neighbours, a, b):
    if region[a] >= 0 and region[a] == region[b]:
        return 1.0
    if state[a] >= 0 and state[a] == state[b]:
        return 0.7
    if state[a] >= 0 and state[b] >= 0 and neighbours[state[a], state[b]]:
        return 0.4
    return 0.0


@njit(cache=True)
def _offers_meet_needs(a, n_cands, group, need_ptr, nf_ptr, nf_feat, nf_w,
                       p_ptr, p_slot, p_w, d_ptr, d_slot, d_w,
                       stamp, mark, need_mark, best, fwd, rev, cands, touched):
    """Need side of ``a``: fwd[b] += the best match of each need of a among b's offers."""
    own = group[a]
    for row in range(need_ptr[a], need_ptr[a + 1]):
        stamp[1] += 1
        need_stamp = stamp[1]
        n_touched = 0
        for e in range(nf_ptr[row], nf_ptr[row + 1]):
            f = nf_feat[e]
            wn = nf_w[e]
            for part in range(2):
                ptr, slot, w = (p_ptr, p_slot, p_w) if part == 0 else (d_ptr, d_slot, d_w)
                if f + 1 >= ptr.shape[0]:
                    continue
                for p in range(ptr[f], ptr[f + 1]):
                    b = slot[p]
                    if group[b] < 0 or group[b] == own:
                        continue
                    v = wn * w[p]
                    if need_mark[b] != need_stamp:
                        need_mark[b] = need_stamp
                        best[b] = v
                        touched[n_touched] = b
                        n_touched += 1
                    elif v > best[b]:
                        best[b] = v
        for t in range(n_touched):
            b = touched[t]
            if mark[b] != stamp[0]:
                mark[b] = stamp[0]
                fwd[b] = 0.0
                rev[b] = 0.0
                cands[n_cands] = b
                n_cands += 1
            fwd[b] += best[b]
    return n_cands


@njit(cache=True)
def _needs_want_offers(a, n_cands, group, need_owner, of_ptr, of_feat, of_w,
                       p_ptr, p_row, p_w, d_ptr, d_row, d_w,
                       stamp, mark, row_mark, best_row, touched_rows, fwd, rev, cands):
    """Offer side of ``a``: rev[b] += the best match of each need row of b among a's offers."""
    own = group[a]
    n_rows = 0
    query = stamp[0]
    for e in range(of_ptr[a], of_ptr[a + 1]):
        g = of_feat[e]
        wa = of_w[e]
        for part in range(2):
            ptr, rows, w = (p_ptr, p_row, p_w) if part == 0 else (d_ptr, d_row, d_w)
            if g + 1 >= ptr.shape[0]:
                continue
            for p in range(ptr[g], ptr[g + 1]):
                row = rows[p]
                b = need_owner[row]
                if group[b] < 0 or group[b] == own:
                    continue
                v = wa * w[p]
                if row_mark[row] != query:
                    row_mark[row] = query
                    best_row[row] = v
                    touched_rows[n_rows] = row
                    n_rows += 1
                elif v > best_row[row]:
                    best_row[row] = v
    for t in range(n_rows):
        row = touched_rows[t]
        b = need_owner[row]
        if mark[b] != query:
            mark[b] = query
            fwd[b] = 0.0
            rev[b] = 0.0
            cands[n_cands] = b
            n_cands += 1
        rev[b] += best_row[row]
    return n_cands


@njit(cache=True)
def _reset_stamps(sc):
    if sc.stamp[0] > STAMP_LIMIT or sc.stamp[1] > STAMP_LIMIT:
        sc.mark[:] = 0
        sc.need_mark[:] = 0
        sc.row_mark[:] = 0
        sc.row_done[:] = 0
        sc.stamp[:] = 0


@njit(cache=True)
def _candidates(ix, sc, a):
    """Every member that meets a need of ``a`` or wants one of its offers, with
    sc.fwd = share of a's needs it meets and sc.rev = share of its needs a meets."""
    _reset_stamps(sc)
    sc.stamp[0] += 1
    n = _offers_meet_needs(a, 0, ix.group, ix.need_ptr, ix.nf_ptr, ix.nf_feat, ix.nf_w,
                           ix.op_ptr, ix.op_slot, ix.op_w, ix.dop_ptr, ix.dop_slot, ix.dop_w,
                           sc.stamp, sc.mark, sc.need_mark, sc.best, sc.fwd, sc.rev, sc.cands, sc.touched)
    n = _needs_want_offers(a, n, ix.group, ix.need_owner, ix.of_ptr, ix.of_feat, ix.of_w,
                           ix.np_ptr, ix.np_row, ix.np_w, ix.dnp_ptr, ix.dnp_row, ix.dnp_w,
                           sc.stamp, sc.mark, sc.row_mark, sc.best_row, sc.touched_rows, sc.fwd, sc.rev, sc.cands)
    need_count, cands, fwd, rev = ix.need_count, sc.cands, sc.fwd, sc.rev
    own = need_count[a]
    for t in range(n):
        b = cands[t]
        fwd[b] = fwd[b] / own if own > 0 else 0.0
        rev[b] = rev[b] / need_count[b] if need_count[b] > 0 else 0.0
    return n


@njit(cache=True, inline="always")
def _insert(out_slots, out_scores, k, b, score):
    i = k - 1
    while i > 0 and out_scores[i - 1] < score:
        out_scores[i] = out_scores[i - 1]
        out_slots[i] = out_slots[i - 1]
        i -= 1
    out_scores[i] = score
    out_slots[i] = b


@njit(cache=True)
def _best_k(ix, sc, a, n, k, topic_bit, out_slots, out_scores):
    """The best ``k`` consenting partners of a among the candidates, best first."""
    consent, tmask, tcount, sme, tiebreak = ix.consent, ix.tmask, ix.tcount, ix.sme, ix.tiebreak
    region, state, neighbours, weights = ix.region, ix.state, ix.neighbours, ix.weights
    cands, fwd, rev = sc.cands, sc.fwd, sc.rev
    w_need, w_offer, w_topics = weights[W_NEED], weights[W_OFFER], weights[W_TOPICS]
    w_proximity, w_sme = weights[W_PROXIMITY], weights[W_SME]
    # No bonus adds more than this: a candidate whose coverage cannot beat the k-th best is skipped.
    bonus_bound = w_topics + w_proximity + w_sme + 1e-6
    for i in range(k):
        out_slots[i] = -1
        out_scores[i] = -1.0
    for t in range(n):
        b = cands[t]
        if b == a or not consent[b]:
            continue
        if topic_bit >= 0 and not (tmask[b] >> topic_bit) & 1:
            continue
        coverage = w_need * fwd[b] + w_offer * rev[b]
        if coverage + bonus_bound <= out_scores[k - 1]:
            continue
        score = (coverage + w_topics * topic_overlap(tmask, tcount, a, b)
                 + w_proximity * proximity(region, state, neighbours, a, b) + w_sme * sme[b] + tiebreak[b])
        if score > out_scores[k - 1]:
            _insert(out_slots, out_scores, k, b, score)


@njit(cache=True)
def score_one(ix, sc, a, k, topic_bit, out_slots, out_scores, out_cands, out_fwd, out_rev):
    """Best k partners of ``a``; also every candidate with both coverages (for the other side's view).
    Returns the number of candidates written to ``out_cands``."""
    n = _candidates(ix, sc, a)
    _best_k(ix, sc, a, n, k, topic_bit, out_slots, out_scores)
    for t in range(n):
        b = sc.cands[t]
        out_cands[t] = b
        out_fwd[t] = sc.fwd[b]
        out_rev[t] = sc.rev[b]
    return n


# The rebuild reads each posting list down to these weights in turn (a contribution is a need's
# weight times an offer's, in [0, 1]) and stops as soon as no member it has not met yet could
# reach a member's k-th best; past the last level it reads everything (exact in every case).
LEVELS = np.array([1.0, 0.5, 0.3])


@njit(cache=True, inline="always")
def _find(feat, lo, hi, f):
    """Position of feature f in the ascending feat[lo:hi], or -1."""
    end = hi
    while lo < hi:
        mid = (lo + hi) >> 1
        if feat[mid] < f:
            lo = mid + 1
        else:
            hi = mid
    return lo if lo < end and feat[lo] == f else -1


@njit(cache=True, inline="always")
def _row_best(nf_feat, nf_w, e_lo, e_hi, of_feat, of_w, o_lo, o_hi):
    """The best match of one need row (features [e_lo, e_hi)) among one member's offer features."""
    best = 0.0
    for e in range(e_lo, e_hi):
        p = _find(of_feat, o_lo, o_hi, nf_feat[e])
        if p >= 0:
            v = nf_w[e] * of_w[p]
            if v > best:
                best = v
    return best


@njit(cache=True)
def coverage(ix, a, b):
    """(share of a's needs that b's offers meet, share of b's needs that a's offers meet), both in
    [0, 1], by looking the pair up in both members' own arrays (no postings): what ``_candidates``
    gives for b, needed for the few candidates the rebuild cannot rule out by bounds."""
    need_ptr, nf_ptr, nf_feat, nf_w = ix.need_ptr, ix.nf_ptr, ix.nf_feat, ix.nf_w
    of_ptr, of_feat, of_w, need_count = ix.of_ptr, ix.of_feat, ix.of_w, ix.need_count
    fwd = 0.0
    for row in range(need_ptr[a], need_ptr[a + 1]):
        fwd += _row_best(nf_feat, nf_w, nf_ptr[row], nf_ptr[row + 1], of_feat, of_w, of_ptr[b], of_ptr[b + 1])
    rev = 0.0
    for row in range(need_ptr[b], need_ptr[b + 1]):
        rev += _row_best(nf_feat, nf_w, nf_ptr[row], nf_ptr[row + 1], of_feat, of_w, of_ptr[a], of_ptr[a + 1])
    fwd = fwd / need_count[a] if need_count[a] > 0 else 0.0
    rev = rev / need_count[b] if need_count[b] > 0 else 0.0
    return fwd, rev


@njit(cache=True)
def _need_pass(rows_lo, rows_hi, cut, own, query, stamp, nf_ptr, nf_w, e0, at, end, slot, w, d_slot, d_w, group,
               mark, rows_met, need_mark, best, touched, fsum, rsum, rows_wanted, cands, n,
               a, near, region, state, neighbours):
    """One level over a's need rows: each list read down to ``cut``; each row's best per member
    added to fsum (rows met at a stronger level are complete); with ``near`` > 0 only members at
    least that close to a (proximity). Returns the number of candidates."""
    for row in range(rows_lo, rows_hi):
        bit = np.int64(1) << (row - rows_lo)
        stamp[1] += 1
        pass_stamp = stamp[1]
        n_touched = 0
        for e in range(nf_ptr[row], nf_ptr[row + 1]):
            wn = nf_w[e]
            for part in range(2):
                s, ws = (slot, w) if part == 0 else (d_slot, d_w)
                i = 2 * (e - e0) + part
                p, stop = at[i], end[i]
                while p < stop:
                    v = wn * ws[p]
                    if v < cut:
                        break
                    b = s[p]
                    p += 1
                    if group[b] < 0 or group[b] == own:
                        continue
                    if near > 0.0 and proximity(region, state, neighbours, a, b) < near:
                        continue
                    if mark[b] == query and rows_met[b] & bit:
                        continue  # met at a stronger level already
                    if need_mark[b] != pass_stamp:
                        need_mark[b] = pass_stamp
                        best[b] = v
                        touched[n_touched] = b
                        n_touched += 1
                    elif v > best[b]:
                        best[b] = v
                at[i] = p
        for t in range(n_touched):
            b = touched[t]
            if mark[b] != query:
                mark[b] = query
                fsum[b] = 0.0
                rsum[b] = 0.0
                rows_met[b] = 0
                rows_wanted[b] = 0
                cands[n] = b
                n += 1
            fsum[b] += best[b]
            rows_met[b] |= bit
    return n


@njit(cache=True)
def _offer_pass(o0, o1, cut, own, query, stamp, of_w, at, end, rows, w, d_rows, d_w, need_owner, group,
                mark, row_done, row_mark, best_row, touched_rows, fsum, rsum, rows_met, rows_wanted, cands, n,
                a, near, region, state, neighbours):
    """One level over a's offers: each list read down to ``cut``; the best per need row of the
    others added to rsum (rows wanted at a stronger level are complete); with ``near`` > 0 only
    members at least that close to a. Returns the number of candidates."""
    stamp[1] += 1
    pass_stamp = stamp[1]
    n_rows = 0
    for e in range(o0, o1):
        wa = of_w[e]
        for part in range(2):
            rs, ws = (rows, w) if part == 0 else (d_rows, d_w)
            i = 2 * (e - o0) + part
            p, stop = at[i], end[i]
            while p < stop:
                v = wa * ws[p]
                if v < cut:
                    break
                r = rs[p]
                p += 1
                if row_done[r] == query:
                    continue
                b = need_owner[r]
                if group[b] < 0 or group[b] == own:
                    continue
                if near > 0.0 and proximity(region, state, neighbours, a, b) < near:
                    continue
                if row_mark[r] != pass_stamp:
                    row_mark[r] = pass_stamp
                    best_row[r] = v
                    touched_rows[n_rows] = r
                    n_rows += 1
                elif v > best_row[r]:
                    best_row[r] = v
            at[i] = p
    for t in range(n_rows):
        r = touched_rows[t]
        row_done[r] = query
        b = need_owner[r]
        if mark[b] != query:
            mark[b] = query
            fsum[b] = 0.0
            rsum[b] = 0.0
            rows_met[b] = 0
            rows_wanted[b] = 0
            cands[n] = b
            n += 1
        rsum[b] += best_row[r]
        rows_wanted[b] += 1
    return n


@njit(cache=True)
def _cursors(f_lo, f_hi, feat, ptr, d_ptr):
    """Start and end of each list (feature feat[f_lo:f_hi]; main and delta) in its postings."""
    at = np.zeros(2 * (f_hi - f_lo), np.int64)
    end = np.zeros(2 * (f_hi - f_lo), np.int64)
    for e in range(f_lo, f_hi):
        f = feat[e]
        if f + 1 < ptr.shape[0]:
            at[2 * (e - f_lo)], end[2 * (e - f_lo)] = ptr[f], ptr[f + 1]
        if f + 1 < d_ptr.shape[0]:
            at[2 * (e - f_lo) + 1], end[2 * (e - f_lo) + 1] = d_ptr[f], d_ptr[f + 1]
    return at, end


@njit(cache=True)
def _bounded(a, k, theta, floor, near, final, cands, n, fsum, rsum, rows_met, rows_wanted, consent, need_count,
             tmask, tcount, region, state, neighbours, sme, tiebreak, weights,
             need_ptr, nf_ptr, nf_feat, nf_w, of_ptr, of_feat, of_w, out_slots, out_scores):
    """The best k of the members met into out_slots/out_scores, by what they score at least
    (``final`` False: rows not read count 0), or exactly (``final`` True): from the sums if every
    list was read for the member (``floor`` 0, or -1 and the member at least ``near``), else by
    looking the pair up (``_row_best``) unless its upper bound (rows not read at ``floor``) stays
    below ``theta`` or the k-th best. Every list was read to its end for members at least ``near``
    (proximity; 2: for none). Returns the k-th best score (-1: fewer than k)."""
    w_need, w_offer, w_topics = weights[W_NEED], weights[W_OFFER], weights[W_TOPICS]
    w_proximity, w_sme = weights[W_PROXIMITY], weights[W_SME]
    own_needs = need_count[a]
    for j in range(k):
        out_slots[j] = -1
        out_scores[j] = -1.0
    for t in range(n):
        b = cands[t]
        if not consent[b]:
            continue
        fwd = fsum[b] / own_needs if own_needs > 0 else 0.0
        rev = rsum[b] / need_count[b] if need_count[b] > 0 else 0.0
        bonus = (w_topics * topic_overlap(tmask, tcount, a, b) + w_proximity * proximity(region, state, neighbours, a, b)
                 + w_sme * sme[b] + tiebreak[b])
        read = floor == 0.0 or proximity(region, state, neighbours, a, b) >= near
        if final and not read:
            top = floor
            high = (w_need * (fwd + (top * (own_needs - popcount(rows_met[b])) / own_needs if own_needs > 0 else 0.0))
                    + w_offer * (rev + (top * (need_count[b] - rows_wanted[b]) / need_count[b]
                                        if need_count[b] > 0 else 0.0)) + bonus)
            # theta may be this very member's score, summed in another order: a margin for rounding
            if high < theta - 1e-9 or high <= out_scores[k - 1] - 1e-9:
                continue
            fwd = 0.0
            for row in range(need_ptr[a], need_ptr[a + 1]):
                fwd += _row_best(nf_feat, nf_w, nf_ptr[row], nf_ptr[row + 1], of_feat, of_w, of_ptr[b], of_ptr[b + 1])
            rev = 0.0
            for row in range(need_ptr[b], need_ptr[b + 1]):
                rev += _row_best(nf_feat, nf_w, nf_ptr[row], nf_ptr[row + 1], of_feat, of_w, of_ptr[a], of_ptr[a + 1])
            fwd = fwd / own_needs if own_needs > 0 else 0.0
            rev = rev / need_count[b] if need_count[b] > 0 else 0.0
        score = w_need * fwd + w_offer * rev + bonus
        if score > out_scores[k - 1]:
            _insert(out_slots, out_scores, k, b, score)
    return out_scores[k - 1]


@njit(cache=True)
def _exact(ix, a, b):
    """b's score as a's partner, looked up pairwise (``coverage``)."""
    fwd, rev = coverage(ix, a, b)
    weights = ix.weights
    return (weights[W_NEED] * fwd + weights[W_OFFER] * rev
            + weights[W_TOPICS] * topic_overlap(ix.tmask, ix.tcount, a, b)
            + weights[W_PROXIMITY] * proximity(ix.region, ix.state, ix.neighbours, a, b)
            + weights[W_SME] * ix.sme[b] + ix.tiebreak[b])


@njit(cache=True)
def _best_k_pruned(ix, sc, a, k, levels, out_slots, out_scores):
    """The best ``k`` consenting partners of ``a`` (best first), as ``score_one`` finds them, without
    reading every posting entry (max-score pruning, exact).

    Posting lists are read level by level (``levels``: descending weights; each list down to the
    level's weight, the next level on from where it stopped). A need row of ``a`` that a member has
    met at some level is complete for that member (later entries are weaker), likewise a need row of
    the other member that ``a``'s offers met. After each level, ``theta``: the k-th best exact score
    of the k members that score best on what is known. A member not met yet has every part below
    the level's weight: if even with every bonus it cannot beat ``theta``, no more is read.
    Otherwise the rest of every list is read for the members near enough that their proximity could
    lift them above ``theta`` (often only those in a's state; all of them if need be). A member met
    is scored from its sums where every list was read for it, else by looking the pair up, unless
    its upper bound (rows not read at the level's weight) stays below the k-th best."""
    for j in range(k):
        out_slots[j] = -1
        out_scores[j] = -1.0
    own = ix.group[a]
    if own < 0:
        return
    r0, r1 = ix.need_ptr[a], ix.need_ptr[a + 1]
    if r1 - r0 > 62:  # rows met are kept as bits: an unusual member is scored without bounds
        n = _candidates(ix, sc, a)
        _best_k(ix, sc, a, n, k, -1, out_slots, out_scores)
        return
    _reset_stamps(sc)
    sc.stamp[0] += 1
    query = sc.stamp[0]
    weights = ix.weights
    region, state, neighbours = ix.region, ix.state, ix.neighbours
    # Any bonus of a partner of a but proximity's: topics only if a has any.
    other_bonus = weights[W_TOPICS] * (ix.tcount[a] > 0) + weights[W_SME] + 1e-6
    e0 = ix.nf_ptr[r0]
    o0, o1 = ix.of_ptr[a], ix.of_ptr[a + 1]
    need_at, need_end = _cursors(e0, ix.nf_ptr[r1], ix.nf_feat, ix.op_ptr, ix.dop_ptr)
    offer_at, offer_end = _cursors(o0, o1, ix.of_feat, ix.np_ptr, ix.dnp_ptr)
    known = np.empty(k, np.int32)
    exact = np.empty(k)
    n = 0
    theta = -1.0  # a's k-th best score is at least this
    floor = 0.0  # what a part not read yet is below (0: every list read to its end)
    near = 0.0
    for level in range(levels.shape[0] + 1):
        tail = level == levels.shape[0]
        cut = -1.0 if tail else levels[level]
        if tail and floor > 0.0:
            # the rest of every list, for the members whose proximity could lift them above theta
            coverage_bound = weights[W_NEED] * floor * (r1 > r0) + weights[W_OFFER] * floor * (o1 > o0)
            room = theta - coverage_bound - other_bonus
            near = 2.0
            for closeness in (1.0, 0.7, 0.4, 0.0):  # proximity's values, closest first
                if weights[W_PROXIMITY] * closeness > room:
                    near = closeness  # members this close or closer could still beat theta
            if near > 1.0:
                break  # nobody not met yet can beat theta
        n = _need_pass(r0, r1, cut, own, query, sc.stamp, ix.nf_ptr, ix.nf_w, e0, need_at, need_end,
                       ix.op_slot, ix.op_w, ix.dop_slot, ix.dop_w, ix.group, sc.mark, sc.rows_met, sc.need_mark,
                       sc.best, sc.touched, sc.fwd, sc.rev, sc.rows_wanted, sc.cands, n,
                       a, near, region, state, neighbours)
        n = _offer_pass(o0, o1, cut, own, query, sc.stamp, ix.of_w, offer_at, offer_end, ix.np_row, ix.np_w,
                        ix.dnp_row, ix.dnp_w, ix.need_owner, ix.group, sc.mark, sc.row_done, sc.row_mark,
                        sc.best_row, sc.touched_rows, sc.fwd, sc.rev, sc.rows_met, sc.rows_wanted, sc.cands, n,
                        a, near, region, state, neighbours)
        if tail:
            if near == 0.0:
                floor = 0.0  # every list read for everybody
            break
        floor = cut
        # theta: the exact scores of the k members that score best on what is known
        _bounded(a, k, -1.0, floor, 2.0, False, sc.cands, n, sc.fwd, sc.rev, sc.rows_met, sc.rows_wanted,
                 ix.consent, ix.need_count, ix.tmask, ix.tcount, region, state, neighbours, ix.sme,
                 ix.tiebreak, weights, ix.need_ptr, ix.nf_ptr, ix.nf_feat, ix.nf_w, ix.of_ptr, ix.of_feat,
                 ix.of_w, known, out_scores)
        for j in range(k):
            exact[j] = -1.0
        for j in range(k):
            if known[j] >= 0:
                score = _exact(ix, a, known[j])
                i = k - 1
                if score > exact[i]:
                    while i > 0 and exact[i - 1] < score:
                        exact[i] = exact[i - 1]
                        i -= 1
                    exact[i] = score
        theta = max(theta, exact[k - 1])
        unseen = (weights[W_NEED] * cut * (r1 > r0) + weights[W_OFFER] * cut * (o1 > o0) + other_bonus
                  + weights[W_PROXIMITY])
        if unseen <= theta:
            near = 2.0  # nobody read to the end
            break
    if floor == 0.0:
        near = 0.0
    _bounded(a, k, theta, floor, near, True, sc.cands, n, sc.fwd, sc.rev, sc.rows_met,
             sc.rows_wanted, ix.consent, ix.need_count, ix.tmask, ix.tcount, region, state, neighbours, ix.sme,
             ix.tiebreak, weights, ix.need_ptr, ix.nf_ptr, ix.nf_feat, ix.nf_w, ix.of_ptr, ix.of_feat,
             ix.of_w, out_slots, out_scores)


@njit(cache=True, parallel=True)
def _score_shares(ix, stamp, mark, need_mark, best, fwd, rev, cands, touched, row_mark, best_row, touched_rows,
                  rows_met, rows_wanted, row_done, slots, k, levels, out_slots, out_scores):
    """One share of the slots per thread, each with its own scratch; each slot's list is its own."""
    shares = stamp.shape[0]
    for share in prange(shares):
        sc = Scratch(stamp[share], mark[share], need_mark[share], best[share], fwd[share], rev[share],
                     cands[share], touched[share], row_mark[share], best_row[share], touched_rows[share],
                     rows_met[share], rows_wanted[share], row_done[share])
        for i in range(share, slots.shape[0], shares):
            a = slots[i]
            _best_k_pruned(ix, sc, a, k, levels, out_slots[a], out_scores[a])


REBUILD_CHUNK = 2000


# --- semantic links: the strongest texts of the other side per text ------------------------------

@njit(cache=True, inline="always")
def _keep_link(ids, values, counts, q, j, v):
    """Offer text j with similarity v to query q's list: at most ids.shape[1], the strongest first,
    equal ones in ascending id (as a stable sort by descending similarity would order them)."""
    k = ids.shape[1]
    n = counts[q]
    if n == k:
        if v < values[q, k - 1] or (v == values[q, k - 1] and j > ids[q, k - 1]):
            return
        i = k - 1
    else:
        i = n
        counts[q] = n + 1
    while i > 0 and (values[q, i - 1] < v or (values[q, i - 1] == v and ids[q, i - 1] > j)):
        values[q, i] = values[q, i - 1]
        ids[q, i] = ids[q, i - 1]
        i -= 1
    values[q, i] = v
    ids[q, i] = j


@njit(cache=True, nogil=True)
def _top_links_serial(similarity, rows, columns, threshold, ids, values, counts):
    for r in range(similarity.shape[0]):
        q = rows[r]
        for c in range(similarity.shape[1]):
            v = similarity[r, c]
            if v >= threshold:
                _keep_link(ids, values, counts, q, columns[c], v)


@njit(cache=True, parallel=True)
def _top_links_parallel(similarity, rows, columns, threshold, ids, values, counts):
    for r in prange(similarity.shape[0]):  # rows are distinct queries: no two threads share a list
        q = rows[r]
        for c in range(similarity.shape[1]):
            v = similarity[r, c]
            if v >= threshold:
                _keep_link(ids, values, counts, q, columns[c], v)


PARALLEL_FROM = 1 << 21  # similarities in a block from which the threads pay (small ones: one thread)


def top_links(similarity, rows, columns, threshold, ids, values, counts, parallel: bool | None = None) -> None:
    """Merge a block of similarities (float32, queries ``rows`` x texts ``columns``) into each
    query's strongest links at or above ``threshold``: ``ids``/``values`` (queries, k), ``counts``
    (queries). Rows must be distinct. Small blocks (a newcomer's few texts) on one thread: numba's
    threads would spin longer than the work takes. ``parallel=False``: one thread whatever the size
    (the caller runs threads of its own; the serial kernel releases the GIL)."""
    if parallel is None:
        parallel = similarity.size >= PARALLEL_FROM
    run = _top_links_parallel if parallel else _top_links_serial
    run(similarity, rows, columns, threshold, ids, values, counts)


def score_all(ix, shares, slots, k, out_slots, out_scores, pause=None, levels=LEVELS):
    """The full rebuild: the best k partners of every slot in ``slots`` into ``out_slots`` /
    ``out_scores`` (slots x k), one share of the slots per thread, a chunk of slots at a time with
    ``pause()`` in between (a service lets its event loop run there). ``levels``: the weights the
    posting lists are read down to in turn (empty: every list read whole, no pruning)."""
    size, rows = len(ix.alive), len(ix.need_owner)
    scratch = (np.zeros((shares, 2), np.int64), np.zeros((shares, size), np.int32),
               np.zeros((shares, size), np.int32), np.zeros((shares, size)), np.zeros((shares, size)),
               np.zeros((shares, size)), np.zeros((shares, size), np.int32), np.zeros((shares, size), np.int32),
               np.zeros((shares, rows), np.int32), np.zeros((shares, rows)), np.zeros((shares, rows), np.int32),
               np.zeros((shares, size), np.int64), np.zeros((shares, size), np.int32),
               np.zeros((shares, rows), np.int32))
    levels = np.asarray(levels, np.float64)
    for start in range(0, len(slots), REBUILD_CHUNK):
        _score_shares(ix, *scratch, slots[start:start + REBUILD_CHUNK], k, levels, out_slots, out_scores)
        if pause:
            pause()


@njit(cache=True)
def postings(feat, target, weight, keep, features):
    """Postings feature -> targets in CSR form: (ptr (features + 1), targets int32, weights float64)
    of the entries with ``keep``, each feature's by weight, strongest first, equal weights in their
    order in the input (a counting sort by feature, then a stable sort of the lists that are not in
    order yet: no int64 order array over all entries, no masked copies; at 100k members these were
    a quarter GiB at the compaction's peak)."""
    ptr = np.zeros(features + 1, np.int64)
    for i in range(len(feat)):
        if keep[i]:
            ptr[feat[i] + 1] += 1
    for f in range(features):
        ptr[f + 1] += ptr[f]
    targets = np.empty(ptr[features], np.int32)
    weights = np.empty(ptr[features], np.float64)
    position = ptr[:-1].copy()
    for i in range(len(feat)):
        if keep[i]:
            p = position[feat[i]]
            targets[p] = target[i]
            weights[p] = weight[i]
            position[feat[i]] = p + 1
    for f in range(features):
        lo, hi = ptr[f], ptr[f + 1]
        ordered = True
        for p in range(lo + 1, hi):
            if weights[p] > weights[p - 1]:
                ordered = False
                break
        if not ordered:
            order = np.argsort(-weights[lo:hi], kind="mergesort")
            targets[lo:hi] = targets[lo:hi][order]
            weights[lo:hi] = weights[lo:hi][order]
    return ptr, targets, weights
