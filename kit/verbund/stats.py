"""What the dashboards' ``GET /stats/...`` endpoints share: who may see which figures, the query
they take, and growth per month.

Figures are for the cooperation as a whole (no ``association``) or for one association. Organizers
see their own association's figures and the cooperation's totals; admins every association's.
Months are calendar months in Europe/Berlin, where the associations work (``YYYY-MM``).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from marshmallow import Schema, validate

from verbund.auth import Principal
from verbund.errors import Forbidden
from verbund.reference import ASSOCIATIONS
from verbund.schema_fields import Text

ZONE = ZoneInfo("Europe/Berlin")
COOPERATION = "cooperation"


class StatsQuerySchema(Schema):
    """``?association=``: one association's figures; the cooperation's totals without it."""
    association = Text(load_default=None, validate=validate.OneOf(sorted(ASSOCIATIONS)),
                       metadata={"description": "one association's figures; without it, the cooperation's totals"})


def scope(principal: Principal, association: str | None) -> str | None:
    """The association whose figures ``principal`` asks for (None: the cooperation's totals).
    Raises Forbidden (403) when an organizer asks for another association's."""
    if association and principal.role == "organizer" and principal.association != association:
        raise Forbidden("organizers see their own association's figures and the cooperation's totals")
    return association


def month_of(moment: datetime) -> str:
    """``YYYY-MM`` of ``moment`` in Europe/Berlin (a naive time is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(ZONE).strftime("%Y-%m")


def growth(moments: Iterable[datetime], now: datetime, key: str = "joined") -> list[dict]:
    """Per month from the first one with a ``moment`` up to ``now``'s, months without any included:
    ``[{"month": "2026-03", key: n, "total": running total}, ...]``; ``[]`` without moments."""
    counts = Counter(month_of(moment) for moment in moments)
    if not counts:
        return []
    year, month = map(int, min(counts).split("-"))
    last = month_of(now)
    rows, total = [], 0
    while True:
        label = f"{year:04d}-{month:02d}"
        if label > last and label > max(counts):
            return rows
        total += counts[label]
        rows.append({"month": label, key: counts[label], "total": total})
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
