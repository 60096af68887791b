"""Micro-benchmark: what one consumed ``member.registered`` costs matching-service in CPU.

A migrated SQLite store with ``--members`` synthetic members in the read model, the engine built
from it and every suggestion list stored (as after a rebuild); then ``--events`` new synthetic
members' ``member.registered`` events are applied the way the service applies them, in batches
of ``--batch`` (``Store.handle_batch`` → ``services.on_member_events``: one transaction, one inbox
claim and one outbox statement per batch, the fan-out coalesced; ``--batch 1`` is the service
consuming one event at a time). The outbox is not relayed to a broker (that is the kit's relay,
measured elsewhere).

With ``--semantic`` the engine runs with the embedding model, as the service does: the network's
texts are embedded before the timed part, the newcomers write 30% of their offers and needs in
their own words (``--written``), and each batch's new texts are embedded first, together, in a unit
of work of their own (``MatchingEngine.embed``); that CPU is counted and also reported apart.

With ``--window S`` (seconds; 0, the default, announces every changed list at once) other members'
changed lists, and proposals around them, wait S seconds as the service's ``ANNOUNCE_WINDOW_SECONDS``
makes them: the events arrive on a simulated clock at ``--rate`` per second (an import: as fast as
matching consumes them), the timer's flush (``services.flush_pending``) runs every
``min(max(S / 5, 0.5), 5)`` simulated seconds, and after the last event the clock moves on by the
window and what is still pending is flushed; the flushes' CPU is counted with the events' (each
batch carries the flushes that ran after it). With ``--hold H`` as well, full batches (all of an
import's) count as a flow that is behind, and while it lasts other lists wait up to H seconds after
their first change, as the service's ``ANNOUNCE_HOLD_SECONDS`` makes them (``MatchingEngine.held``).

Reports CPU ms per event (``time.process_time`` of the process, all its threads: mean, and
median/p95 over batches per event; first and second half, since proposals pile up as members
register) and the events written per registration, by type.

    .venv/bin/python matching-service/bench/consume.py [--members 10000] [--events 300] [--batch 50]
        [--semantic] [--window 10 --rate 10 [--hold 120]] [--profile 30]

With ``--profile N`` the first N stats lines of a cProfile of the timed events follow (by own
time, then cumulative). Not part of ``make bench``; writes nothing outside a temporary folder.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, insert, select

from matching import semantic, services, vectors
from matching.engine import Engine
from matching.models import MemberProfile
from matching.synthetic import ProfileFactory
from verbund import catalogue, envelope, migrations, outbox
from verbund.database import Store, make_engine


def registered(profile: dict) -> dict:
    return envelope.new_event("member.registered", "/verbund/members", profile["id"], {"profile": profile}, version=1)


def preload(store: Store, engine: Engine, profiles: list[dict]) -> None:
    """The read model as members-service would have filled it, the engine and every stored list."""
    now = envelope.utcnow()
    with store.unit_of_work() as uow:
        uow.session.execute(insert(MemberProfile), [
            {"id": p["id"], "version": p["version"], "seq": seq, "deleted": False,
             "profile": services.minimal(p), "updated_at": now} for seq, p in enumerate(profiles, start=1)])
    with store.unit_of_work() as uow:
        services.load_engine(uow, engine)
        services.refresh_all(uow, engine)
    with store.engine.begin() as conn:  # start the timed part with an empty outbox
        conn.execute(outbox.outbox_table.delete())


def outbox_types(store: Store) -> Counter:
    with store.engine.connect() as conn:
        return Counter(dict(conn.execute(select(outbox.outbox_table.c.type, func.count())
                                         .group_by(outbox.outbox_table.c.type)).all()))


def percentile(values: list[float], share: float) -> float:
    return sorted(values)[max(0, int(round(share * len(values))) - 1)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=10_000, help="members in the read model before")
    parser.add_argument("--events", type=int, default=300, help="member.registered events timed")
    parser.add_argument("--warm", type=int, default=20, help="events applied before timing (not counted)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch", type=int, default=1, help="events per batch (1: one at a time)")
    parser.add_argument("--semantic", action="store_true", help="with the embedding model, as the service runs")
    parser.add_argument("--written", type=float, default=0.3,
                        help="with --semantic: share of the newcomers' texts written in their own words")
    parser.add_argument("--window", type=float, default=0.0,
                        help="seconds other members' lists wait (ANNOUNCE_WINDOW_SECONDS; 0: at once)")
    parser.add_argument("--hold", type=float, default=0.0,
                        help="ANNOUNCE_HOLD_SECONDS: while batches come full, other lists wait up to this long")
    parser.add_argument("--rate", type=float, default=10.0,
                        help="with --window: member events arriving per simulated second")
    parser.add_argument("--profile", type=int, default=0, help="print this many cProfile lines")
    parser.add_argument("--dump", help="write the cProfile stats to this file (for pstats or snakeviz)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line too")
    args = parser.parse_args()

    factory = ProfileFactory(seed=args.seed)
    profiles = factory.profiles(args.members)
    newcomers = ProfileFactory(seed=args.seed + 1, written_share=args.written if args.semantic else 0.0)
    warm = [registered(p) for p in newcomers.profiles(args.warm)]
    events = [registered(p) for p in newcomers.profiles(args.events)]
    batches = [events[start:start + args.batch] for start in range(0, len(events), args.batch)]

    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'matching.db'}"
        migrations.upgrade("matching", url)
        db = make_engine(url)
        store = Store(db, relay=None, after_commit=lambda: None, source=catalogue.source_of("matching"))
        embedder = space = None
        if args.semantic:
            embedder, status = semantic.load_embedder()
            if embedder is None:
                print(f"no embedding model: {status}", file=sys.stderr)
                return 1
            space = embedder.space()
        engine = Engine(semantic=space)
        engine.warm_up()
        started = time.perf_counter()
        if space is not None:
            with store.unit_of_work() as uow:
                vectors.ensure(uow.session, space, embedder, semantic.MODEL, profiles)
        preload(store, engine, profiles)
        print(f"preloaded {args.members:,} members in {time.perf_counter() - started:.1f} s", file=sys.stderr)

        def embed(chunk) -> None:
            """The batch's new texts, before the use case (the service: outside the engine's lock)."""
            if space is not None:
                with store.unit_of_work() as uow:
                    vectors.ensure(uow.session, space, embedder, semantic.MODEL,
                                   [e["data"]["profile"] for e in chunk])

        # The simulated clock: the events arrive at --rate per second, the timer looks every `check` s.
        clock = {"now": envelope.utcnow()}
        store.clock = lambda: clock["now"]
        check = min(max(args.window / 5, 0.5), 5.0)
        timer = {"next": clock["now"] + timedelta(seconds=check), "flushes": 0, "flowing_until": clock["now"]}

        def flush() -> None:
            """What the service's timer does: rounds of due lists until a round finds fewer than a full
            share; while full batches keep coming, only the lists held --hold seconds (MatchingEngine.held)."""
            timer["flushes"] += 1
            held = max(0.0, args.hold - args.window) if clock["now"] < timer["flowing_until"] else 0.0
            while True:
                with store.unit_of_work() as uow:
                    done = services.flush_pending(uow, engine, held=held)
                if done.taken < services.PENDING_PER_ROUND:
                    return

        def apply(chunk) -> None:
            if args.window > 0:
                clock["now"] += timedelta(seconds=len(chunk) / args.rate)
                if args.batch > 1 and len(chunk) == args.batch:  # a full batch: the consumer is behind
                    timer["flowing_until"] = clock["now"] + timedelta(seconds=args.window)
            store.handle_batch(chunk, lambda uow, fresh: services.on_member_events(uow, engine, fresh,
                                                                                    window=args.window))
            while args.window > 0 and clock["now"] >= timer["next"]:
                flush()
                timer["next"] += timedelta(seconds=check)

        for start in range(0, len(warm), args.batch):
            embed(warm[start:start + args.batch])
            apply(warm[start:start + args.batch])
        if args.window > 0:  # the warm-up's held-back lists are not the timed events' work
            clock["now"] += timedelta(seconds=args.window + check)
            flush()
            timer["next"], timer["flushes"] = clock["now"] + timedelta(seconds=check), 0
        # Proposal searches: every call of propose_around, at once or from a flush.
        searches = {"n": 0}
        search = services.propose_around

        def counted(*a, **k):
            searches["n"] += 1
            return search(*a, **k)
        services.propose_around = counted
        before = outbox_types(store)
        profiler = cProfile.Profile() if args.profile or args.dump else None
        cpu, embedding = [], []  # per event: its batch's CPU over the batch's size
        for chunk in batches:
            if profiler:
                profiler.enable()
            t0 = time.process_time()
            embed(chunk)
            t1 = time.process_time()
            apply(chunk)
            t2 = time.process_time()
            if profiler:
                profiler.disable()
            cpu += [(t2 - t0) * 1000 / len(chunk)] * len(chunk)
            embedding += [(t1 - t0) * 1000 / len(chunk)] * len(chunk)
        if args.window > 0:  # the lists still pending after the last event: their window passes
            t0 = time.process_time()
            clock["now"] += timedelta(seconds=args.window + check)
            flush()
            tail = (time.process_time() - t0) * 1000
            cpu[-1] += tail  # counted in the mean, as the service spends it
        written = outbox_types(store) - before
        db.dispose()

    half = len(cpu) // 2
    result = {
        "members": args.members, "events": len(cpu), "batch": args.batch, "semantic": args.semantic,
        "window": args.window, "hold": args.hold, "rate": args.rate if args.window > 0 else None,
        "flushes": timer["flushes"],
        "embedding_cpu_ms_mean": statistics.fmean(embedding),
        "suggested_per_registration": written.get("match.suggested", 0) / len(cpu),
        "cpu_ms_mean": statistics.fmean(cpu), "cpu_ms_median": statistics.median(cpu),
        "cpu_ms_p95": percentile(cpu, 0.95),
        "cpu_ms_mean_first_half": statistics.fmean(cpu[:half]), "cpu_ms_mean_second_half": statistics.fmean(cpu[half:]),
        "written_per_event": sum(written.values()) / len(cpu),
        "searches_per_event": searches["n"] / len(cpu),
        "written_per_event_by_type": {t: n / len(cpu) for t, n in sorted(written.items())},
        "profiled": bool(profiler),
    }
    print(f"{len(cpu)} member.registered events on {args.members:,} members in batches of {args.batch}"
          + (" with the embedding model" if args.semantic else " (lexical)")
          + (f", other lists held {args.window:g} s (up to {args.hold:g} s while batches come full) at "
             f"{args.rate:g} events/s ({timer['flushes']} flushes)"
             if args.window > 0 else ", every list at once")
          + (" (under cProfile: slower than without)" if profiler else ""))
    print(f"CPU per event: mean {result['cpu_ms_mean']:.1f} ms, median {result['cpu_ms_median']:.1f} ms, "
          f"p95 {result['cpu_ms_p95']:.1f} ms (first half {result['cpu_ms_mean_first_half']:.1f}, "
          f"second half {result['cpu_ms_mean_second_half']:.1f})"
          + (f"; embedding {result['embedding_cpu_ms_mean']:.1f} ms of it" if args.semantic else ""))
    print(f"events written per registration: {result['written_per_event']:.2f} ("
          + ", ".join(f"{t} {n:.2f}" for t, n in result["written_per_event_by_type"].items())
          + f"); proposal searches per registration: {result['searches_per_event']:.2f}")
    if args.dump:
        profiler.dump_stats(args.dump)
    if args.profile:
        for order in ("tottime", "cumulative"):
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(args.profile)
            print(out.getvalue())
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
