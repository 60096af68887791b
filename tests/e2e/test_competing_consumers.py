"""Competing consumers: two instances of matching-service and two of
notifications-service run side by side, each pair on one PostgreSQL
database and one queue. Members registered over HTTP have the same effects
as with one instance of each, not doubled, and both instances of each pair
did part of the work. Counted, not eyeballed."""
import json
import re
import threading
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from kombu import Connection
from sqlalchemy import text

from verbund.database import make_engine
from verbund.testing import ServiceProcess, wait_for

pytestmark = pytest.mark.integration

MEMBERS = 24
# What notifications-service consumes of what this test sets off.
NOTIFIED_TYPES = ("member.registered", "match.suggested", "project.proposed", "project.closed")


def registration(number: int) -> dict:
    """A synthetic member (matching.synthetic) as the body of POST /members; every one consents to be
    suggested, none to e-mail (no SMTP server here)."""
    from matching.synthetic import ProfileFactory

    profile = ProfileFactory(seed=1000 + number).profile(sector=("automotive", "it", "logistics")[number % 3])
    items = lambda entries: [{"term": e["term"]} if e["term"] else {"label": e["label"]} for e in entries]  # noqa: E731
    return {"name": f"Wettbewerb {number:02d} GmbH", "sector": profile["sector"],
            "associations": profile["associations"], "region": profile["region"],
            "size": {"employees": profile["size"]["employees"]}, "contact": profile["contact"],
            "offers": items(profile["offers"]), "needs": items(profile["needs"]), "topics": profile["topics"],
            "consent": {"suggest_as_partner": True, "email": False}}


def consumed(process: ServiceProcess) -> Counter:
    """verbund_messages_consumed_total of one instance, by event type."""
    body = requests.get(f"{process.url}/metrics", timeout=10).text
    counts = Counter()
    for type_, value in re.findall(r'^verbund_messages_consumed_total\{[^}]*type="([^"]+)"[^}]*\} (\S+)$', body,
                                   re.MULTILINE):
        counts[type_] += int(float(value))
    return counts


def start_together(*processes: ServiceProcess) -> None:
    errors = []

    def start(process):
        try:
            process.start(timeout=90)
        except Exception as exc:  # reported below, with the others' outcome
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(p,)) for p in processes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors


def batches(process: ServiceProcess) -> tuple[int, int]:
    """(batches, events in them) an instance consumed in batches (verbund_consumed_batch_size)."""
    body = requests.get(f"{process.url}/metrics", timeout=10).text
    count = re.search(r'^verbund_consumed_batch_size_count\{[^}]*\} (\S+)$', body, re.MULTILINE)
    total = re.search(r'^verbund_consumed_batch_size_sum\{[^}]*\} (\S+)$', body, re.MULTILINE)
    return int(float(count.group(1))) if count else 0, int(float(total.group(1))) if total else 0


@pytest.fixture(params=[1, 50], ids=["one-by-one", "batches"])
def platform(request, fresh_amqp_uri, postgres, tmp_path):
    urls = {service: postgres.create() for service in ("members", "matching", "notifications")}
    env = {"RETRY_DELAYS_MS": "200,1000", "CONSUME_BATCH_SIZE": str(request.param)}
    members = ServiceProcess("members", fresh_amqp_uri, urls["members"], tmp_path, env)
    # With the embedding model: each instance embeds the texts of the events it takes and reads the
    # vectors the other one stored for the members it catches up with.
    matching = [ServiceProcess("matching", fresh_amqp_uri, urls["matching"], tmp_path, env) for _ in range(2)]
    notifications = [ServiceProcess("notifications", fresh_amqp_uri, urls["notifications"], tmp_path, env)
                     for _ in range(2)]
    everyone = [members, *matching, *notifications]
    try:
        # The first instance of each pair migrates its database; the second starts on the migrated one.
        start_together(members, matching[0], notifications[0])
        start_together(matching[1], notifications[1])
        yield members, matching, notifications, urls
    finally:
        for process in everyone:
            process.stop()


def consumers_batch_size(process: ServiceProcess) -> int:
    return int(process.env["CONSUME_BATCH_SIZE"])


def consumers(amqp_uri: str, queue: str) -> int:
    with Connection(amqp_uri) as connection:
        return connection.channel().queue_declare(queue, passive=True).consumer_count


def queued(amqp_uri: str, queue: str) -> int:
    with Connection(amqp_uri) as connection:
        return connection.channel().queue_declare(queue, passive=True).message_count


def test_two_instances_each_share_the_work_and_nothing_happens_twice(platform, fresh_amqp_uri, event_tap):
    members, matching, notifications, urls = platform
    for queue in ("matching.events", "notifications.events"):  # both instances of each pair listen
        wait_for(lambda queue=queue: consumers(fresh_amqp_uri, queue) == 2, timeout=30,
                 message=f"two consumers on {queue}")
    tap = event_tap("#", uri=fresh_amqp_uri)
    databases = {service: make_engine(url) for service, url in urls.items()}

    def rows(service: str, sql: str, **params) -> list:
        with databases[service].connect() as conn:
            return conn.execute(text(sql), params).all()

    with ThreadPoolExecutor(6) as pool:  # concurrent, so that messages wait for both consumers of a queue
        answers = list(pool.map(lambda n: requests.post(f"{members.url}/members", json=registration(n),
                                                        timeout=30), range(MEMBERS)))
    assert [a.status_code for a in answers] == [201] * MEMBERS, [a.text for a in answers if a.status_code != 201]
    member_ids = {a.json()["id"] for a in answers}

    # Everything published has been consumed: every event notifications-service hears of is in its
    # inbox table, the queues are empty and no outbox holds anything back.
    def settled():
        events = tap.drain()
        notified = {e["id"] for e in events if e["type"] in NOTIFIED_TYPES}
        inbox = {row[0] for row in rows("notifications", "SELECT event_id FROM inbox")}
        matched = rows("matching", "SELECT count(*) FROM inbox")[0][0]
        pending = sum(rows(s, "SELECT count(*) FROM outbox WHERE published_at IS NULL")[0][0] for s in databases)
        # Other members' lists wait for matching's ANNOUNCE_WINDOW_SECONDS; flushed by either instance.
        pending += rows("matching", "SELECT count(*) FROM pending_announcements")[0][0]
        return (matched == MEMBERS and notified and inbox == notified and not pending
                and not any(queued(fresh_amqp_uri, f"{s}.events") for s in ("matching", "notifications")))

    # Each event embeds its new texts first (a few hundred ms on a busy 2-core machine).
    wait_for(settled, timeout=240, interval=0.5, message="every event to be consumed")
    events = tap.drain()
    ids = [e["id"] for e in events]
    assert len(ids) == len(set(ids)), "an event was published twice (both relays sent the same outbox row)"
    by_type = defaultdict(list)
    for event in events:
        by_type[event["type"]].append(event)

    # members: one member.registered per member.
    assert sorted(e["subject"] for e in by_type["member.registered"]) == sorted(member_ids)

    # matching: one read-model copy per member, each registration consumed once in effect.
    assert sorted(r[0] for r in rows("matching", "SELECT id FROM member_profiles")) == sorted(member_ids)
    assert rows("matching", "SELECT type, count(*) FROM inbox GROUP BY type") == [("member.registered", MEMBERS)]
    # A list is announced only when it changed: a registration handled twice would announce a list again.
    suggested = by_type["match.suggested"]
    assert suggested, "the members were suggested to each other"
    last_list = {}
    for event in suggested:
        member_id, suggestions = event["data"]["member_id"], event["data"]["suggestions"]
        assert last_list.get(member_id) != suggestions, f"the same list announced twice to {member_id}"
        last_list[member_id] = suggestions
    stored = {m: json.loads(s) if isinstance(s, str) else s
              for m, s in rows("matching", "SELECT member_id, suggestions FROM suggestion_sets")}
    assert {m: s for m, s in stored.items() if m in last_list} == last_list  # the last announced is the one kept
    assert all(s == [] for m, s in stored.items() if m not in last_list)  # an empty first list is not news
    # The lists are those one engine with every member computes, with the same semantic links: each
    # instance caught up with what the other one changed (the profiles and their texts' vectors)
    # before changing anything itself.
    from matching.engine import Engine
    from matching.semantic import MODEL, NEED, OFFER, load_embedder
    from matching.vectors import decode

    for process in matching:
        assert requests.get(f"{process.url}/ready", timeout=10).json()["checks"]["semantic"] == "ok"
    embedder, status = load_embedder()
    assert embedder is not None, status
    space = embedder.space()
    stored_vectors = rows("matching", "SELECT kind, text, vector FROM text_vectors WHERE model = :model", model=MODEL)
    for kind, text_, vector in stored_vectors:
        space.add_vectors(kind, [text_], decode([bytes(vector)]))  # as the service reads them (float16)
    profiles = [json.loads(p) if isinstance(p, str) else p
                for (p,) in rows("matching", "SELECT profile FROM member_profiles ORDER BY seq")]
    texts = {(k, item["label"]) for p in profiles for k, items in ((NEED, p["needs"]), (OFFER, p["offers"]))
             for item in items}
    assert texts <= {(kind, text_) for kind, text_, _ in stored_vectors}  # every text embedded once and stored
    engine = Engine(semantic=space)
    engine.load(profiles)
    assert space.link_count > 0, "the texts are linked semantically"
    assert {m: [partner for partner, _ in engine.suggestions(m)] for m in member_ids} == \
        {m: [s["partner_id"] for s in stored.get(m, [])] for m in member_ids}
    # No team proposed twice.
    teams = rows("matching", "SELECT member_key, count(*) FROM proposals GROUP BY member_key")
    assert all(count == 1 for _, count in teams)
    assert len(teams) == len(by_type["project.proposed"])

    # notifications: one recipient per member, each event consumed once, and inbox entries for the
    # members the match.suggested name.
    assert sorted(r[0] for r in rows("notifications", "SELECT member_id FROM recipients")) == sorted(member_ids)
    inbox = Counter(r[0] for r in rows("notifications", "SELECT event_id FROM inbox"))
    assert set(inbox) == {e["id"] for e in events if e["type"] in NOTIFIED_TYPES}
    assert set(inbox.values()) == {1}
    entries = rows("notifications", "SELECT source_event_id, member_id FROM notifications "
                                    "WHERE source_type = 'match.suggested'")
    # Lists announced within the coalescing window update the member's unread entry (notifications'
    # policy): every member told has an entry, each entry comes from one of that member's events, none twice.
    announced = {(e["id"], e["data"]["member_id"]) for e in suggested}
    assert set(entries) <= announced and len(entries) == len(set(entries))
    assert {member for _, member in entries} == {member for _, member in announced}
    project_entries = rows("notifications", "SELECT count(*) FROM notifications WHERE source_type = 'project.proposed'")
    assert project_entries[0][0] == sum(len(e["data"]["project"]["members"]) for e in by_type["project.proposed"])

    # Both instances of each pair did part of the work, and together they handled each message once.
    matching_counts = [consumed(p)["member.registered"] for p in matching]
    assert all(count > 0 for count in matching_counts), f"member.registered per matching instance: {matching_counts}"
    assert sum(matching_counts) >= MEMBERS
    notified_counts = [sum(consumed(p)[t] for t in NOTIFIED_TYPES) for p in notifications]
    assert all(count > 0 for count in notified_counts), f"events per notifications instance: {notified_counts}"
    assert sum(notified_counts) >= len(inbox)
    if consumers_batch_size(notifications[0]) > 1:  # the events reached notifications in batches
        taken = [batches(p) for p in notifications]
        assert sum(total for _, total in taken) >= sum(notified_counts)
        assert sum(count for count, _ in taken) < sum(total for _, total in taken), f"(batches, events): {taken}"
    print(f"\nmember.registered per matching instance: {matching_counts}; events per notifications instance: "
          f"{notified_counts}; match.suggested: {len(suggested)}, project.proposed: {len(by_type['project.proposed'])}")
    for engine in databases.values():
        engine.dispose()
