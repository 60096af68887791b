"""meetings-service entrypoints: HTTP and the event.*/registration.*/member.* subscription. Each parses
(the ``@api`` entrypoint loads the declared body and query schemas), authorises, hands its work to one use
case of ``meetings.services`` or one query of ``meetings.queries`` inside one unit of work, and answers.
Paths and shapes: see the service README."""
from __future__ import annotations

import csv
import io

from sqlalchemy.exc import IntegrityError

from meetings import agenda, candidates, queries, services
from meetings.domain import STAFF
from meetings.schemas import (
    AcceptSchema,
    AttendanceSchema,
    LockSchema,
    MoveSchema,
    OutcomeSchema,
    ParticipationSchema,
    PublishSchema,
    ReasonSchema,
    RequestSchema,
    RollupQuerySchema,
    ScheduleSchema,
    SetupSchema,
    SlotSchema,
)
from verbund.downloads import file_response
from verbund.errors import Conflict, Forbidden
from verbund.service import ServiceBase
from verbund.subscriber import subscribe
from verbund.web import AUTHENTICATED, api

MEMBER = ("member",)
PARTIES = ("member", "admin", "organizer")
OBJECT = {"type": "object"}
DOUBLE_BOOKED = "someone else took this slot or table a moment ago; pick another"


class MeetingsService(ServiceBase):
    name = "meetings"

    @subscribe()
    def on_platform_event(self, event):
        """event.* and registration.* keep the read model of events and registrants; member.* the sectors
        (member.deleted erases the member's participation)."""
        self.db.handle(event, services.on_platform_event)

    def _booking(self, use_case, *args):
        """Run a use case that books slots; a double booking that raced past its checks is a 409."""
        try:
            with self.db.unit_of_work() as uow:
                return use_case(uow, *args)
        except IntegrityError:
            raise Conflict(DOUBLE_BOOKED) from None

    # --- set-up -----------------------------------------------------------------------------------------

    @api("PUT", "/events/<string:event_id>/meetings/setup", roles=STAFF, body=SetupSchema, errors=(404, 409),
         responses={200: ("The set-up with its slots", OBJECT)})
    def set_up(self, request, event_id):
        """Create or replace the matchmaking set-up of an event (organizers of the event, admins)."""
        with self.db.unit_of_work() as uow:
            return services.set_up(uow, request.principal, event_id, request.body_data)

    @api("GET", "/events/<string:event_id>/meetings/setup", roles=AUTHENTICATED, errors=(404,),
         responses={200: ("The set-up with its slots", OBJECT)})
    def get_setup(self, request, event_id):
        """The matchmaking set-up of an event and its slots."""
        with self.db.unit_of_work() as uow:
            return queries.get_setup(uow.session, event_id)

    # --- participants -----------------------------------------------------------------------------------

    @api("PUT", "/events/<string:event_id>/meetings/participation", roles=MEMBER, body=ParticipationSchema,
         errors=(404, 409), responses={200: ("The member's participation", OBJECT)})
    def opt_in(self, request, event_id):
        """A confirmed registrant opts in (or changes its availability)."""
        with self.db.unit_of_work() as uow:
            return services.opt_in(uow, request.principal, event_id, request.body_data)

    @api("DELETE", "/events/<string:event_id>/meetings/participation", roles=MEMBER, errors=(404,),
         responses={200: ("The participation, opted out", OBJECT)})
    def opt_out(self, request, event_id):
        """A participant opts out; its open requests and meetings are cancelled."""
        with self.db.unit_of_work() as uow:
            return services.opt_out(uow, request.principal, event_id)

    @api("GET", "/events/<string:event_id>/meetings/candidates", roles=MEMBER, errors=(403, 404),
         responses={200: ("The other participants, ranked by matching's cross-sector scores with reasons", OBJECT)})
    def candidates(self, request, event_id):
        """Whom to meet: the other participants, best first (unranked with a notice when matching is away)."""
        with self.db.unit_of_work() as uow:
            others = candidates.others(uow.session, request.principal, event_id)
        language = "de" if request.accept_languages.best_match(["de", "en"]) == "de" else "en"
        return candidates.ranked(request.principal.member_id, others, language)

    # --- requests ---------------------------------------------------------------------------------------

    @api("POST", "/events/<string:event_id>/meetings", roles=MEMBER, body=RequestSchema, errors=(403, 404, 409),
         responses={201: ("The request", OBJECT)})
    def request_meeting(self, request, event_id):
        """A participant asks another for a meeting."""
        try:
            with self.db.unit_of_work() as uow:
                meeting = services.request(uow, request.principal, event_id, request.body_data)
        except IntegrityError:
            raise Conflict("there is already an open request between you two") from None
        return 201, meeting

    @api("GET", "/events/<string:event_id>/meetings", roles=STAFF, errors=(403, 404),
         responses={200: ("Every meeting of the event (no messages)", OBJECT)})
    def all_meetings(self, request, event_id):
        """The event's meetings, for its organizers."""
        with self.db.unit_of_work() as uow:
            return queries.all_meetings(uow.session, request.principal, event_id, uow.now())

    @api("GET", "/events/<string:event_id>/members/<string:member_id>/meetings", roles=("member", "admin"),
         errors=(403, 404), responses={200: ("The member's requests and meetings, newest first", OBJECT)})
    def member_meetings(self, request, event_id, member_id):
        """A member's requests (sent and received) and meetings at the event."""
        with self.db.unit_of_work() as uow:
            return queries.member_meetings(uow.session, request.principal, event_id, member_id, uow.now())

    @api("GET", "/events/<string:event_id>/meetings/<string:meeting_id>/free-slots", roles=PARTIES,
         errors=(403, 404), responses={200: ("The slots both sides have free, with free tables", OBJECT)})
    def free_slots(self, request, event_id, meeting_id):
        """The slots both members of a meeting have free and a table is left in: ``{event_id, meeting_id,
        status, slots: [{number, session, starts_at, ends_at, free_tables}]}`` in time order."""
        with self.db.unit_of_work() as uow:
            return queries.free_slots(uow.session, request.principal, event_id, meeting_id, uow.now())

    @api("POST", "/events/<string:event_id>/meetings/<string:meeting_id>/accept", roles=MEMBER, body=AcceptSchema,
         errors=(403, 404, 409), responses={200: ("The accepted meeting", OBJECT)})
    def accept(self, request, event_id, meeting_id):
        """The member asked accepts, with a mutually free slot or leaving it to the scheduler."""
        return self._booking(services.accept, request.principal, event_id, meeting_id, request.body_data)

    @api("POST", "/events/<string:event_id>/meetings/<string:meeting_id>/decline", roles=MEMBER, body=ReasonSchema,
         errors=(403, 404, 409), responses={200: ("The declined request", OBJECT)})
    def decline(self, request, event_id, meeting_id):
        """The member asked declines, with an optional reason."""
        with self.db.unit_of_work() as uow:
            return services.decline(uow, request.principal, event_id, meeting_id, request.body_data)

    @api("POST", "/events/<string:event_id>/meetings/<string:meeting_id>/cancel", roles=PARTIES, body=ReasonSchema,
         errors=(403, 404, 409), responses={200: ("The cancelled meeting", OBJECT)})
    def cancel(self, request, event_id, meeting_id):
        """Either side (or the event's organizers) cancels a request or meeting."""
        with self.db.unit_of_work() as uow:
            return services.cancel(uow, request.principal, event_id, meeting_id, request.body_data)

    @api("POST", "/events/<string:event_id>/meetings/<string:meeting_id>/reschedule", roles=MEMBER,
         body=SlotSchema, errors=(403, 404, 409), responses={200: ("The meeting in its new slot", OBJECT)})
    def reschedule(self, request, event_id, meeting_id):
        """Either side moves an accepted meeting to another mutually free slot."""
        return self._booking(services.reschedule, request.principal, event_id, meeting_id, request.body_data)

    # --- organizer scheduling ------------------------------------------------------------------------

    @api("POST", "/events/<string:event_id>/meetings/schedule", roles=STAFF, body=ScheduleSchema, errors=(403, 404),
         responses={200: ("How many were placed, which not and why, idle gaps, solver status and time", OBJECT)})
    def schedule_all(self, request, event_id):
        """"Schedule all": every accepted meeting into a slot and a table (locked ones kept)."""
        return self._booking(services.schedule_all, request.principal, event_id, request.body_data)

    @api("PUT", "/events/<string:event_id>/meetings/<string:meeting_id>/placement", roles=STAFF, body=MoveSchema,
         errors=(403, 404, 409), responses={200: ("The meeting in its slot and table", OBJECT)})
    def place(self, request, event_id, meeting_id):
        """The organizers move (and lock) one meeting; 409 when a participant or the table is taken then."""
        return self._booking(services.place, request.principal, event_id, meeting_id, request.body_data)

    @api("PUT", "/events/<string:event_id>/meetings/<string:meeting_id>/lock", roles=STAFF, body=LockSchema,
         errors=(403, 404), responses={200: ("The meeting", OBJECT)})
    def lock(self, request, event_id, meeting_id):
        """Lock or unlock a meeting against "schedule all"."""
        with self.db.unit_of_work() as uow:
            return services.lock(uow, request.principal, event_id, meeting_id, request.body_data)

    @api("GET", "/events/<string:event_id>/meetings/conflicts", roles=STAFF, errors=(403, 404),
         responses={200: ("Rule violations of the current schedule and the unscheduled meetings", OBJECT)})
    def conflicts(self, request, event_id):
        """What breaks the rules in the current schedule."""
        with self.db.unit_of_work() as uow:
            return services.conflicts(uow, request.principal, event_id)

    @api("POST", "/events/<string:event_id>/meetings/publish", roles=STAFF, body=PublishSchema, errors=(403, 404, 409),
         responses={200: ("The publication state", OBJECT)})
    def publish(self, request, event_id):
        """Publish the schedule (preliminary or final): participants see slots and tables."""
        with self.db.unit_of_work() as uow:
            return services.publish(uow, request.principal, event_id, request.body_data)

    # --- attendance and outcomes ------------------------------------------------------------------------

    @api("PUT", "/events/<string:event_id>/meetings/<string:meeting_id>/attendance", roles=MEMBER,
         body=AttendanceSchema, errors=(403, 404, 409), responses={200: ("The meeting", OBJECT)})
    def attendance(self, request, event_id, meeting_id):
        """One side says whether the meeting took place."""
        with self.db.unit_of_work() as uow:
            return services.attendance(uow, request.principal, event_id, meeting_id, request.body_data)

    @api("PUT", "/events/<string:event_id>/meetings/<string:meeting_id>/outcome", roles=MEMBER,
         body=OutcomeSchema, errors=(403, 404, 409), responses={200: ("The side's reported outcome", OBJECT)})
    def outcome(self, request, event_id, meeting_id):
        """One side reports what came of the meeting."""
        with self.db.unit_of_work() as uow:
            return services.report_outcome(uow, request.principal, event_id, meeting_id, request.body_data)

    @api("GET", "/events/<string:event_id>/meetings/report", roles=STAFF, errors=(403, 404),
         responses={200: ("Requests, accepted, scheduled, held, no-show, disputed, table occupancy, outcomes",
                          OBJECT)})
    def report(self, request, event_id):
        """The organizers' figures of an event's meetings."""
        with self.db.unit_of_work() as uow:
            return queries.rollup(uow.session, request.principal, event_id, uow.now())

    @api("GET", "/meetings/rollup", roles=STAFF, query=RollupQuerySchema, errors=(403,),
         responses={200: ("Figures per matchmaking day of an association (or the cooperation) and totals", OBJECT)})
    def association_rollup(self, request):
        """Requests / accepted / scheduled / held / no-show / disputed and outcomes over every matchmaking day of an
        association (``?association=``; organizers: their own) or of the cooperation (admins)."""
        with self.db.unit_of_work() as uow:
            return queries.association_rollup(uow.session, request.principal, request.query_data.get("association"),
                                              uow.now())

    @api("GET", "/meetings/rollup.csv", roles=STAFF, query=RollupQuerySchema, errors=(403,),
         responses={200: ("The same, one row per event and a total row", ("text/csv", {"type": "string"}))})
    def association_rollup_csv(self, request):
        """The association roll-up as CSV (UTF-8 with BOM): one row per matchmaking day, then ``total``."""
        association = request.query_data.get("association")
        with self.db.unit_of_work() as uow:
            data = queries.association_rollup(uow.session, request.principal, association, uow.now())
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(queries.ASSOCIATION_COLUMNS)
        writer.writerows(queries.association_rows(data))
        return file_response(("\ufeff" + out.getvalue()).encode("utf-8"), "text/csv; charset=utf-8",
                             f"meetings-{association or 'cooperation'}.csv")

    @api("GET", "/events/<string:event_id>/meetings/report.csv", roles=STAFF, errors=(403, 404),
         responses={200: ("The same figures as one CSV row", ("text/csv", {"type": "string"}))})
    def report_csv(self, request, event_id):
        """The organizers' figures as CSV (header and one row; UTF-8 with BOM for spreadsheet programs)."""
        with self.db.unit_of_work() as uow:
            figures = queries.rollup(uow.session, request.principal, event_id, uow.now())
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(queries.ROLLUP_COLUMNS)
        writer.writerow(queries.rollup_row(figures))
        return file_response(("\ufeff" + out.getvalue()).encode("utf-8"), "text/csv; charset=utf-8",
                             f"meetings-{event_id}.csv")

    # --- agendas ----------------------------------------------------------------------------------------

    @api("GET", "/events/<string:event_id>/members/<string:member_id>/agenda", roles=("member", "admin"),
         errors=(403, 404), responses={200: ("The participant's meetings with times and tables", OBJECT)})
    def agenda(self, request, event_id, member_id):
        """A participant's agenda (its meetings in time order, once visible)."""
        _own(request.principal, member_id)
        with self.db.unit_of_work() as uow:
            return queries.agenda(uow.session, event_id, member_id, uow.now())

    @api("GET", "/events/<string:event_id>/members/<string:member_id>/agenda.ics", roles=("member", "admin"),
         errors=(403, 404), responses={200: ("The agenda as iCalendar", ("text/calendar", {"type": "string"}))})
    def agenda_ics(self, request, event_id, member_id):
        """The agenda as an .ics file: a stable UID per meeting, SEQUENCE its version, cancelled ones CANCELLED;
        its words in the requester's Accept-Language (German or English, German by default)."""
        _own(request.principal, member_id)
        with self.db.unit_of_work() as uow:
            data = queries.agenda(uow.session, event_id, member_id, uow.now())
        language = request.accept_languages.best_match(agenda.LANGUAGES) or "de"
        response = file_response(agenda.to_ics(data, language), agenda.CALENDAR_TYPE, f"agenda-{event_id}.ics",
                                 "inline")
        response.headers.update({"Content-Language": language, "Vary": "Accept-Language"})
        return response


def _own(principal, member_id: str) -> None:
    if not principal.is_member(member_id) and not principal.is_admin:
        raise Forbidden("you see your own agenda only")
