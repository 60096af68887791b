"""The rules around the engine, as plain functions."""
from datetime import UTC, datetime, timedelta

import pytest

from matching import domain
from verbund.auth import Principal
from verbund.errors import Forbidden, Unprocessable

ADMIN = Principal("admin", "admin")


def test_an_event_not_newer_than_the_read_model_is_stale():
    assert domain.is_stale(3, 3) and domain.is_stale(3, 2)
    assert not domain.is_stale(3, 4) and not domain.is_stale(None, 1)


def test_only_matching_fields_call_for_new_proposals():
    assert domain.affects_matching(["needs"]) and domain.affects_matching(None)
    assert not domain.affects_matching(["contact", "website"])


def test_the_fingerprint_depends_on_content_not_on_key_order():
    a = [{"partner_id": "x", "score": 0.5, "parts": {"sme": 0.08, "topics": 0.0}}]
    b = [{"parts": {"topics": 0.0, "sme": 0.08}, "score": 0.5, "partner_id": "x"}]
    assert domain.fingerprint(a) == domain.fingerprint(b)
    assert domain.fingerprint(a) != domain.fingerprint([{**a[0], "score": 0.51}])


def test_responses_decide_a_proposal():
    assert domain.decide({"a": "accepted", "b": "pending"}) == domain.Decision("proposed", None)
    assert domain.decide({"a": "accepted", "b": "accepted"}) == domain.Decision("formed", "project.formed")
    assert domain.decide({"a": "accepted", "b": "declined"}) == \
        domain.Decision("closed", "project.closed", "declined")


def test_a_decline_rules_out_the_decliner_with_each_other_member():
    assert domain.declined_pairs("b", ["a", "b", "c"]) == [("a", "b"), ("b", "c")]


def test_who_sees_what():
    member = Principal("m", "member", member_id="m1")
    assert domain.can_see_member(member, "m1") and not domain.can_see_member(member, "m2")
    assert domain.can_see_member(ADMIN, "m2")
    assert domain.can_see_proposal(member, ["m1", "m3"]) and not domain.can_see_proposal(member, ["m2"])
    assert not domain.can_see_proposal(Principal("o", "organizer", association="it-cluster"), ["m1"])


def test_the_no_spam_limits():
    assert not domain.is_busy(domain.MAX_OPEN_INVITATIONS - 1) and domain.is_busy(domain.MAX_OPEN_INVITATIONS)


def test_only_a_team_that_clearly_covers_the_needs_is_proposed_unasked():
    assert domain.clearly_covers(0.6) and domain.clearly_covers(1.0)
    assert not domain.clearly_covers(0.59) and not domain.clearly_covers(0.5)


def test_an_open_proposal_gives_way_only_to_a_much_better_team_and_not_within_days():
    made = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
    week = made + timedelta(days=7)
    # Much better, but too soon: it stands.
    assert not domain.supersedes(1.0, 0.6, made, made + timedelta(days=6, hours=23))
    # After the quiet period: only a clearly better team (25 points of the needs).
    assert domain.supersedes(0.95, 0.7, made, week) and not domain.supersedes(0.94, 0.7, made, week)
    # A team that no longer clearly covers the needs (the anchor changed them) gives way at once,
    # but only to one that does.
    assert domain.supersedes(0.7, 0.3, made, made) and not domain.supersedes(0.55, 0.3, made, made)
    # Times as SQLite gives them back (naive UTC) count the same.
    assert domain.too_soon(made + timedelta(days=1), made.replace(tzinfo=None))
    assert not domain.too_soon(week, made.replace(tzinfo=None)) and not domain.too_soon(made, None)


def test_who_answers_a_proposal():
    member = Principal("m", "member", member_id="a")
    assert domain.answering_member(member, None) == "a" == domain.answering_member(member, "a")
    assert domain.answering_member(ADMIN, "b") == "b"
    with pytest.raises(Forbidden):
        domain.answering_member(member, "b")
    with pytest.raises(Unprocessable):
        domain.answering_member(ADMIN, None)
    with pytest.raises(Forbidden):
        domain.answering_member(Principal("o", "organizer"), "a")
    domain.check_invited(member, "a", {"a", "b"})
    with pytest.raises(Forbidden):
        domain.check_invited(member, "c", {"a", "b"})
    with pytest.raises(Unprocessable):
        domain.check_invited(ADMIN, "c", {"a", "b"})


# --- a proposal in words (matching.wording) ---------------------------------------------------------

def _project(partners: int, covered: int, total: int, **more) -> dict:
    members = [{"member_id": "a", "name": "Zellwerk GmbH", "sector": "automotive"},
               *({"member_id": f"p{n}", "name": f"Partner {n} GmbH", "sector": "it"} for n in range(partners))]
    explanation = [{"kind": "need_covered", "need": f"Bedarf {n}", "member_id": "p0", "offer": "x", "strength": 1.0}
                   for n in range(covered)] + [{"kind": "need_open", "need": f"Offen {n}"}
                                               for n in range(total - covered)]
    return {"members": members, "anchor_id": "a", "explanation": explanation, **more}


@pytest.mark.parametrize(("partners", "covered", "total", "de", "en"), [
    (1, 1, 1, "Partner 0 GmbH (IT) deckt den Bedarf ab.", "Partner 0 GmbH (IT) covers its need."),
    (1, 3, 3, "Partner 0 GmbH (IT) deckt alle 3 Bedarfe ab.", "Partner 0 GmbH (IT) covers all 3 of its needs."),
    (1, 1, 3, "Partner 0 GmbH (IT) deckt 1 von 3 Bedarfen ab.", "Partner 0 GmbH (IT) covers 1 of its 3 needs."),
    (2, 2, 2, "Partner 0 GmbH (IT) und Partner 1 GmbH (IT) decken gemeinsam alle 2 Bedarfe ab.",
     "Partner 0 GmbH (IT) and Partner 1 GmbH (IT) together cover all 2 of its needs."),
])
def test_the_summary_says_how_many_needs_in_correct_german_and_english(partners, covered, total, de, en):
    from matching import wording

    assert wording.summary(_project(partners, covered, total)) == {
        "de": f"Ein Team für Zellwerk GmbH: {de}", "en": f"A team for Zellwerk GmbH: {en}"}


def test_a_proposals_title_reads_in_either_language():
    from matching import wording
    from verbund.vocabulary import load

    vocabulary = load()
    topic = next(iter(vocabulary.topics.values()))
    by_topic = _project(1, 1, 1, title=f"Partnerprojekt: {topic.de}", topic=topic.id)
    assert wording.titles(by_topic) == ({"de": f"Partnerprojekt: {topic.de}", "en": f"Partner project: {topic.en}"},
                                        {"de": topic.de, "en": topic.en})
    # Needs: terms in the reader's words, typed ones as typed; the best covered first, at most three.
    term = next(t for t in vocabulary.competencies.values() if t.de != t.en)
    needs = _project(1, 0, 0, title="Partner project: …", topic=None)
    needs["explanation"] = [
        {"kind": "need_covered", "need": "Gabelstapler-Leasing", "strength": 0.5},
        {"kind": "need_covered", "need": term.en, "need_term": term.id, "strength": 1.0},
        {"kind": "need_open", "need": "Offen"},
        *({"kind": "need_covered", "need": f"Bedarf {n}", "strength": 0.4} for n in range(2))]
    titles, about = wording.titles(needs)
    assert about == {"de": f"{term.de}, Gabelstapler-Leasing, Bedarf 0 und 1 weitere",
                     "en": f"{term.en}, Gabelstapler-Leasing, Bedarf 0 and 1 more"}
    assert titles["de"] == f"Partnerprojekt: {about['de']}"
