"""Benchmark of sign-in requests (``make bench``; not part of ``make test``): does the answer to
``POST /auth/sign-in-requests`` take longer for a member's contact e-mail than for an unknown
address? (Issue 16: the same answer for both, no timing difference worth measuring.)

Starts members-service as a real process (SQLite, the local RabbitMQ in a throw-away vhost, limits
raised so the run is not refused), registers members, then asks for links for known and unknown
addresses in random order, from distinct client addresses, and compares the latencies (p50, p90, the
difference of the medians, and a Mann-Whitney U test of the two samples). Writes
docs/bench/members.md.

    .venv/bin/python members-service/bench/run.py [--requests 300]
"""
from __future__ import annotations

import argparse
import platform
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import requests

from verbund.testing import ServiceProcess, Vhost

REPORT = Path(__file__).resolve().parents[2] / "docs" / "bench" / "members.md"


def quantile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def mann_whitney_p(a, b) -> float:
    """Two-sided p value of the Mann-Whitney U test (normal approximation; samples of hundreds)."""
    from math import erf, sqrt
    ranked = sorted([(v, 0) for v in a] + [(v, 1) for v in b])
    ranks_a = sum(rank + 1 for rank, (_, group) in enumerate(ranked) if group == 0)
    n1, n2 = len(a), len(b)
    u = ranks_a - n1 * (n1 + 1) / 2
    mean, sd = n1 * n2 / 2, sqrt(n1 * n2 * (n1 + n2 + 1) / 12)
    z = abs(u - mean) / sd
    return 2 * (1 - 0.5 * (1 + erf(z / sqrt(2))))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="requests of each kind")
    args = parser.parse_args()
    vhost = Vhost()
    workdir = Path(tempfile.mkdtemp(prefix="members-bench-"))
    process = ServiceProcess("members", vhost.uri, f"sqlite:///{workdir / 'members.db'}", workdir, {
        "SIGN_IN_LIMIT_PER_ADDRESS": "1000000", "SIGN_IN_LIMIT_PER_CLIENT": "1000000"})
    process.start()
    try:
        url = process.url
        known = []
        for n in range(20):
            email = f"bench-{n}-{uuid.uuid4().hex[:6]}@example.org"
            response = requests.post(f"{url}/members", timeout=30, json={
                "name": f"Benchfirma {n} {uuid.uuid4().hex[:6]} GmbH", "sector": "it",
                "region": {"state": "SN", "postcode": "01067", "city": "Dresden"}, "size": {"employees": 5},
                "contact": {"name": "Bench", "email": email, "language": "de"}})
            assert response.status_code == 201, response.text
            known.append(email)
        session = requests.Session()
        timings = {"known": [], "unknown": []}
        # In random order: the link of a known address is made and mailed after its answer, so its cost
        # lands in whichever request follows, known or not.
        kinds = ["known", "unknown"] * (args.requests + 10)
        random.Random(16).shuffle(kinds)
        for i, kind in enumerate(kinds):
            email = known[i % len(known)] if kind == "known" else f"nobody-{uuid.uuid4().hex[:8]}@example.org"
            started = time.perf_counter()
            response = session.post(f"{url}/auth/sign-in-requests", json={"email": email},
                                    headers={"X-Forwarded-For": f"198.51.100.{i % 250}"}, timeout=30)
            elapsed = (time.perf_counter() - started) * 1000
            assert response.status_code == 202, response.text
            if i >= 20:  # the first ones warm the process up
                timings[kind].append(elapsed)
    finally:
        process.stop()
        vhost.delete()
    rows = {kind: (statistics.median(v), quantile(v, 0.9), statistics.mean(v)) for kind, v in timings.items()}
    difference = rows["known"][0] - rows["unknown"][0]
    p = mann_whitney_p(timings["known"], timings["unknown"])
    lines = [
        "# members-service: sign-in request latency, known vs. unknown address",
        "",
        f"`members-service/bench/run.py`, {args.requests} requests of each kind in random order against a real "
        f"process (SQLite, RabbitMQ), {platform.machine()} {platform.python_version()}, a shared 2-core machine.",
        "",
        "| address | p50 ms | p90 ms | mean ms |",
        "|---|---|---|---|",
        *[f"| {kind} | {p50:.2f} | {p90:.2f} | {mean:.2f} |" for kind, (p50, p90, mean) in rows.items()],
        "",
        f"Difference of the medians (known - unknown): **{difference:+.2f} ms**; Mann-Whitney U test p = {p:.3f} "
        "(p < 0.05 would mean the two can be told apart).",
        "",
    ]
    REPORT.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
