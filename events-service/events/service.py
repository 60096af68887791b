"""events-service entrypoints: HTTP and the member.* subscription. Each parses
(the ``@api`` entrypoint loads the declared body and query schemas), then hands its
work to one use case of ``events.services`` or one query of ``events.queries`` inside
one unit of work, and answers."""
from __future__ import annotations

from functools import partial

from sqlalchemy.exc import IntegrityError

from events import export, queries, services
from events.domain import STAFF
from events.schemas import (
    CancelSchema,
    EventSchema,
    FeedQuerySchema,
    ListQuerySchema,
    MoveSchema,
    RegistrationSchema,
)
from verbund import calendar
from verbund.downloads import file_response
from verbund.errors import Conflict
from verbund.openapi import Extended
from verbund.personal import MemberKeys
from verbund.reference import ASSOCIATIONS
from verbund.service import ServiceBase
from verbund.subscriber import subscribe
from verbund.web import ANYONE, api, if_match, json_body, json_response

FEED_NAME = "Verbund joint events"
CALENDAR_TYPE = "text/calendar; charset=utf-8"

# Answer schemas for the OpenAPI document.
EVENT = Extended("urn:verbund:schema:joint-event:v1", "event-view", {
    "starts_local": {"type": "string", "description": "starts_at in the event's time zone"},
    "ends_local": {"type": "string"},
    "seats_confirmed": {"type": "integer"}, "seats_free": {"type": "integer"},
    "waitlisted": {"type": "integer", "description": "requests on the waitlist"}})
EVENT_PAGE = {"type": "object", "properties": {
    "items": {"type": "array", "items": {"$ref": "#/components/schemas/event-view"}},
    "page": {"type": "integer"}, "per_page": {"type": "integer"}, "total": {"type": "integer"}}}
REGISTRATION = {"type": "object", "required": ["id", "event_id", "member_id", "seats", "status", "version"],
                "properties": {
                    "id": {"type": "string"}, "event_id": {"type": "string"}, "member_id": {"type": "string"},
                    "seats": {"type": "integer"}, "status": {"enum": ["confirmed", "waitlisted", "cancelled"]},
                    "waitlist_position": {"type": ["integer", "null"]}, "version": {"type": "integer"},
                    "reason": {"type": ["string", "null"]},
                    "moved_to": {"type": "string", "description": "reason `moved`: the event it moved to"},
                    "attendees": {"type": "array", "items": {"type": "string"}},
                    "created_at": {"type": "string"}, "updated_at": {"type": "string"}}}
EVENT_REGISTRATIONS = {"type": "object", "required": ["event", "items"], "properties": {
    "event": {"$ref": "#/components/schemas/event-view"},
    "items": {"type": "array", "items": {**REGISTRATION, "properties": {
        **REGISTRATION["properties"], "member_name": {"type": ["string", "null"]},
        "moved_to_event": {"type": ["object", "null"], "description": "reason `moved`: the event in brief",
                           "properties": {"id": {"type": "string"}, "title": {"type": "string"},
                                          "starts_at": {"type": "string"}, "timezone": {"type": "string"}}}}}}}}
MEMBER_REGISTRATIONS = {"type": "object", "required": ["member_id", "items"], "properties": {
    "member_id": {"type": "string"},
    "items": {"type": "array", "items": {**REGISTRATION, "properties": {**REGISTRATION["properties"], "event": {
        "type": "object", "description": "the event in brief",
        "properties": {"id": {"type": "string"}, "title": {"type": "string"}, "starts_at": {"type": "string"},
                       "status": {"enum": ["scheduled", "cancelled", "completed"]}}}}}}}}
MOVED = {"type": "object", "required": ["cancelled", "registration"], "properties": {
    "cancelled": {**REGISTRATION, "description": "the registration here, cancelled with reason `moved`"},
    "registration": {**REGISTRATION, "description": "the new registration at the other event"}}}
CALENDAR = ("text/calendar", {"type": "string"})




def _event_response(event: dict, status: int = 200):
    return json_response(event, status, headers={"ETag": f'"{event["version"]}"'})


class EventsService(ServiceBase):
    name = "events"
    member_keys = MemberKeys()  # the contact person of member.* v2, decrypted with the member's key

    @subscribe(batch=True)
    def on_member_events(self, events):
        """member.* keeps the member read model; member.deleted also ends the member's registrations.
        A batch (one event when CONSUME_BATCH_SIZE is 1) in one transaction; the members' keys it needs
        are fetched before that transaction opens, so no RPC waits while it holds the database."""
        keys = self.member_keys.prefetch(events)
        self.db.handle_batch(events, partial(services.on_member_events, keys=keys))

    # --- events ---------------------------------------------------------------------------------

    @api("POST", "/events", roles=STAFF, body=EventSchema,
         responses={201: ("The event at version 1; ETag is its version", EVENT)})
    def schedule_event(self, request):
        """Schedule a joint event (organizers of an organizing association, admins)."""
        with self.db.unit_of_work() as uow:
            return _event_response(services.schedule(uow, request.principal, request.body_data), 201)

    @api("GET", "/events", roles=ANYONE, query=ListQuerySchema, responses={200: ("A page of events", EVENT_PAGE)})
    def list_events(self, request):
        """Events matching every filter, soonest first."""
        with self.db.unit_of_work() as uow:
            return queries.search(uow, request.query_data)

    @api("GET", "/events/<string:event_id>", roles=ANYONE,
         responses={200: ("The event and how full it is; ETag is its version", EVENT)})
    def get_event(self, request, event_id):
        """One event."""
        with self.db.unit_of_work() as uow:
            return _event_response(queries.get(uow, event_id))

    @api("PATCH", "/events/<string:event_id>", roles=STAFF, body=EventSchema, load_body=False, errors=(409, 412),
         responses={200: ("The event at its new version", EVENT)})
    def update_event(self, request, event_id):
        """Change an event: the fields sent replace the current ones."""
        patch = json_body(request)  # a merge patch: validated once merged with the stored event
        with self.db.unit_of_work() as uow:
            return _event_response(services.update(uow, request.principal, event_id, patch, if_match(request)))

    @api("POST", "/events/<string:event_id>/cancel", roles=STAFF, body=CancelSchema, errors=(409,),
         responses={200: ("The cancelled event", EVENT)})
    def cancel_event(self, request, event_id):
        """Cancel an event and every registration for it."""
        with self.db.unit_of_work() as uow:
            return _event_response(services.cancel(uow, request.principal, event_id, request.body_data["reason"]))

    # --- calendars: no bearer token, since calendar programs cannot send one; no personal data -----

    @api("GET", "/events/<string:event_id>/calendar.ics", roles=ANYONE,
         responses={200: ("The event as iCalendar (METHOD:CANCEL once cancelled)", CALENDAR)})
    def event_calendar(self, request, event_id):
        """One event as an .ics file."""
        with self.db.unit_of_work() as uow:
            event = queries.calendar_event(uow, event_id)
        return file_response(calendar.event_ics(event), CALENDAR_TYPE, f"event-{event_id}.ics", "inline")

    @api("GET", "/calendar.ics", roles=ANYONE, query=FeedQuerySchema,
         responses={200: ("Events not yet over, as an iCalendar feed", CALENDAR)})
    def calendar_feed(self, request):
        """The subscribable calendar feed of upcoming events."""
        query = request.query_data
        with self.db.unit_of_work() as uow:
            events = queries.feed(uow, query)
        name = FEED_NAME
        if query.get("association"):
            name += f" – {ASSOCIATIONS[query['association']]}"
        name += "".join(f" – {query[key]}" for key in ("sector", "topic", "kind") if query.get(key))
        return file_response(calendar.feed_ics(events, name), CALENDAR_TYPE, "verbund-events.ics", "inline")

    # --- registrations ----------------------------------------------------------------------------

    @api("POST", "/events/<string:event_id>/registrations", roles=("admin", "organizer", "member"),
         body=RegistrationSchema, errors=(409,),
         responses={201: ("The registration: confirmed, or waitlisted with its position", REGISTRATION)})
    def register(self, request, event_id):
        """Register a member (itself, or on its behalf by the event's organizers)."""
        try:
            with self.db.unit_of_work() as uow:
                registration = services.register(uow, request.principal, event_id, request.body_data)
        except IntegrityError:  # the unique index caught a double registration that raced past the check
            raise Conflict("this member is already registered for this event") from None
        return json_response(registration, 201)

    @api("GET", "/events/<string:event_id>/registrations", roles=STAFF,
         responses={200: ("The event and every registration in arrival order", EVENT_REGISTRATIONS)})
    def list_registrations(self, request, event_id):
        """An event's registrations."""
        with self.db.unit_of_work() as uow:
            return queries.list_registrations(uow, request.principal, event_id)

    @api("GET", "/events/<string:event_id>/registrations/<string:registration_id>",
         roles=("admin", "organizer", "member"), responses={200: ("The registration", REGISTRATION)})
    def get_registration(self, request, event_id, registration_id):
        """One registration (its member, the event's organizers)."""
        with self.db.unit_of_work() as uow:
            return queries.get_registration(uow, request.principal, event_id, registration_id)

    @api("DELETE", "/events/<string:event_id>/registrations/<string:registration_id>",
         roles=("admin", "organizer", "member"), errors=(409,),
         responses={200: ("The cancelled registration; the waitlist has moved up", REGISTRATION)})
    def cancel_registration(self, request, event_id, registration_id):
        """Cancel a registration."""
        with self.db.unit_of_work() as uow:
            return services.cancel_registration(uow, request.principal, event_id, registration_id)

    @api("POST", "/events/<string:event_id>/registrations/<string:registration_id>/move", roles=STAFF,
         body=MoveSchema, errors=(409,),
         responses={200: ("The registration cancelled here and the new one at the other event", MOVED)})
    def move_registration(self, request, event_id, registration_id):
        """Move a member's registration to another event of the same organizers (body ``{to_event_id}``),
        in one transaction: cancelled here (reason ``moved``), confirmed or waitlisted there by the
        usual rule; the waitlists move up. 403 staff of another association, 404, 409 cancelled
        already / begun / the other event closed or holding the member already, 422 field ``to_event_id``."""
        try:
            with self.db.unit_of_work() as uow:
                return services.move_registration(uow, request.principal, event_id, registration_id,
                                                  request.body_data["to_event_id"])
        except IntegrityError:  # a registration for the member at the other event raced past the check
            raise Conflict("this member is registered for the other event already", field="to_event_id") from None

    @api("GET", "/members/<string:member_id>/registrations", roles=("admin", "organizer", "member"),
         responses={200: ("The member's registrations with their events", MEMBER_REGISTRATIONS)})
    def member_registrations(self, request, member_id):
        """A member's registrations."""
        with self.db.unit_of_work() as uow:
            return queries.member_registrations(uow, request.principal, member_id)

    # --- attendee exports -------------------------------------------------------------------------

    @api("GET", "/events/<string:event_id>/attendees.csv", roles=STAFF, query=export.ExportQuerySchema,
         responses={200: ("The attendee list, confirmed first, then the waitlist", ("text/csv", {"type": "string"}))})
    def attendees_csv(self, request, event_id):
        """The attendee list as CSV, for German Excel by default when the request prefers German;
        ``?headers=labels`` gives the headings and status values in that language too."""
        dialect = export.choose_dialect(request.query_data.get("dialect"), request.accept_languages)
        with self.db.unit_of_work() as uow:
            event, rows = queries.attendees(uow, request.principal, event_id)
        language = export.choose_language(request.accept_languages) \
            if request.query_data["headers"] == "labels" else None
        return file_response(export.to_csv(rows, dialect, language), export.CSV_TYPE, export.filename(event, "csv"))

    @api("GET", "/events/<string:event_id>/attendees.xlsx", roles=STAFF,
         responses={200: ("The attendee list as an Excel workbook",
                          (export.XLSX_TYPE, {"type": "string", "format": "binary"}))})
    def attendees_xlsx(self, request, event_id):
        """The attendee list as Excel, headings and sheet names in the request's language (German or English)."""
        with self.db.unit_of_work() as uow:
            event, rows = queries.attendees(uow, request.principal, event_id)
        return file_response(export.to_xlsx(event, rows, export.choose_language(request.accept_languages)),
                             export.XLSX_TYPE, export.filename(event, "xlsx"))
