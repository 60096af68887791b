"""Matching quality on the quality set (matching-service/quality/): recall@5, MRR and junk@3 on the
tuning and the test part, in one run, for

  hybrid      the engine: vocabulary + lexical analysis + semantic links (calibrated, fitted)
  lexical     the engine without the model (what the service does when they are unavailable)
  tfidf       a character-n-gram TF-IDF baseline (scikit-learn, char_wb 2-5)
  embeddings  the model's normalised similarity alone (USE), no threshold, no vocabulary
  USE         the model's raw cosine alone

`--fit` searches the calibration and the shared-word weight on the TUNING part
only and prints the best; `--weights` fits the combination of the score's parts by logistic
regression on the TUNING part's pairs (cross-validated by seeker within the tuning part) and tries
gating the bonuses on a content match; `--variants` tries other forms of the semantic similarity on the
TUNING part (framing words stripped before embedding, the vocabulary's synonyms in the yardstick,
CSLS-style calibration against a text's nearest vocabulary labels, other shared-word weights) and
measures the one the tuning part chose on both parts; `--more-phrasings` measures the term bridge with a
second, colloquial set of lines per term (bench/data/need_phrasings_colloquial.yaml), fitted on the
TUNING part, the choice once on the test part. The test part is only measured, in aggregate:
per-seeker results are printed for the tuning part only. Writes docs/bench/quality.md.

    python matching-service/bench/quality.py [--fit] [--weights] [--variants] [--more-phrasings]
"""
from __future__ import annotations

import argparse
import itertools
import re
import sys
import time
from pathlib import Path

from matching import quality
from matching.engine import Engine
from matching.engine.cards import WEIGHTS
from matching.semantic import (
    CALIBRATION,
    MODEL_WEIGHTS,
    NEED,
    OFFER,
    PARTS,
    BridgeCalibration,
    Calibration,
    Embedder,
    Space,
    TermBridge,
)
from verbund.vocabulary import load as load_vocabulary

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "docs" / "bench" / "quality.md"


def texts_of(qs: quality.QualitySet) -> dict[str, list[str]]:
    needs = sorted({item["label"] for p in qs.profiles.values() for item in p["needs"]})
    offers = sorted({item["label"] for p in qs.profiles.values() for item in p["offers"]})
    return {NEED: needs, OFFER: offers}


def embed_all(embedder, texts) -> tuple[dict, float]:
    started = time.perf_counter()
    vectors = {kind: embedder.embed(items, kind) for kind, items in texts.items()}
    elapsed = time.perf_counter() - started
    return vectors, (len(texts[NEED]) + len(texts[OFFER])) / elapsed


def rank_engine(qs, vectors=None, texts=None, calibration=CALIBRATION, word_weight=None, background=None,
                weights=MODEL_WEIGHTS, bridge=None) -> dict[str, list[str]]:
    space = None
    if vectors is not None:
        space = Space(calibration, background, weights, bridge=bridge)
        for kind in (NEED, OFFER):
            space.add_vectors(kind, texts[kind], vectors[kind])
    engine = Engine(semantic=space, word_weight=word_weight)
    engine.load(qs.profiles.values())
    key_of = qs.key_of()
    return {key: [key_of[pid] for pid, _ in engine.suggestions(p["id"])] for key, p in qs.profiles.items()}


def rank_pairwise(qs, similarity) -> dict[str, list[str]]:
    """A baseline's ranking: B for A scores 0.45 x (A's needs met by B's offers, best per need) +
    0.25 x (the other way round), other sectors and consent as in the engine."""
    keys = list(qs.profiles)
    ranked = {}
    for a in keys:
        pa = qs.profiles[a]
        scores = []
        for b in keys:
            pb = qs.profiles[b]
            if b == a or pb["sector"] == pa["sector"] or not pb["consent"]["suggest_as_partner"]:
                continue

            def coverage(needs, offers):
                if not needs or not offers:
                    return 0.0
                return sum(max(similarity(n["label"], o["label"]) for o in offers) for n in needs) / len(needs)

            score = (WEIGHTS["need_coverage"] * coverage(pa["needs"], pb["offers"])
                     + WEIGHTS["offer_coverage"] * coverage(pb["needs"], pa["offers"]))
            scores.append((score, b))
        scores.sort(key=lambda item: -item[0])
        ranked[a] = [b for _, b in scores[:10]]
    return ranked


def tfidf_similarity(texts):
    from sklearn.feature_extraction.text import TfidfVectorizer

    corpus = sorted(set(texts[NEED]) | set(texts[OFFER]))
    matrix = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), lowercase=True).fit_transform(corpus)
    row = {text: i for i, text in enumerate(corpus)}
    cache = {}

    def similarity(a, b):
        key = (a, b)
        if key not in cache:
            cache[key] = float(matrix[row[a]].multiply(matrix[row[b]]).sum())
        return cache[key]
    return similarity


def embedding_similarity(texts, vectors, background=None, part=None):
    """The model's normalised similarity (as the engine uses it), or its raw cosine (``part=0``)."""
    if part is not None:
        a, b = PARTS[part]
        row = {kind: {text: i for i, text in enumerate(texts[kind])} for kind in (NEED, OFFER)}

        def cosine(need, offer):
            return float(vectors[NEED][row[NEED][need], a:b] @ vectors[OFFER][row[OFFER][offer], a:b])
        return cosine
    space = Space(CALIBRATION, background)
    for kind in (NEED, OFFER):
        space.add_vectors(kind, texts[kind], vectors[kind])
    return space.similarity


def both_parts(qs, ranked) -> dict:
    return {part: quality.measure(ranked, qs.expected[part], qs.distractors[part]) for part in quality.PARTS}


def objective(result) -> float:
    return result["recall@5"] + result["mrr"] - 0.05 * result["junk@3"]


# A link must stand out: at least 2 standard deviations above the texts' baselines (about the top
# 2% of pairs). Looser thresholds ranked the tuning part a little better (1.0: recall@5 0.825, MRR
# 0.707) but linked nearly everybody with everybody at strengths of a few percent, and such links
# then filled suggestion lists and partner-project teams with members that do not fit.
MIN_THRESHOLDS = (2.0, 2.5)


def fit_bridge(qs, vectors, texts, background, bridge) -> tuple[BridgeCalibration, dict]:
    """Grid search of the term bridge's calibration on the tuning part only (the engine's own
    calibration and word weight as they are)."""
    best = None
    offer_checks = [(None, 5)] + list(itertools.product((1.0, 1.5, 2.0, 2.5), (5, 10)))
    for threshold, span, top, min_cosine, (offer_threshold, offer_top) in itertools.product(
            (1.5, 2.0, 2.5, 3.0), (1.0, 1.5, 3.0), (3, 5, 8), (0.4,), offer_checks):
        calibrated = TermBridge(bridge.vectors, bridge.owners, BridgeCalibration(
            threshold, threshold + span, min_cosine, top, offer_threshold, offer_top), labels=bridge.labels)
        result = quality.measure(rank_engine(qs, vectors, texts, background=background, bridge=calibrated),
                                 qs.expected["tuning"], qs.distractors["tuning"])
        print(f"tuning, bridge {calibrated.calibration}: recall@5 {result['recall@5']:.3f} MRR {result['mrr']:.3f} "
              f"junk@3 {result['junk@3']}", flush=True)
        if best is None or objective(result) > objective(best[1]) + 1e-9:
            best = (calibrated.calibration, result)
    return best


def fit(qs, vectors, texts, background, model_weights=(MODEL_WEIGHTS,)) -> tuple[Calibration, float, tuple, dict]:
    """Grid search on the tuning part only (``model_weights``: the models' weights to try, when
    ``Embedder`` holds more than one model)."""
    best, per_weights = None, {}
    for weights, threshold, span, cap, word in itertools.product(
            model_weights, MIN_THRESHOLDS, (2.0, 3.0, 4.0, 5.0), (1.0,), (0.45, 0.6)):
        calibration = Calibration(threshold, threshold + span, cap)
        ranked = rank_engine(qs, vectors, texts, calibration, word, background, weights)
        result = quality.measure(ranked, qs.expected["tuning"], qs.distractors["tuning"])
        score = objective(result)
        if weights not in per_weights or score > per_weights[weights][0] + 1e-9:
            per_weights[weights] = (score, calibration, word, result)
        if best is None or score > best[0] + 1e-9:
            best = (score, calibration, word, weights, result)
    for weights, (score, calibration, word, result) in per_weights.items():
        print(f"tuning, best with model weights {weights}: objective {score:.3f} recall@5 {result['recall@5']:.3f} "
              f"MRR {result['mrr']:.3f} junk@3 {result['junk@3']} ({calibration}, word {word})", flush=True)
    return best[1], best[2], best[3], best[4]


PART_NAMES = ("need_coverage", "offer_coverage", "topics", "proximity", "sme")


def pair_rows(qs, engine, part: str = "tuning") -> dict[tuple[str, str], tuple]:
    """Every (seeker, partner) pair of one part the engine would consider (another sector, consent,
    some need or offer met): the raw parts and the strongest single match (``Engine.pair``)."""
    rows = {}
    for seeker in qs.expected[part]:
        a = engine.card(qs.profiles[seeker]["id"])
        for key, profile in qs.profiles.items():
            if (key == seeker or profile["sector"] == a.sector or not profile["consent"]["suggest_as_partner"]):
                continue
            pair = engine.pair(a, engine.card(profile["id"]))
            if pair["matches"]:
                best = max(m[0] for m in pair["met"] + pair["wanted"])
                rows[(seeker, key)] = tuple(pair["raw"][name] for name in PART_NAMES) + (best,)
    return rows


def rank_rows(rows, score) -> dict[str, list[str]]:
    """Each seeker's best 10 by ``score(row)`` (ties by key, stable)."""
    ranked: dict[str, list[tuple[float, str]]] = {}
    for (seeker, key), row in rows.items():
        ranked.setdefault(seeker, []).append((score(row), key))
    return {seeker: [key for _, key in sorted(found, key=lambda item: (-item[0], item[1]))[:10]]
            for seeker, found in ranked.items()}


def weight_experiments(qs, engine) -> list[tuple[str, dict]]:
    """On the TUNING part only: the engine's weights, content alone, the bonuses gated on a content
    match (they count only when the strongest single match reaches the gate), and weights fitted
    by logistic regression (expected partner vs any other candidate, distractors weighted 3x),
    measured out of fold (5 folds grouped by seeker, so a seeker is never ranked by weights fitted
    on its own pairs)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold

    rows = pair_rows(qs, engine)
    expected, distractors = qs.expected["tuning"], qs.distractors["tuning"]
    w = [WEIGHTS[name] for name in PART_NAMES]

    def measured(score):
        return quality.measure(rank_rows(rows, score), expected, distractors)

    found = [("engine weights (0.45 / 0.25 / 0.12 / 0.10 / 0.08)",
              measured(lambda r: sum(wi * ri for wi, ri in zip(w, r[:5], strict=True)))),
             ("content alone (bonuses 0)", measured(lambda r: w[0] * r[0] + w[1] * r[1]))]
    for gate in (0.1, 0.25, 0.5):
        found.append((f"bonuses only with a match of strength >= {gate}", measured(
            lambda r, gate=gate: w[0] * r[0] + w[1] * r[1]
            + (r[5] >= gate) * (w[2] * r[2] + w[3] * r[3] + w[4] * r[4]))))
    keys = list(rows)
    x = np.array([rows[k][:5] for k in keys])
    y = np.array([key in expected[seeker] for seeker, key in keys], np.int8)
    sample = np.array([3.0 if key in distractors[seeker] else 1.0 for seeker, key in keys])
    groups = np.array([seeker for seeker, _ in keys])
    for label, columns in (("all five parts", [0, 1, 2, 3, 4]), ("coverages only", [0, 1])):
        out_of_fold = np.zeros(len(keys))
        for train, held in GroupKFold(5).split(x, y, groups):
            model = LogisticRegression(C=1.0, max_iter=2000).fit(x[train][:, columns], y[train],
                                                                 sample_weight=sample[train])
            out_of_fold[held] = model.decision_function(x[held][:, columns])
        full = LogisticRegression(C=1.0, max_iter=2000).fit(x[:, columns], y, sample_weight=sample)
        coef = full.coef_[0] / full.coef_[0][0] * w[0]
        named = ", ".join(f"{PART_NAMES[c]} {v:.2f}" for c, v in zip(columns, coef, strict=True))
        held_out = {key: (value,) for key, value in zip(keys, out_of_fold, strict=True)}
        found.append((f"logistic regression, {label}, out of fold (fitted on all: {named})",
                      quality.measure(rank_rows(held_out, lambda r: r[0]), expected, distractors)))
    return found


# How members open a need ("Wir suchen jemanden, der …", "we are looking for …"): words
# that say nothing about the content, stripped before embedding in the `--variants` trial.
FRAMING = re.compile(
    r"^\s*(?:wir\s+(?:suchen|brauchen|benötigen|wollen|möchten|hätten gern)\s+(?:jemanden\s*,?\s*(?:der|die)\s+)?"
    r"|(?:we|i)\s+(?:need|are looking for|look for|want|would like)\s+(?:someone\s+(?:who|to)\s+)?"
    r"(?:a\s+partner\s+(?:who|to|for)\s+)?"
    r"|gesucht\s*:?\s*|suchen\s+|looking for\s+|jemand(?:en)?\s*,?\s*(?:der|die)\s+)", re.I)


def strip_framing(text: str) -> str:
    """``text`` without its leading framing words (unchanged if little would be left)."""
    stripped = FRAMING.sub("", text).strip()
    return stripped if len(stripped) >= 4 else text


def synonym_background(embedder) -> dict:
    """The yardstick with the vocabulary's synonyms beside its labels (3,658 texts instead of 786)."""
    terms = load_vocabulary().competencies.values()
    labels = sorted({t.de for t in terms} | {t.en for t in terms} | {s for t in terms for s in t.synonyms})
    return {NEED: embedder.embed(labels, NEED), OFFER: embedder.embed(labels, OFFER)}


def csls_scales(k: int):
    """``Space._scales`` measuring a text against the mean of its k nearest vocabulary labels (CSLS,
    the hubness correction of cross-lingual retrieval) instead of the mean of all, in the same
    standard deviations."""
    import numpy as np

    def _scales(self, kind, vectors):
        cosines = vectors @ self.background[OFFER if kind == NEED else NEED].T
        std = np.maximum(cosines.std(axis=1), 1e-3)
        nearest = -np.partition(-cosines, k - 1, axis=1)[:, :k]
        return (0.5 / std).astype(np.float32), (0.5 * nearest.mean(axis=1) / std).astype(np.float32)
    return _scales


# What the tuning part chose among the variants (and the one measured on the test part, once).
CHOSEN_VARIANT = "framing stripped, synonyms in the yardstick, shared word 0.6"


def variant_experiments(qs, embedder, texts, vectors, background) -> list[tuple[str, str, dict]]:
    """(variant, part, result) for every variant on the TUNING part, then the chosen one (and the
    engine as it is) on both parts."""
    stripped = {kind: embedder.embed([strip_framing(t) for t in texts[kind]], kind) for kind in (NEED, OFFER)}
    synonyms = synonym_background(embedder)
    tuning = (qs.expected["tuning"], qs.distractors["tuning"])

    def ranked(vecs, back, calibration=CALIBRATION, word=None, scales=None):
        original = Space._scales
        if scales is not None:
            Space._scales = scales
        try:
            return rank_engine(qs, vecs, texts, calibration, word, back)
        finally:
            Space._scales = original

    trials = [("engine as it is", ranked(vectors, background)),
              ("framing stripped", ranked(stripped, background)),
              ("synonyms in the yardstick", ranked(vectors, synonyms)),
              ("framing stripped, synonyms in the yardstick", ranked(stripped, synonyms)),
              ("shared word 0.6", ranked(vectors, background, word=0.6)),
              (CHOSEN_VARIANT, ranked(stripped, synonyms, word=0.6)),
              ("the same, full strength at 6.0", ranked(stripped, synonyms, Calibration(2.0, 6.0), 0.6)),
              ("the same, shared word 0.75", ranked(stripped, synonyms, word=0.75))]
    for k, threshold in itertools.product((10, 20), (-1.0, -0.5, 0.0)):
        trials.append((f"CSLS, nearest {k} labels, threshold {threshold}",
                       ranked(vectors, background, Calibration(threshold, threshold + 3.0), scales=csls_scales(k))))
    found = [(label, "tuning", quality.measure(result, *tuning)) for label, result in trials]
    for label, result in trials:
        if label in ("engine as it is", CHOSEN_VARIANT):
            found.append((label, "test", quality.measure(result, qs.expected["test"], qs.distractors["test"])))
    return found


COLLOQUIAL = Path(__file__).parent / "data" / "need_phrasings_colloquial.yaml"


def more_phrasings_experiment(qs, embedder, texts, vectors, background) -> list[tuple[str, str, dict]]:
    """(variant, part, result): the term bridge with a second, colloquial set of lines per term
    (``data/need_phrasings_colloquial.yaml``) beside the service's own, with the service's
    calibration and with the calibration ``fit_bridge`` chooses for it on the TUNING part; the chosen
    one measured once on the test part."""
    import numpy as np
    import yaml

    bridge = embedder.bridge
    known = set(bridge.terms)
    extra = [(entry["id"], line) for entry in yaml.safe_load(COLLOQUIAL.read_text(encoding="utf-8"))
             if entry["id"] in known for line in (*entry.get("de", ()), *entry.get("en", ()))]
    both = TermBridge(np.concatenate([bridge.vectors, embedder.embed([line for _, line in extra], NEED)]),
                      [*bridge.owners, *(term for term, _ in extra)], bridge.calibration, labels=bridge.labels)
    chosen, _ = fit_bridge(qs, vectors, texts, background, both)
    fitted = TermBridge(both.vectors, both.owners, chosen, labels=bridge.labels)

    def measured(calibrated, part):
        return quality.measure(rank_engine(qs, vectors, texts, background=background, bridge=calibrated),
                               qs.expected[part], qs.distractors[part])
    lines = f"{len(bridge.owners)} + {len(extra)} lines"
    return [(f"service's lines ({len(bridge.owners)}), service's calibration", "tuning", measured(bridge, "tuning")),
            (f"{lines}, service's calibration", "tuning", measured(both, "tuning")),
            (f"{lines}, fitted on the tuning part: {chosen}", "tuning", measured(fitted, "tuning")),
            (f"{lines}, fitted on the tuning part (measured once)", "test", measured(fitted, "test"))]


def variants_section(variants, title: str = "Other forms of the semantic similarity (`--variants`; chosen on the "
                     "tuning part, the choice measured once on the test part)") -> str:
    if not variants:
        return ""
    lines = ["", f"## {title}", "",
             "| variant | part | recall@5 | MRR | junk@3 |", "|---|---|---:|---:|---:|"]
    lines += [f"| {label} | {part} | {r['recall@5']:.3f} | {r['mrr']:.3f} | {r['junk@3']} |"
              for label, part, r in variants]
    return "\n".join(lines) + "\n"


def experiments_section(experiments) -> str:
    if not experiments:
        return ""
    lines = ["", "## Combining the parts (tuning part only, `--weights`)", "",
             "| combination | recall@5 | MRR | junk@3 |", "|---|---:|---:|---:|"]
    lines += [f"| {label} | {r['recall@5']:.3f} | {r['mrr']:.3f} | {r['junk@3']} |" for label, r in experiments]
    return "\n".join(lines) + "\n"


def table(rows) -> str:
    lines = ["| method | part | seekers | recall@5 | MRR | junk@3 |", "|---|---|---:|---:|---:|---:|"]
    for method, results in rows:
        for part in quality.PARTS:
            r = results[part]
            lines.append(f"| {method} | {part} | {r['seekers']} | {r['recall@5']:.3f} | {r['mrr']:.3f} | "
                         f"{r['junk@3']} |")
    return "\n".join(lines)


def show(results) -> None:
    """Print (label, part, result) rows as they come."""
    for label, part, result in results:
        print(f"{part}, {label}: recall@5 {result['recall@5']:.3f} MRR {result['mrr']:.3f} junk@3 {result['junk@3']}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fit", action="store_true", help="search calibration and word weight on the tuning part")
    parser.add_argument("--weights", action="store_true",
                        help="fit the parts' weights and try bonus gates on the tuning part (out of fold)")
    parser.add_argument("--variants", action="store_true",
                        help="try other forms of the semantic similarity on the tuning part")
    parser.add_argument("--fit-bridge", action="store_true",
                        help="search the term bridge's calibration on the tuning part")
    parser.add_argument("--more-phrasings", action="store_true",
                        help="the term bridge with a second, colloquial set of lines (fitted on the tuning part)")
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args(argv)
    qs = quality.load()
    texts = texts_of(qs)
    embedder = Embedder()
    background = embedder.background
    vectors, per_second = embed_all(embedder, texts)
    calibration, word, weights = CALIBRATION, None, MODEL_WEIGHTS
    bridge = embedder.bridge
    if args.fit_bridge:
        chosen, tuned = fit_bridge(qs, vectors, texts, background, bridge)
        print(f"bridge fitted on tuning: {chosen} -> {tuned}")
        bridge = TermBridge(bridge.vectors, bridge.owners, chosen, labels=bridge.labels)
    if args.fit:
        calibration, word, weights, tuned = fit(qs, vectors, texts, background)
        print(f"fitted on tuning: {calibration} word_weight={word} model weights={weights} -> {tuned}")
    experiments = []
    if args.weights:
        space = Space(calibration, background, weights)
        for kind in (NEED, OFFER):
            space.add_vectors(kind, texts[kind], vectors[kind])
        engine = Engine(semantic=space, word_weight=word)
        engine.load(qs.profiles.values())
        experiments = weight_experiments(qs, engine)
        show([(label, "tuning", result) for label, result in experiments])
    variants = []
    if args.variants:
        variants = variant_experiments(qs, embedder, texts, vectors, background)
        show(variants)
    more = []
    if args.more_phrasings:
        more = more_phrasings_experiment(qs, embedder, texts, vectors, background)
        show(more)
    rows = [
        ("hybrid", both_parts(qs, rank_engine(qs, vectors, texts, calibration, word, background, weights, bridge))),
        ("hybrid without the term bridge (until 2026-12-07)",
         both_parts(qs, rank_engine(qs, vectors, texts, calibration, word, background, weights))),
        ("lexical (model unavailable)", both_parts(qs, rank_engine(qs))),
        ("char-n-gram TF-IDF", both_parts(qs, rank_pairwise(qs, tfidf_similarity(texts)))),
        ("embeddings alone (USE, normalised similarity)",
         both_parts(qs, rank_pairwise(qs, embedding_similarity(texts, vectors, background)))),
        ("embeddings alone (USE, raw cosine)",
         both_parts(qs, rank_pairwise(qs, embedding_similarity(texts, vectors, part=0)))),
    ]
    report = table(rows)
    print(report)
    for method, results in rows:  # the tuning part only: the test part is never looked at seeker by seeker
        tuning = results["tuning"]
        print(f"{method} tuning: missed {tuning['missed']} junk {tuning['junk']}")
    print(f"{len(texts[NEED]) + len(texts[OFFER])} distinct texts embedded at {per_second:.0f} texts/s")
    if not args.no_report and not args.fit and not args.fit_bridge:
        REPORT.parent.mkdir(parents=True, exist_ok=True)
        REPORT.write_text(
            "# Matching quality\n\nGenerated by `matching-service/bench/quality.py` on the quality set in "
            f"`matching-service/quality/` ({len(qs.profiles)} members; {len(qs.expected['tuning'])} seekers in the "
            f"tuning part, {len(qs.expected['test'])} in the test part), all methods in the same run.\n"
            f"Model: {embedder.name}. Calibration of the normalised similarity: threshold "
            f"{calibration.threshold}, full strength at {calibration.full}, cap {calibration.cap}; shared-word weight "
            f"with the models {word if word is not None else 'default'}.\n\n"
            + report + "\n" + experiments_section(experiments) + variants_section(variants)
            + variants_section(more, "The term bridge with a second, colloquial set of lines (`--more-phrasings`; "
                               "fitted on the tuning part, the choice measured once on the test part)"),
            encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
