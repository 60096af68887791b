"""Pair scores for a given set of members (``POST /pair-scores``, meetings-service's "whom to meet"): the
engine's own scores and reasons, other sectors only, best first; no I/O beyond the engine."""
import pytest

from matching.engine import Engine
from matching.pair_scores import PairScoresSchema, pair_scores
from verbund.auth import Principal
from verbund.errors import Forbidden, NotFound


def test_the_others_of_other_sectors_come_scored_with_reasons_best_first(profile):
    engine = Engine()
    supplier = profile(name="Zulieferer", sector="automotive", needs=["traceability-software"])
    fit = profile(name="Trace IT", sector="it", offers=["traceability-software"])
    weak = profile(name="Irgendwas IT", sector="it", offers=["~Webdesign"])
    rival = profile(name="Konkurrent", sector="automotive", offers=["traceability-software"])
    engine.load([supplier, fit, weak, rival])
    body = PairScoresSchema().load({"member_id": supplier["id"],
                                    "others": [weak["id"], rival["id"], fit["id"], "unknown"]})
    result = pair_scores(None, engine, Principal("admin", "admin"), body)
    ids = [item["member_id"] for item in result["items"]]
    assert ids[0] == fit["id"] and rival["id"] not in ids and "unknown" not in ids
    best = result["items"][0]
    assert best["score"] == engine.explain(supplier["id"], fit["id"])["score"]
    assert any(reason["kind"] == "need_met" for reason in best["reasons"])


def test_a_member_sees_only_its_own_scores_and_an_unknown_member_is_a_404(profile):
    engine = Engine()
    a, b = profile(sector="automotive"), profile(sector="it")
    engine.load([a, b])
    with pytest.raises(Forbidden):
        pair_scores(None, engine, Principal("m", "member", member_id=b["id"]), {"member_id": a["id"], "others": []})
    with pytest.raises(NotFound):
        pair_scores(None, engine, Principal("admin", "admin"), {"member_id": "nobody", "others": [a["id"]]})
