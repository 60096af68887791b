"""The staff check's cache: an "active" answer is trusted at most STAFF_CHECK_TTL_SECONDS."""
from verbund.staff import StatusCache


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_an_answer_is_kept_for_the_ttl_and_asked_again_after_it():
    clock, answers, asked = Clock(), {"s1": True}, []
    cache = StatusCache(ttl=2.0, clock=clock)

    def fetch(staff_id):
        asked.append(staff_id)
        return answers[staff_id]

    assert cache.active("s1", fetch) is True
    answers["s1"] = False  # revoked at members-service
    clock.now += 1.99
    assert cache.active("s1", fetch) is True and asked == ["s1"]  # within the bound: the cached answer
    clock.now += 0.02
    assert cache.active("s1", fetch) is False and asked == ["s1", "s1"]  # past it: asked, refused


def test_a_zero_ttl_asks_every_time():
    asked = []
    cache = StatusCache(ttl=0.0, clock=Clock())
    for _ in range(3):
        cache.active("s1", lambda staff_id: asked.append(staff_id) or True)
    assert len(asked) == 3
