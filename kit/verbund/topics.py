"""Integrator scopes over AMQP topic patterns: which binding keys (or webhook event-type patterns,
or event types) a scope covers. Pure functions, used at run time by
the services (members' key rules, notifications' webhook filters) and by ``verbund integrator``.

The rules are AMQP 0-9-1 topic matching as RabbitMQ implements it: words separated by dots,
``*`` one word, ``#`` zero or more words.
"""
from __future__ import annotations

import re

# Regex pieces over the words of a binding key. A literal word never holds '*' or '#' (conservative:
# RabbitMQ would read "a*b" literally, we refuse it) nor a newline (PCRE's '$' accepts one before the end).
_LITERAL = r"[^.*#\n]+"
_ANY_WORD = r"[^.\n]*"


def topic_matches(pattern: str, routing_key: str) -> bool:
    """Whether an AMQP topic binding ``pattern`` routes ``routing_key``, as RabbitMQ decides it.

    Both are dot-separated words; in the pattern ``*`` stands for exactly one
    word and ``#`` for zero or more (AMQP 0-9-1 topic exchange).
    ``topic_matches("member.*", "member.registered")`` is True,
    ``topic_matches("member.*", "member.a.b")`` False, ``topic_matches("#", "x")`` True.
    """
    def match(parts: list[str], words: list[str]) -> bool:
        if not parts:
            return not words
        head, rest = parts[0], parts[1:]
        if head == "#":
            return any(match(rest, words[i:]) for i in range(len(words) + 1))
        return bool(words) and head in ("*", words[0]) and match(rest, words[1:])

    return match(pattern.split("."), routing_key.split("."))


def is_everything(scope: tuple[str, ...]) -> bool:
    """Whether the scope covers every event type there is or will be (a pattern of only '#' words)."""
    return any(all(word == "#" for word in pattern.split(".")) for pattern in scope)


def _dotted(words: list[str]) -> str:
    # A regex over "." + the binding key's remaining words: each piece starts with the dot it consumes.
    if not words:
        return ""
    head = r"(?:\.[^.\n]*)*" if words[0] == "#" else r"\." + _word(words[0])
    return head + _dotted(words[1:])


def _plain(words: list[str]) -> str:
    # A regex over the binding key's words themselves (no leading dot).
    if not words:
        return ""
    if words[0] != "#":
        return _word(words[0]) + _dotted(words[1:])
    # '#' takes one or more of the key's words, or none (and then no dot either).
    return rf"(?:{_ANY_WORD}(?:\.{_ANY_WORD})*{_dotted(words[1:])}|{_plain(words[1:])})"


def _word(word: str) -> str:
    # A scope's '*' admits a binding word that is a name or '*', never '#' (that would widen it).
    return rf"(?:{_LITERAL}|\*)" if word == "*" else re.escape(word)


def scope_regex(scope: tuple[str, ...]) -> str:
    """The read regex of the integrator's topic permission on ``verbund.events``.

    RabbitMQ matches it (PCRE, unanchored, so it is anchored here) against the *binding key* of a
    ``queue.bind``. It accepts a binding key exactly when one scope pattern covers it word by word:
    a scope word that is a name admits that name, ``*`` admits a name or ``*``, ``#`` admits any run
    of words including ``*`` and ``#``. Every routing key such a binding key matches is then in the
    scope. So scope ``event.*`` admits ``event.*`` and ``event.scheduled`` and refuses ``#``, ``*.*``,
    ``member.*`` and ``event.#`` (which would also match ``event.a.b``). A binding key covered only by
    the union of several patterns is refused: bind one pattern at a time.
    """
    if is_everything(scope):
        return ".*"
    # Scope words are plain names, so the regex holds no '{': RabbitMQ expands {username}-style variables.
    # "(?!\n)$": PCRE's and Python's '$' also match before a final newline.
    return "^(?:" + "|".join(_plain(pattern.split(".")) for pattern in scope) + r")(?!\n)$"


def covers(scope: tuple[str, ...] | list[str], pattern: str) -> bool:
    """Whether ``scope`` (topic patterns such as ``('event.*',)``) covers the topic pattern ``pattern``:
    every routing key ``pattern`` matches is matched by one scope pattern (the rule RabbitMQ's topic
    permission ``scope_regex`` applies to binding keys). ``event.*`` covers ``event.scheduled`` and
    ``event.*``, not ``member.*``, ``#`` or ``*.*``."""
    return re.search(scope_regex(tuple(scope)), pattern) is not None
