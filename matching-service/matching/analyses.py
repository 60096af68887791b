"""Each distinct free-text need and offer label analysed once (``TextAnalyzer.analysis``: the
vocabulary terms it means and its words): stored in the read model's ``text_analyses`` table under
the vocabulary's digest and the label, so that a rebuild reads the analyses instead of doing them
again (at 100k members most of the time a rebuild spent reading the profiles). A label that names
its vocabulary term needs none. A rebuild stores the analyses it had to do; labels of members
registered since are analysed by the engine as they come and stored at the next rebuild."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

from sqlalchemy import select

from matching.models import TextAnalysis
from matching.text import TextAnalyzer

LOOKUP = 500  # keys per SELECT … IN
INSERT = 500  # rows per INSERT


def analysis_key(digest: str, label: str) -> str:
    """The stored analysis's key: the vocabulary's digest and the label (sha256, hex)."""
    return hashlib.sha256(f"{digest}\x00{label}".encode()).hexdigest()


def labels_of(profiles: Iterable[dict], analyzer: TextAnalyzer) -> set[str]:
    """The labels of profiles' needs and offers that the engine analyses: those without a term of
    the vocabulary (free text)."""
    terms = analyzer.vocabulary.competencies
    found = set()
    for profile in profiles:
        if not profile:
            continue
        for item in (*profile.get("needs", ()), *profile.get("offers", ())):
            if item.get("term") not in terms:
                found.add(item["label"])
    return found


def read(session, analyzer: TextAnalyzer, labels: Iterable[str]) -> set[str]:
    """Give ``analyzer`` (``remember``) the stored analyses of ``labels``; the labels found."""
    keys = {analysis_key(analyzer.digest, label): label for label in labels}
    found: set[str] = set()
    key_list = list(keys)
    for start in range(0, len(key_list), LOOKUP):
        page = {}
        for row in session.execute(select(TextAnalysis.key, TextAnalysis.terms, TextAnalysis.tokens).where(
                TextAnalysis.key.in_(key_list[start:start + LOOKUP]))):
            label = keys[row.key]
            # JSON keeps floats exactly (shortest repr), so a stored weight is the computed one
            page[label] = (tuple((term, float(weight)) for term, weight in json.loads(row.terms)),
                           frozenset(json.loads(row.tokens)))
        analyzer.remember(page)
        found.update(page)
    return found


def store(session, analyzer: TextAnalyzer, labels: Iterable[str]) -> int:
    """Analyse ``labels`` (or take what ``analyzer`` remembers or cached) and store them; one stored
    already is kept (another instance may store the same label at once). The number given."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - the service runs on PostgreSQL or SQLite
        raise RuntimeError(f"unsupported database: {dialect}")
    rows = []
    for label in sorted(labels):
        terms, tokens = analyzer.analysis(label)
        rows.append({"key": analysis_key(analyzer.digest, label), "text": label,
                     "terms": json.dumps([[term, weight] for term, weight in terms]),
                     "tokens": json.dumps(sorted(tokens), ensure_ascii=False)})
    for start in range(0, len(rows), INSERT):
        session.execute(insert(TextAnalysis).values(rows[start:start + INSERT])
                        .on_conflict_do_nothing(index_elements=["key"]))
    return len(rows)
