"""Whom to meet when matching-service cannot be reached: the other participants unranked, with a notice
in the participant's language (never an error)."""
from meetings import candidates
from verbund.testing import free_port


def test_without_matching_the_others_come_unranked_with_a_notice(monkeypatch):
    monkeypatch.setenv("MATCHING_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    result = candidates.ranked("me", ["b", "a"], "de")
    assert result["ranked"] is False and "nicht verfügbar" in result["notice"]
    assert [item["member_id"] for item in result["items"]] == ["b", "a"]
    assert all(item["score"] is None for item in result["items"])


def test_scored_ones_come_first_and_unscored_ones_after(monkeypatch):
    class Answer:
        def raise_for_status(self):
            pass

        def json(self):
            return {"items": [{"member_id": "c", "score": 0.2, "reasons": []},
                              {"member_id": "a", "score": 0.7, "reasons": [{"kind": "topic"}]}]}

    monkeypatch.setattr(candidates.requests, "post", lambda *args, **kwargs: Answer())
    result = candidates.ranked("me", ["a", "b", "c"])
    assert result["ranked"] is True and [item["member_id"] for item in result["items"]] == ["a", "c", "b"]
