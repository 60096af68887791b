"""Start-up retries (loading the engine, rebuilding from members-service) back off exponentially."""
from matching import dependencies


def test_a_failing_start_up_step_is_retried_with_doubling_waits_until_it_succeeds(monkeypatch):
    monkeypatch.setattr(dependencies, "BACKOFF_FIRST", 1.0)
    monkeypatch.setattr(dependencies, "BACKOFF_MAX", 4.0)
    waits, calls = [], []
    monkeypatch.setattr(dependencies.eventlet, "sleep", waits.append)  # record instead of waiting

    def attempt():
        calls.append(1)
        if len(calls) < 5:
            raise ConnectionError("members-service did not answer")
        return "loaded"

    assert dependencies.retry_with_backoff("loading", attempt) == "loaded"
    assert len(calls) == 5
    assert waits == [1.0, 2.0, 4.0, 4.0]  # doubling, capped at BACKOFF_MAX
