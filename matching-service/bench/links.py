"""Linking need and offer texts at 100k members: exact, the engine's clusters (``semantic.Partition``)
and approximate-nearest-neighbour libraries, on the recall of the exact links and on time.

The rebuild links every offer text to its ``MAX_LINKS`` strongest need texts above the threshold
(normalised similarity, ``semantic.Space``). The similarity is an inner product of augmented vectors,
[x, h_j·x, 1]·[h_i·y, y, −g_i] (minus g_j, the query's own), so a maximum-inner-product index over the
needs finds exactly the links an exhaustive search finds, given enough candidates. Compared on a
sample of offers against all needs of the synthetic network (``bench/run.py``'s composed vectors):

* exact: blocked matrix products over every need (what the engine does below ``APPROXIMATE_FROM``);
* the engine's clusters: about sqrt(n) spherical k-means clusters of the needs, each offer compared
  with the needs of its ``PROBES`` nearest clusters (products per cluster, one BLAS thread each);
* usearch (HNSW, inner product, float16) and faiss-cpu (IVF-Flat, inner product), if installed
  (``pip install usearch faiss-cpu``; neither is a dependency of the service).

    python matching-service/bench/links.py [--size 100000] [--queries 4000] [--probes 8,12,16,24]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))


def vectors_of(size: int):
    import run

    from matching.semantic import NEED, OFFER, Embedder
    from matching.synthetic import ProfileFactory
    from matching.vectors import texts_of

    factory = ProfileFactory(seed=1, written_share=0.3)
    embedder = Embedder()
    stored, _, _ = run.embed_texts(embedder, sorted(texts_of(factory.profiles(size))), factory.written)
    return embedder.background, np.concatenate(stored[NEED][1]), np.concatenate(stored[OFFER][1])


def main() -> int:
    from matching.semantic import MAX_LINKS, NEED, OFFER, Space

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=4000)
    parser.add_argument("--probes", default="8,12,16,24")
    args = parser.parse_args()
    background, needs, offers = vectors_of(args.size)
    need_texts = [f"n{i}" for i in range(len(needs))]
    sample = np.sort(np.random.default_rng(1).choice(len(offers), min(args.queries, len(offers)), replace=False))
    offer_texts = [f"o{i}" for i in sample]
    print(f"{len(needs):,} needs, {len(offers):,} offers, {len(sample):,} offers sampled; "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)

    def space(approximate_from: int, probes: int) -> Space:
        made = Space(background=background)
        made.APPROXIMATE_FROM, made.PROBES = approximate_from, probes
        made.add_vectors(NEED, need_texts, needs)
        made.add_vectors(OFFER, offer_texts, offers[sample])
        made.link_all(NEED, need_texts)
        return made

    def report(name: str, build: float, search: float, found: list[set[int]]) -> None:
        hits = sum(len(a & b) for a, b in zip(found, exact, strict=True))
        print(f"| {name} | {build:.1f} s | {search / len(sample) * len(offers):.0f} s "
              f"| {hits / total:.1%} |", flush=True)

    exhaustive = space(10**9, 0)
    started = time.perf_counter()
    exhaustive.link_all(OFFER, offer_texts)
    exact_s = time.perf_counter() - started
    exact = [set(exhaustive.link_arrays(OFFER, i)[0].tolist()) for i in range(len(sample))]
    total = sum(map(len, exact))
    print("| method | made in | linking all offers (extrapolated) | exact links found |\n|---|---:|---:|---:|")
    report("exact (every pair)", 0.0, exact_s, exact)
    for probes in (int(p) for p in args.probes.split(",")):
        clustered = space(0, probes)
        started = time.perf_counter()
        clustered.prepare()
        build = time.perf_counter() - started
        started = time.perf_counter()
        clustered.link_all(OFFER, offer_texts)
        search = time.perf_counter() - started
        report(f"clusters, {probes} probed of {len(clustered._partition[NEED].centres)}", build, search,
               [set(clustered.link_arrays(OFFER, i)[0].tolist()) for i in range(len(sample))])

    h_n, g_n = exhaustive._h[NEED][:len(needs)], exhaustive._g[NEED][:len(needs)]
    h_o, g_o = exhaustive._scales(OFFER, offers[sample])
    data = np.hstack([needs * h_n[:, None], needs, -g_n[:, None]]).astype(np.float32)
    queries = np.hstack([offers[sample], offers[sample] * h_o[:, None], np.ones((len(sample), 1), np.float32)])
    threshold = exhaustive.calibration.threshold

    def kept(ids, scores) -> list[set[int]]:
        found = []
        for row_ids, row_scores, g in zip(ids, scores, g_o, strict=True):
            row_scores = row_scores - g
            ok = (row_ids >= 0) & (row_scores >= threshold)
            found.append(set(row_ids[ok][np.argsort(-row_scores[ok], kind="stable")[:MAX_LINKS]].tolist()))
        return found

    try:
        from usearch.index import Index as HNSW

        started = time.perf_counter()
        index = HNSW(ndim=data.shape[1], metric="ip", dtype="f16", connectivity=16, expansion_add=64)
        index.add(np.arange(len(data)), data, threads=os.cpu_count())
        build = time.perf_counter() - started
        for expansion, count in ((64, 50), (128, 100)):
            index.expansion_search = expansion
            started = time.perf_counter()
            matches = index.search(queries, count, threads=os.cpu_count())
            search = time.perf_counter() - started
            report(f"usearch HNSW f16, M 16, ef {expansion}, {count} candidates", build, search,
                   kept(matches.keys.astype(np.int64), 1 - matches.distances))
    except ImportError:
        print("usearch not installed")
    try:
        import faiss

        lists = int(4 * np.sqrt(len(data)))
        started = time.perf_counter()
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(data.shape[1]), data.shape[1], lists, faiss.METRIC_INNER_PRODUCT)
        ivf.train(data)
        ivf.add(data)
        build = time.perf_counter() - started
        for probes in (8, 16, 32):
            ivf.nprobe = probes
            started = time.perf_counter()
            scores, ids = ivf.search(queries, MAX_LINKS)
            report(f"faiss IVF-Flat, {probes} probed of {lists}", build, time.perf_counter() - started,
                   kept(ids, scores))
    except ImportError:
        print("faiss not installed")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
