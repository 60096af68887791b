"""GET /stats/matching's figures on a known seeded read model (exact numbers), per association and
for the cooperation, on SQLite and PostgreSQL (the query filters JSON profiles and team rows)."""
from datetime import UTC, datetime

import pytest

from matching import queries
from matching.models import MemberProfile, Proposal, ProposalMember, SuggestionSet
from verbund.testing import migrated_store

pytestmark = pytest.mark.integration

NOW = datetime(2026, 5, 1, tzinfo=UTC)
ASSOCIATIONS = {"a": ["automotive-cluster"], "b": ["it-cluster"], "c": ["logistics-network", "it-cluster"],
                "d": ["automotive-cluster"]}
# (id, status, closed_reason, team)
PROPOSALS = [("p1", "proposed", None, "ab"), ("p2", "formed", None, "bc"), ("p3", "closed", "declined", "ac"),
             ("p4", "closed", "superseded", "ad"), ("p5", "closed", "declined", "cd")]


@pytest.fixture
def seeded(database_url, amqp_uri):
    with migrated_store("matching", database_url, amqp_uri) as store:
        with store.unit_of_work() as uow:
            for seq, (member, associations) in enumerate(ASSOCIATIONS.items(), 1):
                uow.session.add(MemberProfile(id=member, version=1, seq=seq, deleted=False, updated_at=NOW,
                                              profile={"id": member, "associations": associations}))
            uow.session.add(MemberProfile(id="gone", version=2, seq=9, deleted=True, profile=None, updated_at=NOW))
            for member, partners in (("a", ["b", "c"]), ("b", ["a"]), ("c", []), ("d", ["a", "b", "c"])):
                uow.session.add(SuggestionSet(member_id=member, fingerprint="f", updated_at=NOW,
                                              suggestions=[{"member_id": partner} for partner in partners]))
            for proposal_id, status, reason, team in PROPOSALS:
                uow.session.add(Proposal(
                    id=proposal_id, version=1, anchor_id=team[0], title="T", status=status, score=1.0,
                    need_coverage=1.0, explanation=[], member_key=",".join(team), closed_reason=reason,
                    created_at=NOW, updated_at=NOW,
                    members=[ProposalMember(member_id=m, position=i, name=m, sector="it") for i, m in enumerate(team)]))
        yield store


def figures(store, association=None):
    with store.unit_of_work() as uow:
        return queries.stats(uow.session, association)


def test_the_cooperations_figures(seeded):
    assert figures(seeded) == {
        "scope": "cooperation", "suggestions": {"total": 6, "members": 3},
        "proposals": {"total": 5, "proposed": 1, "formed": 1, "closed": 3,
                      "closed_by_reason": {"declined": 2, "superseded": 1}}}


def test_an_associations_figures_count_what_its_members_are_part_of(seeded):
    assert figures(seeded, "automotive-cluster") == {
        "scope": "automotive-cluster", "suggestions": {"total": 5, "members": 2},
        "proposals": {"total": 4, "proposed": 1, "formed": 0, "closed": 3,
                      "closed_by_reason": {"declined": 2, "superseded": 1}}}
    assert figures(seeded, "it-cluster") == {
        "scope": "it-cluster", "suggestions": {"total": 1, "members": 1},
        "proposals": {"total": 4, "proposed": 1, "formed": 1, "closed": 2,
                      "closed_by_reason": {"declined": 2}}}
