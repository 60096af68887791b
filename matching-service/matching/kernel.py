"""The compiled inner loops of the matching engine (numba). No I/O.

``score_one`` scores one member against everybody through the inverted
indexes in ``Index`` and keeps its best ``k`` partners; ``score_all`` is the
full rebuild: it meets every pair once (from its lower slot) and files it in
both members' lists.

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
# posting list, slots (and need rows) are in ascending order.
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
])

W_NEED, W_OFFER, W_TOPICS, W_PROXIMITY, W_SME = 0, 1, 2, 3, 4


# Stamps are int32 (less memory to touch at random); they start again from 0 before they overflow.
STAMP_LIMIT = 2_000_000_000


def new_scratch(slots: int, rows: int) -> Scratch:
    return Scratch(np.zeros(2, np.int64),
                   np.zeros(slots, np.int32), np.zeros(slots, np.int32), np.zeros(slots), np.zeros(slots),
                   np.zeros(slots), np.zeros(slots, np.int32), np.zeros(slots, np.int32),
                   np.zeros(rows, np.int32), np.zeros(rows), np.zeros(rows, np.int32))


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
def _offers_meet_needs(a, first, n_cands, group, need_ptr, nf_ptr, nf_feat, nf_w,
                       p_ptr, p_slot, p_w, d_ptr, d_slot, d_w,
                       stamp, mark, need_mark, best, fwd, rev, cands, touched):
    """Need side of ``a``: fwd[b] += the best match of each need of a among b's offers (b >= first)."""
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
                lo, hi = ptr[f], ptr[f + 1]
                if first > 0 and lo < hi:
                    lo += np.searchsorted(slot[lo:hi], first)
                for p in range(lo, hi):
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
def _needs_want_offers(a, first_row, n_cands, group, need_owner, of_ptr, of_feat, of_w,
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
            lo, hi = ptr[g], ptr[g + 1]
            if first_row > 0 and lo < hi:
                lo += np.searchsorted(rows[lo:hi], first_row)
            for p in range(lo, hi):
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
def _candidates(ix, sc, a, first):
    """Every member (slot >= first) that meets a need of ``a`` or wants one of its offers, with
    sc.fwd = share of a's needs it meets and sc.rev = share of its needs a meets."""
    if sc.stamp[0] > STAMP_LIMIT or sc.stamp[1] > STAMP_LIMIT:
        sc.mark[:] = 0
        sc.need_mark[:] = 0
        sc.row_mark[:] = 0
        sc.stamp[:] = 0
    sc.stamp[0] += 1
    n = _offers_meet_needs(a, first, 0, ix.group, ix.need_ptr, ix.nf_ptr, ix.nf_feat, ix.nf_w,
                           ix.op_ptr, ix.op_slot, ix.op_w, ix.dop_ptr, ix.dop_slot, ix.dop_w,
                           sc.stamp, sc.mark, sc.need_mark, sc.best, sc.fwd, sc.rev, sc.cands, sc.touched)
    first_row = ix.need_ptr[first] if first < ix.need_ptr.shape[0] else ix.need_owner.shape[0]
    n = _needs_want_offers(a, first_row, n, ix.group, ix.need_owner, ix.of_ptr, ix.of_feat, ix.of_w,
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
    n = _candidates(ix, sc, a, 0)
    _best_k(ix, sc, a, n, k, topic_bit, out_slots, out_scores)
    for t in range(n):
        b = sc.cands[t]
        out_cands[t] = b
        out_fwd[t] = sc.fwd[b]
        out_rev[t] = sc.rev[b]
    return n


@njit(cache=True)
def _score_share(ix, sc, slots, share, shares, k, out_slots, out_scores, kth):
    """Rebuild for every ``shares``-th slot from ``share`` on: a pair is met once, from its lower
    slot, and filed in both lists (b's view of a swaps the coverages and takes a's SME flag)."""
    consent, tmask, tcount, sme, tiebreak = ix.consent, ix.tmask, ix.tcount, ix.sme, ix.tiebreak
    region, state, neighbours, weights = ix.region, ix.state, ix.neighbours, ix.weights
    w_need, w_offer, w_topics = weights[W_NEED], weights[W_OFFER], weights[W_TOPICS]
    w_proximity, w_sme = weights[W_PROXIMITY], weights[W_SME]
    bonus_bound = w_topics + w_proximity + w_sme + 1e-6
    cands, fwd, rev = sc.cands, sc.fwd, sc.rev
    for i in range(share, slots.shape[0], shares):
        a = slots[i]
        n = _candidates(ix, sc, a, a + 1)
        for t in range(n):
            b = cands[t]
            for_a = w_need * fwd[b] + w_offer * rev[b]
            for_b = w_need * rev[b] + w_offer * fwd[b]
            want_a = consent[b] and for_a + bonus_bound > kth[a]
            want_b = consent[a] and for_b + bonus_bound > kth[b]
            if not (want_a or want_b):
                continue
            shared = (w_topics * topic_overlap(tmask, tcount, a, b)
                      + w_proximity * proximity(region, state, neighbours, a, b))
            if want_a:
                score = for_a + shared + w_sme * sme[b] + tiebreak[b]
                if score > kth[a]:
                    _insert(out_slots[a], out_scores[a], k, b, score)
                    kth[a] = out_scores[a, k - 1]
            if want_b:
                score = for_b + shared + w_sme * sme[a] + tiebreak[a]
                if score > kth[b]:
                    _insert(out_slots[b], out_scores[b], k, a, score)
                    kth[b] = out_scores[b, k - 1]


@njit(cache=True, parallel=True)
def _score_shares(ix, stamp, mark, need_mark, best, fwd, rev, cands, touched, row_mark, best_row, touched_rows,
                  slots, k, out_slots, out_scores, kth):
    """One share of the slots per thread, each with its own scratch rows and result lists."""
    shares = stamp.shape[0]
    for share in prange(shares):
        sc = Scratch(stamp[share], mark[share], need_mark[share], best[share], fwd[share], rev[share],
                     cands[share], touched[share], row_mark[share], best_row[share], touched_rows[share])
        _score_share(ix, sc, slots, share, shares, k, out_slots[share], out_scores[share], kth[share])


@njit(cache=True)
def _merge(slots, k, parts_slots, parts_scores, out_slots, out_scores):
    """Each slot's best k over the lists the shares found."""
    for i in range(slots.shape[0]):
        a = slots[i]
        for j in range(k):
            out_slots[a, j] = -1
            out_scores[a, j] = -1.0
        for part in range(parts_slots.shape[0]):
            for j in range(k):
                b = parts_slots[part, a, j]
                if b < 0:
                    break
                score = parts_scores[part, a, j]
                if score > out_scores[a, k - 1]:
                    _insert(out_slots[a], out_scores[a], k, b, score)


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


def score_all(ix, shares, slots, k, out_slots, out_scores, pause=None):
    """The full rebuild: the best k partners of every slot in ``slots`` (ascending), one share
    of the slots per thread, a chunk of slots at a time with ``pause()`` in between (a service
    lets its event loop run there)."""
    size, rows = len(ix.alive), len(ix.need_owner)
    parts_slots = np.full((shares, size, k), -1, np.int32)
    parts_scores = np.full((shares, size, k), -1.0)
    kth = np.full((shares, size), -1.0)
    scratch = (np.zeros((shares, 2), np.int64), np.zeros((shares, size), np.int32),
               np.zeros((shares, size), np.int32), np.zeros((shares, size)), np.zeros((shares, size)),
               np.zeros((shares, size)), np.zeros((shares, size), np.int32), np.zeros((shares, size), np.int32),
               np.zeros((shares, rows), np.int32), np.zeros((shares, rows)), np.zeros((shares, rows), np.int32))
    for start in range(0, len(slots), REBUILD_CHUNK):
        # Pairs are met from their lower slot, so chunks of "a" add up to the whole rebuild.
        _score_shares(ix, *scratch, slots[start:start + REBUILD_CHUNK], k, parts_slots, parts_scores, kth)
        if pause:
            pause()
    _merge(slots, k, parts_slots, parts_scores, out_slots, out_scores)


@njit(cache=True)
def postings(feat, target, weight, keep, features):
    """Postings feature -> targets in CSR form: (ptr (features + 1), targets int32, weights float64)
    of the entries with ``keep``, each feature's in their order in the input (what a stable argsort
    by feature gives, without its int64 order array and the masked copies: at 100k members these
    were a quarter GiB at the compaction's peak)."""
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
    return ptr, targets, weights
