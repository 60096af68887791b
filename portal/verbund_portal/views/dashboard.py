"""The dashboard: what the cooperation produced, for one association or for the cooperation as a
whole, as tables, small server-rendered SVG bar charts (no script) and a CSV download.

Every figure comes from the services' APIs with the signed-in staff member's token (members-service
``/stats/members`` and ``/stats/contacts``; events-service ``/events`` for fill rates and waitlists;
matching-service ``/stats/matching``), so the services' authorization decides what an
organizer may see: their own association's figures and the cooperation's totals."""
from __future__ import annotations

import csv
import io

from flask import Blueprint, Response, g, render_template, request
from flask_babel import gettext as _

from verbund_portal import i18n
from verbund_portal.app import services, staff_required

blueprint = Blueprint("dashboard", __name__, url_prefix="/organize")

SIZES = ("micro", "small", "medium", "large")


def _scope() -> str | None:
    """The association whose figures to show; None for the cooperation as a whole. Organizers start
    with their own association, admins with the cooperation; ``?scope=`` switches."""
    chosen = request.args.get("scope")
    if chosen == "cooperation":
        return None
    if chosen in dict(i18n.choices("association")):
        return chosen
    return g.member.get("association")


def figures(association: str | None) -> dict:
    """Every figure of the dashboard for ``association`` (None: the cooperation), from the APIs."""
    params = {"association": association} if association else {}
    members = services().get("members", "/stats/members", params=params)
    contacts = services().get("members", "/stats/contacts", params=params)
    events = services().get("events", "/events", params={**params, "per_page": 500})["items"]
    event_rows = [{"title": e["title"], "starts_at": e["starts_at"], "timezone": e.get("timezone"),
                   "status": e["status"], "capacity": e["capacity"],
                   "booked": e["seats_confirmed"], "waitlisted": e["waitlisted"],
                   "fill": round(100 * e["seats_confirmed"] / e["capacity"]) if e["capacity"] else 0}
                  for e in events if e["status"] != "cancelled"]
    return {"members": members, "contacts": contacts, "events": event_rows,
            "matching": services().get("matching", "/stats/matching", params=params)}


def _bars(counts: dict, label) -> list[dict]:
    """``[{label, value}]`` largest first, for a table and a chart."""
    return [{"key": key, "label": label(key), "value": value}
            for key, value in sorted(counts.items(), key=lambda item: (-item[1], item[0])) if value]


def sections(data: dict) -> list[dict]:
    """The dashboard's tables: ``[{id, title, column, rows: [{key, label, value}], chart: bool}]``; ``column``
    heads the labels' column (what a row is: a sector, a month, …), ``label`` in the page's language."""
    members, contacts = data["members"], data["contacts"]
    size_names = {"micro": _("Micro (under 10)"), "small": _("Small (10–49)"), "medium": _("Medium (50–249)"),
                  "large": _("Large (250 and more)")}
    result = [
        {"id": "by-sector", "title": _("Members by sector"), "chart": True, "column": _("Sector"),
         "rows": _bars(members["by_sector"], lambda key: i18n.reference_label("sector", key))},
        {"id": "by-state", "title": _("Members by federal state"), "chart": True, "column": _("Federal state"),
         "rows": _bars(members["by_state"], lambda key: i18n.reference_label("state", key))},
        {"id": "by-size", "title": _("Members by size class"), "chart": True, "column": _("Size class"),
         "rows": [{"key": key, "label": size_names[key], "value": members["by_size"].get(key, 0)} for key in SIZES]},
        {"id": "growth", "title": _("Growth per month"), "chart": True, "column": _("Month"),
         "rows": [{"key": row["month"], "label": i18n.month(row["month"]), "value": row["joined"],
                   "total": row["total"]}
                  for row in members["growth"]]},
        {"id": "contacts", "title": _("Contact requests"), "chart": False, "column": _("Status"),
         "rows": [{"key": key, "label": label, "value": contacts[key]} for key, label in (
             ("sent", _("sent")), ("accepted", _("accepted")), ("declined", _("declined")),
             ("pending", _("waiting for an answer")), ("expired", _("expired unanswered")))]},
    ]
    matching = data["matching"]
    suggestions, proposals = matching["suggestions"], matching["proposals"]
    reasons = {"declined": _("closed: a partner declined"), "superseded": _("closed: replaced by a newer proposal"),
               "consent_withdrawn": _("closed: a partner withdrew consent"),
               "member_deleted": _("closed: a partner left Verbund")}
    result.append({"id": "matching", "title": _("Suggestions and partner projects"), "chart": False,
                   "column": _("Figure"), "rows": [
        {"key": "suggestions", "label": _("partner suggestions made"), "value": suggestions["total"]},
        {"key": "suggested_members", "label": _("members with a suggestion"), "value": suggestions["members"]},
        {"key": "proposals", "label": _("partner projects proposed"), "value": proposals["total"]},
        {"key": "proposed", "label": _("waiting for the team's answers"), "value": proposals["proposed"]},
        {"key": "formed", "label": _("formed"), "value": proposals["formed"]},
        {"key": "closed", "label": _("closed"), "value": proposals["closed"]},
        *({"key": f"closed_{reason}", "label": reasons.get(reason, reason), "value": count}
          for reason, count in sorted(proposals["closed_by_reason"].items()))]})
    return result


@blueprint.route("/dashboard")
@staff_required()
def dashboard():
    """The dashboard page for the chosen scope."""
    association = _scope()
    data = figures(association)
    return render_template("organize/dashboard.html", data=data, sections=sections(data), association=association,
                           associations=i18n.choices("association"))


# OWASP "CSV Injection", as events-service's attendee export: a cell starting with one of these (an event
# titled "=HYPERLINK(…)") would run as a formula in a spreadsheet; a leading apostrophe keeps it text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value):
    """A CSV cell that a spreadsheet shows as text: a str starting like a formula gets a leading ``'``;
    numbers stay numbers."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value


@blueprint.route("/dashboard.csv")
@staff_required()
def dashboard_csv():
    """The same figures as CSV (semicolons and a BOM in German, for Excel): section; figure; value."""
    association = _scope()
    data = figures(association)
    german = i18n.language() == "de"
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";" if german else ",", lineterminator="\r\n")
    writer.writerow([_("Section"), _("Figure"), _("Value")])
    writer.writerow([_("Members"), _("total"), data["members"]["total"]])
    writer.writerow([_("Members"), _("SMEs"), data["members"]["sme"]])
    for section in sections(data):
        for row in section["rows"]:
            writer.writerow([section["title"], _cell(row["label"]), row["value"]])
    for event in data["events"]:
        title = _cell(event["title"])
        writer.writerow([_("Events: places booked"), title, event["booked"]])
        writer.writerow([_("Events: fill rate in %"), title, event["fill"]])
        writer.writerow([_("Events: waitlist"), title, event["waitlisted"]])
    scope = association or "cooperation"
    return Response(("\ufeff" if german else "") + buffer.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="verbund-dashboard-{scope}.csv"'})
