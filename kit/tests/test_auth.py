from datetime import timedelta

import pytest

from verbund import auth


def test_a_token_names_its_principal():
    principal = auth.verify(auth.issue("organizer", "olga", association="it-cluster"))
    assert (principal.role, principal.association, principal.subject) == ("organizer", "it-cluster", "olga")


def test_a_member_token_is_bound_to_its_member():
    principal = auth.verify(auth.issue("member", "m", member_id="abc"))
    assert principal.is_member("abc") and not principal.is_member("other")


def test_expired_and_foreign_tokens_are_refused():
    with pytest.raises(auth.InvalidToken):
        auth.verify(auth.issue("admin", "a", ttl=timedelta(seconds=-1)))
    with pytest.raises(auth.InvalidToken):
        auth.verify(auth.issue("admin", "a", secret="another-secret-of-enough-length-0123"))


@pytest.mark.parametrize("role, kwargs", [("root", {}), ("member", {}), ("organizer", {"association": "x"})])
def test_tokens_without_what_their_role_needs_are_not_issued(role, kwargs):
    with pytest.raises(ValueError):
        auth.issue(role, "someone", **kwargs)


def test_header_parsing():
    assert auth.from_header(None) is auth.ANONYMOUS
    with pytest.raises(auth.InvalidToken):
        auth.from_header("Basic dXNlcjpwYXNz")
