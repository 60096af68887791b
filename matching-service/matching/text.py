"""Reading what members type: German and English labels, synonyms and
compound words, mapped onto the curated vocabulary. No I/O.

A label that names a vocabulary term (its id, a label or a synonym) is that
term. Other labels are free text: they are linked to the terms whose labels
or synonyms share most of their character trigrams ("Batteriezelle" shares
9 of 10 with "Batteriezellfertigung"), and they also keep their word stems
and the parts of their compound words ("Aluminiumstrangpressprofile" →
aluminium, strangpressprofil), so that two free-text labels can meet too.

A label's analysis (its terms and its words) depends only on the label and the
vocabulary (``TextAnalyzer.digest``): a rebuild takes the analyses stored in the
read model (``matching.analyses``) instead of doing them again (``remember``).
"""
from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter, defaultdict
from functools import lru_cache

import numpy as np

from verbund.vocabulary import Vocabulary, normalize

_FOLD = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"})

STOPWORDS = frozenset("""
a an and as at by for from in into of on or the to with without our we us need needs offer offers looking
seek seeking partner partners new e g eg z b zb etc
der die das den dem des ein eine einer eines einem einen und oder fuer mit von vom zum zur im in am an auf aus
bei bis durch fuer gegen ohne um unter ueber nach sowie als auch wir unsere unser suchen sucht bieten bietet
partner neue neuer neues
""".split())

# Minimum similarity of a free-text label to a term's label or synonym, and
# the highest weight such a fuzzy link gets (an exact term has 1.0).
FUZZY_THRESHOLD = 0.5
FUZZY_CAP = 0.9
MAX_FUZZY_TERMS = 3
# Words in more vocabulary terms than this say little on their own (software, system, Logistik).
GENERIC_DF = 6
MIN_PART = 4
# Part of every stored analysis's key: raised whenever ``_resolve`` or ``_tokens`` would find
# something else for the same label and vocabulary, so that analyses stored before are not used.
ANALYSIS_VERSION = 1


def fold(text: str) -> str:
    """Lower case, umlauts spelled out, accents dropped: 'Rückverfolgbarkeit' → 'rueckverfolgbarkeit'."""
    text = unicodedata.normalize("NFKC", text).casefold().translate(_FOLD)
    if text.isascii():  # nothing left to decompose: most labels, and the per-character loop is dear
        return text
    text = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in text if not unicodedata.combining(ch))


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", fold(text))


def stem(word: str) -> str:
    """A light stemmer for German and English inflection: Zellen/Zelle → zell, cells → cell."""
    if len(word) <= 4 or word.isdigit():
        return word
    for suffix in ("ungen", "ies", "en", "er", "es", "e", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            if suffix == "s" and word[-2] in "siu":  # analysis, Druckguss, bus: not a plural
                return word
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


def trigrams(text: str) -> frozenset[str]:
    return _trigrams(words(text))


def _trigrams(found: list[str]) -> frozenset[str]:
    padded = " " + " ".join(word for word in found if word not in STOPWORDS) + " "
    return frozenset(padded[i:i + 3] for i in range(len(padded) - 2))


class TextAnalyzer:
    """Term resolution and word features against one vocabulary."""

    def __init__(self, vocabulary: Vocabulary):
        self.vocabulary = vocabulary
        # What an analysis depends on besides the label: the terms' ids, labels and synonyms.
        self.digest = hashlib.sha256(repr((ANALYSIS_VERSION, sorted(
            (t.id, t.en, t.de, t.synonyms) for t in vocabulary.competencies.values()))).encode()).hexdigest()[:16]
        self._known: dict[str, tuple[tuple, frozenset]] = {}  # label -> stored (terms, tokens), see remember
        self._strings: list[tuple[str, frozenset[str]]] = []  # (term id, trigrams of one label/synonym)
        self._gram_index: dict[str, list[int]] = defaultdict(list)
        document_frequency: Counter[str] = Counter()
        lexicon: set[str] = set()
        for term in vocabulary.competencies.values():
            term_words: set[str] = set()
            for text in (term.en, term.de, *term.synonyms):
                grams = trigrams(text)
                position = len(self._strings)
                self._strings.append((term.id, grams))
                for gram in grams:
                    self._gram_index[gram].append(position)
                term_words.update(stem(word) for word in words(text))
            document_frequency.update(term_words)
            lexicon.update(word for word in term_words if len(word) >= MIN_PART and not word.isdigit())
        # The same postings as arrays: a long free text has dozens of trigrams, each shared by many
        # labels; counting them with numpy is what keeps distinct member-written texts cheap.
        self._gram_arrays = {gram: np.asarray(positions, np.int32) for gram, positions in self._gram_index.items()}
        self._string_sizes = np.array([len(grams) for _, grams in self._strings], np.float64)
        # vocabulary.find_competency's keys, so that a label is folded once for both lookups
        self._exact: dict[str, str] = {}
        for term in vocabulary.competencies.values():
            for text in (term.id, term.en, term.de, *term.synonyms):
                self._exact.setdefault(normalize(text), term.id)
        self.generic = frozenset(word for word, count in document_frequency.items() if count > GENERIC_DF)
        self.lexicon = frozenset(lexicon - STOPWORDS)
        self.resolve = lru_cache(maxsize=100_000)(self._resolve)
        self.tokens = lru_cache(maxsize=100_000)(self._tokens)
        # Per word as well: member-written texts are nearly all distinct, their words are not, and
        # splitting a compound is the dearest part of a text's analysis.
        self._word_tokens = lru_cache(maxsize=200_000)(self._word_tokens_uncached)

    def analysis(self, label: str) -> tuple[tuple[tuple[str, float], ...], frozenset[str]]:
        """What a label means: (``resolve(label)``, ``tokens(label)``)."""
        return self.resolve(label), self.tokens(label)

    def remember(self, analyses: dict[str, tuple]) -> None:
        """Analyses done before (``label -> (terms, tokens)`` as ``analysis`` gives them, read from
        the read model for this ``digest``): ``resolve`` and ``tokens`` take them instead of doing
        them again, until ``forget``."""
        self._known.update(analyses)

    def forget(self) -> None:
        """Drop the remembered analyses (after a rebuild: the caches keep the labels seen last)."""
        self._known.clear()

    def _resolve(self, label: str) -> tuple[tuple[str, float], ...]:
        """The terms a label means, with a weight: (id, 1.0) for an exact name,
        else up to three fuzzy links (id, 0.5–0.9), best first."""
        known = self._known.get(label)
        if known is not None:
            return known[0]
        folded = fold(label)  # once: the exact lookup and the trigrams both start from it
        exact = self._exact.get(re.sub(r"[^0-9a-z]+", "", folded))  # = vocabulary.find_competency(label)
        if exact:
            return ((exact, 1.0),)
        grams = _trigrams(re.findall(r"[a-z0-9]+", folded))
        if len(grams) < 3:
            return ()
        postings = [self._gram_arrays[gram] for gram in grams if gram in self._gram_arrays]
        if not postings:
            return ()
        shared = np.bincount(np.concatenate(postings), minlength=len(self._strings))
        similarities = shared / np.sqrt(len(grams) * self._string_sizes)
        best: dict[str, float] = {}
        for position in np.flatnonzero(similarities >= FUZZY_THRESHOLD).tolist():
            term_id = self._strings[position][0]
            similarity = float(similarities[position])
            if similarity > best.get(term_id, 0.0):
                best[term_id] = similarity
        ranked = sorted(((sim, term_id) for term_id, sim in best.items() if sim >= FUZZY_THRESHOLD), reverse=True)
        if not ranked:
            return ()
        top = ranked[0][0]
        return tuple((term_id, round(min(FUZZY_CAP, sim), 4)) for sim, term_id in ranked[:MAX_FUZZY_TERMS]
                     if sim >= top - 0.15)

    def split_compound(self, word: str) -> list[str]:
        """The lexicon words a compound consists of (linking s allowed), or [] if it is none."""
        n = len(word)
        # best[i]: the fewest parts that spell word[:i], as a list; None if impossible.
        best: list[list[str] | None] = [None] * (n + 1)
        best[0] = []
        for end in range(MIN_PART, n + 1):
            for start in range(0, end - MIN_PART + 1):
                if best[start] is None:
                    continue
                piece = word[start:end]
                part = stem(piece)
                if part in self.lexicon or piece in self.lexicon:
                    candidate = best[start] + [part]
                elif piece.endswith("s") and (stem(piece[:-1]) in self.lexicon) and end < n:
                    candidate = best[start] + [stem(piece[:-1])]  # Fugen-s: Gefahrgut|s|transport
                else:
                    continue
                if best[end] is None or len(candidate) < len(best[end]):
                    best[end] = candidate
        parts = best[n]
        return parts if parts and len(parts) > 1 else []

    def _tokens(self, label: str) -> frozenset[str]:
        """Word stems and compound parts of a free-text label that say something on their own."""
        known = self._known.get(label)
        if known is not None:
            return known[1]
        found: set[str] = set()
        for word in words(label):
            found.update(self._word_tokens(word))
        return frozenset(found)

    def _word_tokens_uncached(self, word: str) -> tuple[str, ...]:
        """One word's stem and compound parts that say something on their own."""
        if word in STOPWORDS or len(word) < 2:
            return ()
        found = {stem(word)}
        if len(word) >= 2 * MIN_PART:
            found.update(self.split_compound(word))
        return tuple(token for token in found if token not in self.generic and token not in STOPWORDS
                     and len(token) >= 3)
