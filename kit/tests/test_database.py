"""SQLite under eventlet: waiting for the write lock must not freeze the process."""
import subprocess
import sys
import textwrap

# Runs in its own interpreter so that eventlet's monkey patch stays out of pytest.
SCRIPT = textwrap.dedent("""
    import eventlet
    eventlet.monkey_patch()
    import sys, time
    from sqlalchemy import text
    from verbund.database import make_engine

    engine = make_engine("sqlite:///" + sys.argv[1])
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER)"))
    ticks = []

    def holder():
        with engine.begin() as conn:  # takes the write lock and keeps it for 0.5 s
            conn.execute(text("INSERT INTO t VALUES (1)"))
            eventlet.sleep(0.5)

    def waiter():
        with engine.begin() as conn:  # must wait for the holder, without blocking the hub
            conn.execute(text("INSERT INTO t VALUES (2)"))

    def ticker():
        deadline = time.monotonic() + 0.6
        while time.monotonic() < deadline:
            ticks.append(time.monotonic())
            eventlet.sleep(0.01)

    threads = [eventlet.spawn(holder)]
    eventlet.sleep(0.05)
    threads += [eventlet.spawn(waiter), eventlet.spawn(ticker)]
    started = time.monotonic()
    for thread in threads:
        thread.wait()
    with engine.connect() as conn:
        rows = [n for (n,) in conn.execute(text("SELECT n FROM t ORDER BY rowid"))]
    print(len(ticks), round(time.monotonic() - started, 2), rows)
""")


def test_a_green_thread_waiting_for_the_sqlite_write_lock_lets_the_others_run(tmp_path):
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "lock.db")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    ticks, seconds, rows = result.stdout.split(" ", 2)
    assert rows.strip() == "[1, 2]"  # the waiter got the lock after the holder, and nothing failed
    assert float(seconds) < 5  # not SQLite's own busy timeout
    assert int(ticks) >= 20  # the ticker kept running (about 50 ticks in 0.6 s) while the waiter waited
