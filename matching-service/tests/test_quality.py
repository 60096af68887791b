"""Matching quality on the hand-made test set (tests/data/quality_set.yaml): do the partners
a cluster manager would introduce show up among a member's first five suggestions?

The floors are what the engine reached when this test was written (README: "Quality");
a change that makes matching worse fails here."""
import pytest

from matching.engine import Engine

K = 5
PRECISION_FLOOR = 0.59   # reached 0.595; 0.605 is the most possible (some members expect fewer than 5)
RECALL_FLOOR = 0.98      # reached 0.987


@pytest.fixture(scope="module")
def ranked(quality):
    profiles, expected = quality
    engine = Engine()
    engine.load(profiles.values())
    key_of = {p["id"]: key for key, p in profiles.items()}
    return {key: [key_of[partner] for partner, _ in engine.suggestions(p["id"])] for key, p in profiles.items()}


def precision_recall(ranked, expected, k=K):
    judged = [key for key, wanted in expected.items() if wanted]
    hits = {key: len(set(ranked[key][:k]) & set(expected[key])) for key in judged}
    precision = sum(hits[key] / k for key in judged) / len(judged)
    recall = sum(hits[key] / len(expected[key]) for key in judged) / len(judged)
    return precision, recall


def test_the_set_is_big_and_mixed_enough(quality):
    profiles, expected = quality
    assert len(profiles) >= 40
    assert {p["sector"] for p in profiles.values()} == {"automotive", "it", "logistics"}
    assert {p["contact"]["language"] for p in profiles.values()} == {"de", "en"}
    assert any(item["term"] is None for p in profiles.values() for item in p["offers"] + p["needs"])


def test_precision_and_recall_at_5_stay_where_they_were(ranked, quality):
    precision, recall = precision_recall(ranked, quality[1])
    print(f"precision@5 = {precision:.3f}, recall@5 = {recall:.3f}")
    assert precision >= PRECISION_FLOOR
    assert recall >= RECALL_FLOOR


def test_suggestions_stay_in_other_sectors_and_respect_consent(ranked, quality):
    profiles, _ = quality
    for key, partners in ranked.items():
        assert "diskret" not in partners  # did not consent to be suggested
        assert all(profiles[p]["sector"] != profiles[key]["sector"] for p in partners)
