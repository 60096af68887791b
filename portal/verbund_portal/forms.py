"""The portal's forms (Flask-WTF: CSRF on each) and how the services' field errors map onto them.

Labels are lazy gettext strings, so a form speaks the page's language. A form's own validators
catch what a person can fix before anything is sent; what only a service knows comes back as its
422 field errors and is shown at the field it concerns (``apply_errors``)."""
from __future__ import annotations

import functools
import re
import zoneinfo
from datetime import UTC, datetime, timedelta

from babel import core as babel_core
from babel import dates as babel_dates
from babel import numbers as babel_numbers
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileAllowed, FileField, FileRequired
from marshmallow import ValidationError as MarshmallowError
from wtforms import (
    BooleanField,
    EmailField,
    FieldList,
    FormField,
    HiddenField,
    IntegerField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    URLField,
    widgets,
)
from wtforms.validators import (
    DataRequired,
    Email,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    Regexp,
    StopValidation,
    ValidationError,
)

from verbund import catalogue, vocabulary, wallclock
from verbund.schema_fields import Url, normalize_text
from verbund_portal import i18n
from verbund_portal.api import flatten_fields
from verbund_portal.messages import plain, plain_all

COMPETENCY_FIELDS = 5  # inputs for offers and for needs at sign-up
SPARE_FIELDS = 3       # empty inputs below a saved profile's competencies, for more


def in_words(form, field) -> None:
    """An offer or a need is named in words: at least one letter or digit (members-service's rule)."""
    if (field.data or "").strip() and not any(ch.isalnum() for ch in field.data):
        raise ValidationError(_l("Please name it in words: at least one letter or digit."))


def at_most(characters: int) -> Length:
    """A length limit that says so in plain words ("Höchstens 200 Zeichen." / "At most 200 characters.").
    The input gets no ``maxlength``: a browser cuts a longer pasted text there without a word, so the
    person would never learn that the name was shortened; the form refuses it at the field instead."""
    limit = Length(max=characters, message=_l("At most %(max)s characters."))
    limit.field_flags = {}
    return limit


def strip(value):
    """Surrounding spaces off before the checks: an address pasted with a trailing space is fine."""
    return value.strip() if isinstance(value, str) else value


class WholeNumberField(IntegerField):
    """A whole number as people write it in the page's language (Babel, CLDR): "1.200", "1 200" and
    "1200" on German pages, "1,200" on English ones. The page's reading comes first; where it is no
    whole number ("1,200" on a German page) the other language's strict reading may be ("1,200" =
    1200 in English). "1,5" or "1.2" is no whole number in either: refused with ``message``."""
    # a text input: a number input would take "1.200" as 1.2 and send nothing for "1,200"
    widget = widgets.TextInput()

    def __init__(self, *args, message=None, **kwargs):
        kwargs.setdefault("render_kw", {"inputmode": "numeric"})
        super().__init__(*args, **kwargs)
        self.message = message or _l("Please enter a whole number, such as 1200.")

    def process_formdata(self, valuelist):
        if not valuelist or not valuelist[0].strip():
            self.data = None
            return
        # a space, no-break or narrow no-break space between groups of digits: "1 200"
        text = re.sub(r"(?<=\d)[ \u00a0\u202f](?=\d{3}(?!\d))", "", valuelist[0].strip())
        page = i18n.language() if i18n.language() in i18n.LOCALES else "de"
        for lang in (page, *(other for other in i18n.LOCALES if other != page)):
            try:
                value = babel_numbers.parse_decimal(text, locale=i18n.LOCALES[lang], strict=True)
            except babel_numbers.NumberFormatError:
                continue
            if value == value.to_integral_value():
                self.data = int(value)
                return
        self.data = None
        raise ValueError(str(self.message))

    def pre_validate(self, form):
        # what was typed is no whole number: its message says so, a range check of nothing would only repeat it
        if self.process_errors:
            raise StopValidation()


class MultiCheckboxField(SelectMultipleField):
    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


class SignInForm(FlaskForm):
    email = EmailField(_l("E-mail address of your organisation's contact person"), filters=[strip],
                       validators=[DataRequired(_l("Please enter an e-mail address.")),
                                   Email(_l("This is not a valid e-mail address."), check_deliverability=False),
                                   at_most(320)])


def plain_text(multiline: bool = False):
    """The services' text rule (``verbund.schema_fields.normalize_text``: no control, bidi or
    invalid characters; one line unless ``multiline``) checked in the form, in plain words."""
    def check(form, field) -> None:
        if isinstance(field.data, str):
            try:
                normalize_text(field.data, multiline=multiline)
            except MarshmallowError as error:
                raise ValidationError(plain(str(error.messages[0]))) from None
    return check


class ProfileForm(FlaskForm):
    """The registration form; the profile's edit form is the same without the consent texts' extra."""
    name = StringField(_l("Name of your organisation"), validators=[DataRequired(_l("Please enter a name.")),
                                                                    at_most(200), plain_text()])
    sector = SelectField(_l("Sector"), validators=[DataRequired(_l("Please choose a sector."))])
    associations = MultiCheckboxField(_l("Member of"))
    state = SelectField(_l("Federal state"), validators=[DataRequired(_l("Please choose a federal state."))])
    postcode = StringField(_l("Postcode"), validators=[
        DataRequired(_l("Please enter a postcode.")),
        Regexp(r"^[0-9]{5}$", message=_l("A German postcode has five digits."))])
    city = StringField(_l("City"), validators=[DataRequired(_l("Please enter a city.")), at_most(100), plain_text()])
    employees = WholeNumberField(_l("Number of employees"), message=_l(
        "Please enter the number of employees as a whole number, such as 1200 or 1,200."), validators=[
        InputRequired(_l("Please enter the number of employees.")),
        NumberRange(min=0, max=5_000_000, message=_l("Please enter a number from 0 to 5,000,000."))])
    website = URLField(_l("Website (optional)"), filters=[strip], validators=[Optional(), at_most(500)])
    contact_name = StringField(_l("Contact person"), validators=[DataRequired(_l("Please enter a name.")),
                                                                 at_most(200), plain_text()])
    contact_email = EmailField(_l("Contact e-mail (you sign in with it)"), filters=[strip], validators=[
        DataRequired(_l("Please enter an e-mail address.")),
        Email(_l("This is not a valid e-mail address."), check_deliverability=False), at_most(320)])
    language = SelectField(_l("Language for e-mails and pages"))
    # One input per competency: each suggests the vocabulary's terms as one types (a datalist, no script).
    offers = FieldList(StringField(_l("Offer"), validators=[Optional(), at_most(200), in_words]),
                       label=_l("What your organisation offers"), min_entries=COMPETENCY_FIELDS, max_entries=50)
    needs = FieldList(StringField(_l("Need"), validators=[Optional(), at_most(200), in_words]),
                      label=_l("What your organisation is looking for"), min_entries=COMPETENCY_FIELDS,
                      max_entries=50)
    topics = MultiCheckboxField(_l("Topics"))
    consent_partner = BooleanField(_l("Suggest us as a partner to other members"))
    consent_email = BooleanField(_l("Send us e-mails about suggestions, contact requests and events"))

    # service field → form field
    FIELD_MAP = {"name": "name", "sector": "sector", "associations": "associations", "region.state": "state",
                 "region.postcode": "postcode", "region.city": "city", "region": "postcode",
                 "size.employees": "employees", "size": "employees", "website": "website",
                 "contact.name": "contact_name", "contact.email": "contact_email", "contact.language": "language",
                 "contact": "contact_email", "offers": "offers", "needs": "needs", "topics": "topics",
                 "consent": "consent_partner"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sector.choices = [("", _l("Please choose"))] + i18n.choices("sector")
        self.associations.choices = i18n.choices("association")
        self.state.choices = [("", _l("Please choose"))] + sorted(i18n.choices("state"), key=lambda c: c[1])
        self.language.choices = i18n.choices("language")
        self.topics.choices = i18n.topic_choices()

    @staticmethod
    def _competencies(field: FieldList) -> list[dict]:
        return [{"label": entry.data.strip()} for entry in field if (entry.data or "").strip()][:50]

    @staticmethod
    def _show(field: FieldList, labels: list[str]) -> None:
        while field.entries:
            field.pop_entry()
        for label in labels[:50]:
            field.append_entry(label)
        while len(field.entries) < min(50, max(COMPETENCY_FIELDS, len(labels) + SPARE_FIELDS)):
            field.append_entry("")

    def to_member(self) -> dict:
        """The member JSON of members-service (``POST /members``, ``PATCH /members/{id}``)."""
        return {
            "name": self.name.data.strip(), "sector": self.sector.data, "associations": self.associations.data,
            "region": {"state": self.state.data, "postcode": self.postcode.data.strip(),
                       "city": self.city.data.strip()},
            "size": {"employees": self.employees.data}, "website": self.website.data or None,
            "contact": {"name": self.contact_name.data.strip(), "email": self.contact_email.data.strip(),
                        "language": self.language.data},
            "offers": self._competencies(self.offers), "needs": self._competencies(self.needs),
            "topics": self.topics.data,
            "consent": {"suggest_as_partner": self.consent_partner.data, "email": self.consent_email.data},
        }

    def fill(self, member: dict) -> None:
        """Show a stored profile in the form."""
        region, contact = member.get("region") or {}, member.get("contact") or {}
        self.name.data, self.sector.data = member.get("name"), member.get("sector")
        self.associations.data = member.get("associations") or []
        self.state.data, self.postcode.data, self.city.data = region.get("state"), region.get("postcode"), \
            region.get("city")
        self.employees.data = (member.get("size") or {}).get("employees")
        self.website.data = member.get("website")
        self.contact_name.data, self.contact_email.data = contact.get("name"), contact.get("email")
        self.language.data = contact.get("language") or "de"
        self._show(self.offers, [i18n.competency_text(c) for c in member.get("offers") or []])
        self._show(self.needs, [i18n.competency_text(c) for c in member.get("needs") or []])
        self.topics.data = member.get("topics") or []
        consent = member.get("consent") or {}
        self.consent_partner.data, self.consent_email.data = consent.get("suggest_as_partner"), consent.get("email")


class ContactRequestForm(FlaskForm):
    message = TextAreaField(_l("Your message"), validators=[
        DataRequired(_l("Please write a short message.")),
        at_most(1000)])
    FIELD_MAP = {"message": "message"}


class RegistrationForm(FlaskForm):
    seats = IntegerField(_l("Seats"), default=1, validators=[
        InputRequired(_l("Please enter the number of seats.")),
        NumberRange(min=1, max=100, message=_l("Please enter a number from 1 to 100."))])
    FIELD_MAP = {"seats": "seats"}


# The kinds of notification (notifications-service's policy) in plain words, in the order shown.
KIND_LABELS = {
    "contact_requested": _l("Someone asks you for contact"),
    "contact_accepted": _l("Your contact request was accepted"),
    "contact_declined": _l("Your contact request was declined"),
    "project_proposed": _l("Invitation to a partner project"),
    "project_formed": _l("A partner project has started"),
    "project_closed": _l("A project proposal has ended"),
    "match_suggested": _l("New partner suggestions"),
    "event_announced": _l("A new event that fits you"),
    "event_updated": _l("An event you registered for has changed"),
    "event_cancelled": _l("An event you registered for is cancelled"),
    "registration_confirmed": _l("Your registration is confirmed"),
    "registration_waitlisted": _l("You are on a waitlist"),
    "registration_promoted": _l("You moved up from the waitlist"),
    "registration_cancelled": _l("Your registration is cancelled"),
    # matchmaking days (meetings-service; reminders, open requests and the survey from notifications' timers)
    "meeting_requested": _l("Someone asks you for a meeting at a matchmaking day"),
    "meeting_accepted": _l("Your meeting request was accepted"),
    "meeting_declined": _l("Your meeting request was declined"),
    "meeting_scheduled": _l("A meeting has a time and table"),
    "meeting_cancelled": _l("A meeting was cancelled"),
    "meeting_reminder": _l("Reminder before a meeting"),
    "meeting_requests_pending": _l("Meeting requests waiting for your answer"),
    "meeting_survey": _l("Survey on how your meetings went"),
}
MODE_CHOICES = [("immediately", _l("E-mail at once")), ("digest", _l("In the e-mail digest")),
                ("inbox", _l("Only in the inbox here"))]


class PreferencesForm(FlaskForm):
    """The notification settings. ``email`` is the profile's e-mail consent and ``language`` the
    profile's language: one setting each, shown and saved here and in the profile alike."""
    email = BooleanField(_l("Send us e-mails about suggestions, contact requests and events"))
    webhook = BooleanField(_l("Also send everything to my webhooks"))
    frequency = SelectField(_l("How often the digest comes"), choices=[
        ("immediately", _l("No digest: every message at once")), ("daily", _l("Daily digest")),
        ("weekly", _l("Weekly digest"))])
    language = SelectField(_l("Language for e-mails and pages"))
    FIELD_MAP = {"channels.email": "email", "channels.webhook": "webhook", "channels": "email",
                 "frequency": "frequency", "language": "language", "contact.language": "language",
                 "consent.email": "email", "consent": "email"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.language.choices = i18n.choices("language")

    def kind_fields(self) -> list:
        return [field for name, field in self._fields.items() if name.startswith("kind_")]


def preferences_form(kinds, **kwargs) -> PreferencesForm:
    """The settings form with a choice (at once / digest / inbox only) per kind notifications-service
    names in the member's ``kinds``, in the order of ``KIND_LABELS``; an unknown kind by its id."""
    ordered = [kind for kind in KIND_LABELS if kind in kinds] + sorted(k for k in kinds if k not in KIND_LABELS)

    class Form(PreferencesForm):
        pass

    for kind in ordered:
        setattr(Form, f"kind_{kind}", SelectField(KIND_LABELS.get(kind, kind), choices=MODE_CHOICES))
    return Form(**kwargs)


class WebhookForm(FlaskForm):
    url = URLField(_l("Address (URL) of your system"), filters=[strip], validators=[
        DataRequired(_l("Please enter the address.")),
        # the messages carry personal data: only https, as the hint says
        Regexp(r"(?i)^https://", message=_l("The address must start with https://.")), at_most(2000)])
    description = StringField(_l("What it is for (optional)"), validators=[Optional(), at_most(500)])
    FIELD_MAP = {"url": "url", "description": "description"}


class DeleteForm(FlaskForm):
    confirm_name = StringField(_l("Type the name of your organisation to confirm"),
                               validators=[DataRequired(_l("Please type the name to confirm."))])


class EmptyForm(FlaskForm):
    """A button that changes something: CSRF only."""


def apply_errors(form: FlaskForm, fields: dict, said_in: str | None = None) -> list[str]:
    """Put a service's 422 field errors on the form's fields, in plain words in the page's language
    (``messages.plain``; ``said_in`` the answer's Content-Language), each once; return the ones no
    field takes (translated too)."""
    left: list[str] = []
    mapping = getattr(form, "FIELD_MAP", {})
    for name, messages in flatten_fields(fields).items():
        target = mapping.get(name)
        if target is None:  # offers.3.label → offers; region.x → region
            parts = name.split(".")
            target = mapping.get(parts[0]) or mapping.get(".".join(parts[:2]))
        field = getattr(form, target, None) if target else None
        index = name.split(".")[1] if name.count(".") >= 1 else ""
        if isinstance(field, FieldList) and index.isdigit() and int(index) < len(field.entries):
            field = field.entries[int(index)]  # offers.3.label: the fourth offer's input
        texts = plain_all(messages, said_in)
        if field is None:
            left.extend(text for text in texts if text not in left)
        else:
            field.errors = list(field.errors) + [text for text in texts if text not in field.errors]
    return left


def service_errors(form: FlaskForm, error) -> list[str]:
    """A service's 4xx answer (``api.ApiError``) on the form: field errors at their fields; the
    messages for the summary that no field takes; the answer's own message only when it named no
    field (never "validation failed" beside the fields)."""
    if error.fields:
        return apply_errors(form, error.fields, error.language)
    return [plain(error.message, error.language)]


def refusal(form: FlaskForm, error, conflict_field: str | None = None, conflict_text: str | None = None) -> list[str]:
    """A service's refusal of ``form``'s submission (``api.ApiError``) on the form; what every form view does
    in its ``except api.ApiError``.

    - 409 with ``conflict_field``: ``conflict_text`` (already in the page's language) at that field, alone;
    - 409 without one, and 422: ``service_errors`` (field errors at their fields, the rest for the summary);
    - any other status: the error is raised again (the error page says it in plain words).

    Returns the messages for the form's summary (``form_errors``), empty when each sits at its field."""
    if error.status == 409 and conflict_field:
        getattr(form, conflict_field).errors = [str(conflict_text)]
        return []
    if error.status in (409, 422):
        return service_errors(form, error)
    raise error


# --- staff forms -------------------------------------------------------------------------------------

KINDS = ("fair", "workshop", "meetup", "webinar", "conference")
KIND_NAMES = {"fair": _l("Trade fair"), "workshop": _l("Workshop"), "meetup": _l("Meetup"),
              "webinar": _l("Webinar"), "conference": _l("Conference")}
DEFAULT_TIMEZONE = "Europe/Berlin"


# The zones organizers of the associations choose most (their region, neighbours, trade-fair places),
# offered first; every other IANA zone follows, grouped by its region.
COMMON_TIMEZONES = ("Europe/Berlin", "Europe/Vienna", "Europe/Zurich", "Europe/Amsterdam", "Europe/Brussels",
                    "Europe/Paris", "Europe/London", "Europe/Warsaw", "Europe/Prague", "Europe/Rome", "Europe/Madrid",
                    "Europe/Stockholm", "Europe/Istanbul", "America/New_York", "America/Chicago",
                    "America/Los_Angeles", "America/Sao_Paulo", "Asia/Dubai", "Asia/Kolkata", "Asia/Shanghai",
                    "Asia/Singapore", "Asia/Tokyo", "Asia/Seoul", "Australia/Sydney", "UTC")
TIMEZONE_REGIONS = {"Europe": _l("Europe"), "America": _l("America"), "Asia": _l("Asia"), "Africa": _l("Africa"),
                    "Australia": _l("Australia"), "Pacific": _l("Pacific"), "Atlantic": _l("Atlantic"),
                    "Indian": _l("Indian Ocean"), "Antarctica": _l("Antarctica"), "Arctic": _l("Arctic")}


def timezone_label(zone: str, language: str) -> str:
    """A time zone as a person reads it, in ``language`` (CLDR names through Babel), with its IANA id, which
    the event pages name: "Tokio, Japan (Asia/Tokyo)" / "Tokyo, Japan (Asia/Tokyo)"; "UTC" as it is."""
    if zone == "UTC":
        return "UTC"
    locale = babel_core.Locale.parse(i18n.LOCALES.get(language, "de_DE"))
    city = babel_dates.get_timezone_location(zone, locale=locale, return_city=True)
    country = locale.territories.get(babel_core.get_global("zone_territories").get(zone, ""))
    return f"{city}, {country} ({zone})" if country else f"{city} ({zone})"


@functools.cache
def _timezone_groups(language: str) -> tuple[tuple[str, tuple[tuple[str, str], ...]], ...]:
    aliases = babel_core.get_global("zone_aliases")  # old names (Asia/Calcutta): valid, not offered twice
    zones = [z for z in zoneinfo.available_timezones() if z.split("/")[0] in TIMEZONE_REGIONS and "/" in z
             and z not in aliases and z not in COMMON_TIMEZONES]
    groups = []
    for region in TIMEZONE_REGIONS:
        labelled = sorted(((z, timezone_label(z, language)) for z in zones if z.split("/")[0] == region),
                          key=lambda choice: vocabulary.normalize(choice[1]))
        groups.append((region, tuple(labelled)))
    return tuple(groups)


def timezone_choices(current: str | None = None) -> dict[str, list[tuple[str, str]]]:
    """The time zone select's options, as WTForms' grouped choices (``<optgroup>``): the common zones first
    (Europe/Berlin at the top), then every other zone of the tz database by region, each labelled in the
    page's language with its IANA id (``timezone_label``). ``current``, a valid zone the lists leave out
    (an old name such as "Asia/Calcutta", "Etc/GMT-3" from the API), is offered first, so an event keeps it."""
    language = i18n.language()
    common = [(z, timezone_label(z, language)) for z in COMMON_TIMEZONES]
    choices = {str(_l("Frequently used")): common}
    for region, labelled in _timezone_groups(language):
        choices[str(TIMEZONE_REGIONS[region])] = list(labelled)
    offered = {value for group in choices.values() for value, _label in group}
    if current and current not in offered and _is_zone(current):
        common.insert(0, (current, timezone_label(current, language)))
    return choices


def _is_zone(name: str) -> bool:
    """Whether ``name`` is a zone of the tz database, by the rule events-service applies (``verbund.wallclock``)."""
    try:
        wallclock.zone(name)
    except wallclock.InvalidTime:
        return False
    return True


def _known_timezone(form, field) -> None:
    """Any zone of the tz database is valid, as for events-service, also one the select does not list."""
    if not isinstance(field.data, str) or not _is_zone(field.data):
        raise ValidationError(_l("Please choose a time zone from the list."))


class LocalDateTimeField(StringField):
    """An ``<input type="datetime-local">``: a wall-clock time in the event's time zone (ISO without offset)."""

    def __call__(self, **kwargs):
        kwargs.setdefault("type", "datetime-local")
        return super().__call__(**kwargs)


def _local_time(form, field) -> None:
    """A wall-clock time "2027-03-15T09:30" that exists: "2027-13-45T09:30" has the shape but no
    such day, and would otherwise reach the service (and come back as an error a round later)."""
    value = (field.data or "").strip()
    if not value:
        return
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?", value):
            raise ValueError(value)
        datetime.fromisoformat(value)
    except ValueError:
        raise ValidationError(_l("Please enter a date and time, e.g. 2027-03-15T09:30.")) from None


LOCAL_TIME = _local_time


def _parsed(field) -> datetime | None:
    """A time field's value when it is a valid wall-clock time, else None (its own error says why)."""
    if field.errors or not field.data:
        return None
    return datetime.fromisoformat(field.data.strip())


# events-service's bounds of an event (events/schemas.py EARLIEST_YEAR, LATEST_YEAR; events/domain.py
# MAX_DURATION): checked in the form too, so that they come with the form's own errors, not a round later.
EVENT_YEARS = (1970, 2999)
EVENT_MAX_DAYS = 31


def _add_error(field, text: str) -> None:
    """One more error at ``field`` (in the page's language already), each text once."""
    if text not in field.errors:
        field.errors = [*field.errors, text]


def web_address(schemes: tuple[str, ...] = ("http", "https")):
    """The services' web address rule (``verbund.schema_fields.Url``: the scheme, a host with a domain, only
    the characters RFC 3986 allows) checked in the form, in the same plain words as the service's 422."""
    rule = Url(schemes=set(schemes))

    def check(form, field) -> None:
        value = (field.data or "").strip()
        if value:
            try:
                rule.deserialize(value)
            except MarshmallowError as error:
                raise ValidationError(plain(str(error.messages[0]))) from None
    return check


class EventForm(FlaskForm):
    """A joint event as organizers create and edit it (events-service ``POST``/``PATCH /events``)."""
    title = StringField(_l("Title"), validators=[DataRequired(_l("Please enter a title.")), at_most(200),
                                                 plain_text()])
    description = TextAreaField(_l("Description (optional)"), validators=[Optional(), at_most(10_000),
                                                                          plain_text(multiline=True)])
    # No default: an empty first choice makes the organizer choose (a silent "Messe" went unnoticed).
    kind = SelectField(_l("Kind"), choices=[("", _l("Please choose"))] + [(k, KIND_NAMES[k]) for k in KINDS],
                       validators=[DataRequired(_l("Please choose a kind."))])
    organizers = MultiCheckboxField(_l("Organised by"), validators=[
        DataRequired(_l("Please choose at least one organising association."))])
    target_sectors = MultiCheckboxField(_l("For members of the sectors"))
    topics = MultiCheckboxField(_l("Topics"))
    timezone = SelectField(_l("Time zone"), default=DEFAULT_TIMEZONE, validate_choice=False,
                           validators=[_known_timezone])
    starts_at = LocalDateTimeField(_l("Starts"), validators=[DataRequired(_l("Please enter when it starts.")),
                                                             LOCAL_TIME])
    ends_at = LocalDateTimeField(_l("Ends"), validators=[DataRequired(_l("Please enter when it ends.")), LOCAL_TIME])
    registration_deadline = LocalDateTimeField(_l("Registration closes (optional)"),
                                               validators=[Optional(), LOCAL_TIME])
    venue_name = StringField(_l("Venue"), validators=[Optional(), at_most(200), plain_text()])
    venue_address = StringField(_l("Address"), validators=[Optional(), at_most(300), plain_text()])
    venue_city = StringField(_l("City"), validators=[Optional(), at_most(100), plain_text()])
    online_url = URLField(_l("Online address (optional)"), validators=[Optional(), at_most(500), web_address()])
    # as the page's language writes it: "1.000" on a German page, "1,000" on an English one
    capacity = WholeNumberField(_l("Places (seats)"), message=_l("Please enter a number from 1 to 100,000."),
                                validators=[InputRequired(_l("Please enter the number of places.")),
                                            NumberRange(min=1, max=100_000,
                                                        message=_l("Please enter a number from 1 to 100,000."))])

    # a new event's form carries a token of its own: a second submission of the same form (a double click,
    # a resent page) leads to the event the first created instead of scheduling it twice
    once = HiddenField()

    FIELD_MAP = {"title": "title", "description": "description", "kind": "kind", "organizers": "organizers",
                 "target_sectors": "target_sectors", "topics": "topics", "timezone": "timezone",
                 "starts_at": "starts_at", "ends_at": "ends_at", "registration_deadline": "registration_deadline",
                 "venue.name": "venue_name", "venue.address": "venue_address", "venue.city": "venue_city",
                 "venue": "venue_name", "online_url": "online_url", "capacity": "capacity"}

    def __init__(self, *args, stored: dict | None = None, **kwargs):
        """``stored``: the event as events-service holds it, when the form edits it (its times that do not
        move may lie in the past; its capacity cannot go below the confirmed seats)."""
        super().__init__(*args, **kwargs)
        self.stored = stored
        self.organizers.choices = i18n.choices("association")
        self.target_sectors.choices = i18n.choices("sector")
        self.topics.choices = i18n.topic_choices()
        self.timezone.choices = timezone_choices(self.timezone.data)

    def validate(self, extra_validators=None) -> bool:
        """Every field's own checks, then the rules between fields that events-service applies too
        (``events.domain.event_problems``: end after start, registration closing by the start, a venue
        or an online address), so that a person sees all mistakes at once; the service's own verdict
        (a time in the past, lowering below the confirmed seats) comes back as its field errors."""
        ok = super().validate(extra_validators)
        starts, ends = _parsed(self.starts_at), _parsed(self.ends_at)
        deadline = _parsed(self.registration_deadline)
        if starts and ends and ends <= starts:
            self.ends_at.errors = list(self.ends_at.errors) + [_l("The end must be after the start.")]
            ok = False
        if starts and deadline and deadline > starts:
            self.registration_deadline.errors = list(self.registration_deadline.errors) + [
                _l("Registration must close before the event starts.")]
            ok = False
        if not (self.venue_name.data or "").strip() and not (self.online_url.data or "").strip():
            self.venue_name.errors = list(self.venue_name.errors) + [
                _l("Please give a venue or an online address (or both).")]
            ok = False
        return self._service_rules() and ok

    def _service_rules(self) -> bool:
        """What events-service refuses beyond the rules between fields, said at the fields now, in the words
        of the service's own 422 (``messages.plain``): a year outside its range, a wall-clock time the clocks
        skip in the chosen zone (``verbund.wallclock``), more than 31 days, a start or deadline that is new
        or moved and not ahead, a capacity below the confirmed seats. False if any."""
        ok, moments = True, {}
        zone = self.timezone.data if not self.timezone.errors else None
        for field in (self.starts_at, self.ends_at, self.registration_deadline):
            local = _parsed(field)
            if local is None:
                continue
            if not EVENT_YEARS[0] <= local.year <= EVENT_YEARS[1]:
                _add_error(field, plain(f"must be between the years {EVENT_YEARS[0]} and {EVENT_YEARS[1]}"))
                ok = False
            elif zone:
                try:
                    moments[field.name] = wallclock.to_utc(local, zone)
                except wallclock.InvalidTime as error:
                    _add_error(field, plain(str(error)))
                    ok = False
        starts, ends = moments.get("starts_at"), moments.get("ends_at")
        if starts and ends and ends - starts > timedelta(days=EVENT_MAX_DAYS):
            _add_error(self.ends_at, plain(f"an event lasts at most {EVENT_MAX_DAYS} days"))
            ok = False
        now = datetime.now(UTC)
        for name in ("starts_at", "registration_deadline"):  # as the service: only a time that is new or moves
            moment, before = moments.get(name), (self.stored or {}).get(name)
            moved = before is None or moment != datetime.fromisoformat(before.replace("Z", "+00:00"))
            if moment is not None and moved and moment <= now:
                _add_error(getattr(self, name), plain("must lie in the future"))
                ok = False
        confirmed = (self.stored or {}).get("seats_confirmed") or 0
        if isinstance(self.capacity.data, int) and not self.capacity.errors and self.capacity.data < confirmed:
            _add_error(self.capacity, plain(f"{confirmed} seat(s) are already confirmed"))
            ok = False
        return ok

    def to_event(self) -> dict:
        """The event JSON of events-service: times as wall-clock times in the chosen time zone."""
        venue = None
        if (self.venue_name.data or "").strip():
            venue = {"name": self.venue_name.data.strip(), "address": (self.venue_address.data or "").strip() or None,
                     "city": (self.venue_city.data or "").strip() or None}
        return {
            "title": self.title.data.strip(), "description": (self.description.data or "").strip() or None,
            "kind": self.kind.data, "organizers": self.organizers.data, "target_sectors": self.target_sectors.data,
            "topics": self.topics.data, "timezone": self.timezone.data, "starts_at": self.starts_at.data,
            "ends_at": self.ends_at.data, "registration_deadline": self.registration_deadline.data or None,
            "venue": venue, "online_url": self.online_url.data or None, "capacity": self.capacity.data,
        }

    def fill(self, event: dict) -> None:
        """Show a stored event: its times as the wall-clock times of its own time zone."""
        from datetime import datetime
        from zoneinfo import ZoneInfo

        zone = ZoneInfo(event.get("timezone") or DEFAULT_TIMEZONE)

        def local(value):
            if not value:
                return None
            moment = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(zone)
            return moment.strftime("%Y-%m-%dT%H:%M")

        venue = event.get("venue") or {}
        self.title.data, self.description.data, self.kind.data = event["title"], event.get("description"), event["kind"]
        self.organizers.data, self.target_sectors.data = event["organizers"], event.get("target_sectors") or []
        self.topics.data, self.timezone.data = event.get("topics") or [], event.get("timezone") or DEFAULT_TIMEZONE
        self.starts_at.data, self.ends_at.data = local(event["starts_at"]), local(event["ends_at"])
        self.registration_deadline.data = local(event.get("registration_deadline"))
        self.venue_name.data, self.venue_address.data = venue.get("name"), venue.get("address")
        self.venue_city.data, self.online_url.data = venue.get("city"), event.get("online_url")
        self.capacity.data = event["capacity"]


class CancelEventForm(FlaskForm):
    reason = TextAreaField(_l("Reason (the registered members read it)"), filters=[strip],
                           validators=[Optional(), at_most(2000), plain_text(multiline=True)])
    FIELD_MAP = {"reason": "reason"}


class MemberSearchForm(FlaskForm):
    """The directory's filters (members-service ``GET /members``); a GET form, so no CSRF."""
    class Meta:
        csrf = False

    q = StringField(_l("Name contains"), validators=[Optional(), at_most(200)])
    sector = SelectField(_l("Sector"), validators=[Optional()])
    state = SelectField(_l("Federal state"), validators=[Optional()])
    association = SelectField(_l("Association"), validators=[Optional()])
    competency = StringField(_l("Competency (offered or sought)"), validators=[Optional(), at_most(200)])
    topic = SelectField(_l("Topic"), validators=[Optional()])
    sme = SelectField(_l("Size"), choices=[("", _l("All")), ("true", _l("SMEs only")), ("false", _l("Large only"))],
                      validators=[Optional()])
    FIELD_MAP = {key: key for key in ("q", "sector", "state", "association", "competency", "topic", "sme")}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        everything = [("", _l("All"))]
        self.sector.choices = everything + i18n.choices("sector")
        self.state.choices = everything + sorted(i18n.choices("state"), key=lambda c: c[1])
        self.association.choices = everything + i18n.choices("association")
        self.topic.choices = everything + i18n.topic_choices()

    def query(self) -> dict:
        return {name: (getattr(self, name).data or "").strip() for name in self.FIELD_MAP
                if (getattr(self, name).data or "").strip()}


class ImportForm(FlaskForm):
    file = FileField(_l("Member list (CSV or Excel .xlsx)"), validators=[
        FileRequired(_l("Please choose a file.")),
        FileAllowed(["csv", "xlsx"], _l("Please choose a CSV or Excel (.xlsx) file."))])
    FIELD_MAP = {"file": "file"}


class ConfirmImportForm(FlaskForm):
    """The real import of the file checked in the dry run. Imported members who gave e-mail consent in
    the file get a sign-in link; ticking the box sends it to every imported member."""
    invite_all = BooleanField(_l("Also send the sign-in link to members whose row gives no e-mail consent"))


# The event families' names (verbund.catalogue.families()); a family the catalogue gains later is
# offered at once, by its pattern, until it gets a name here.
FAMILY_NAMES = {"member": _l("Member profiles"), "contact": _l("Contact requests"), "event": _l("Joint events"),
                "registration": _l("Registrations"), "match": _l("Partner suggestions"),
                "project": _l("Partner projects"), "meeting": _l("Matchmaking meetings"),
                "notification": _l("Notification delivery"), "integrator": _l("Integrator accounts")}


def event_scopes() -> dict[str, str]:
    """What an integrator may read, in the page's language: ``{"#": everything, "<family>.*":
    "Name (<family>.*)"}`` for every family of the kit's event catalogue."""
    scopes = {"#": str(_l("Every event type (also the replay of past events)"))}
    for family in catalogue.families():
        pattern = f"{family}.*"
        name = FAMILY_NAMES.get(family)
        scopes[pattern] = f"{name} ({pattern})" if name else pattern
    return scopes


class IntegratorForm(FlaskForm):
    """A new integrator (members-service ``POST /integrators``): a name, the event types it may read,
    whether it may see personal data."""
    name = StringField(_l("Name"), filters=[strip], validators=[
        DataRequired(_l("Please enter a name.")),
        Regexp(r"^[a-z0-9][a-z0-9-]{1,40}$", message=_l("Use 2 to 41 lowercase letters, digits or dashes, "
                                                          "e.g. crm-sync."))])
    events = MultiCheckboxField(_l("May read"), validators=[DataRequired(_l("Please choose at least one kind of "
                                                                           "event."))])
    personal = BooleanField(_l("May see personal data (contact persons and e-mail addresses of members)"))
    FIELD_MAP = {"name": "name", "events": "events", "personal": "personal"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.events.choices = list(event_scopes().items())


class MoveRegistrationForm(FlaskForm):
    """Move a registration to another event of the same organizers (events-service ``…/move``)."""
    to_event_id = SelectField(_l("Move to"), validators=[DataRequired(_l("Please choose the other event."))])
    FIELD_MAP = {"to_event_id": "to_event_id"}


class StaffInviteForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(_l("Please enter a name.")), at_most(200),
                                               plain_text()])
    email = EmailField(_l("E-mail address"), validators=[
        DataRequired(_l("Please enter an e-mail address.")),
        Email(_l("This is not a valid e-mail address."), check_deliverability=False), at_most(320)])
    role = SelectField(_l("Role"), choices=[("organizer", _l("Organizer")), ("admin", _l("Admin"))])
    association = SelectField(_l("Association (organizers)"), validators=[Optional()])
    language = SelectField(_l("Language of the invitation"))
    FIELD_MAP = {"name": "name", "email": "email", "role": "role", "association": "association",
                 "language": "language"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.association.choices = [("", _l("None (admins)"))] + i18n.choices("association")
        self.language.choices = i18n.choices("language")


# --- matchmaking days (meetings-service) ----------------------------------------------------------------

SESSION_ROWS = 3  # sessions on the set-up form (a day has a morning and an afternoon; a third for a long day)
BREAK_ROWS = 3
REQUEST_MODES = {"approval": _l("The member asked accepts or declines"),
                 "automatic": _l("Requests are accepted automatically")}
SCHEDULING_MODES = {"participants": _l("Participants pick a slot when they accept"),
                    "organizer": _l("The organizers schedule all meetings centrally")}
WHO_MAY_REQUEST = {"all": _l("Every participant may ask every other"),
                   "by_sector": _l("Only between the sector pairs below")}


class PeriodForm(FlaskForm):
    """A session or a break: wall-clock times in the event's time zone (empty: not used)."""
    class Meta:
        csrf = False

    starts_at = LocalDateTimeField(_l("From"), validators=[Optional(), LOCAL_TIME])
    ends_at = LocalDateTimeField(_l("To"), validators=[Optional(), LOCAL_TIME])


class MatchmakingSetupForm(FlaskForm):
    """The matchmaking set-up of an event (meetings-service ``PUT /events/{id}/meetings/setup``)."""
    sessions = FieldList(FormField(PeriodForm), label=_l("Meeting time blocks"), min_entries=SESSION_ROWS,
                         max_entries=SESSION_ROWS)
    breaks = FieldList(FormField(PeriodForm), label=_l("Breaks within the time blocks"), min_entries=BREAK_ROWS,
                       max_entries=BREAK_ROWS)
    slot_minutes = IntegerField(_l("Length of a meeting (minutes)"), default=30, validators=[
        InputRequired(_l("Please enter the length of a meeting.")),
        NumberRange(min=15, max=60, message=_l("Please enter a number from 15 to 60."))])
    mode = SelectField(_l("Where people meet"), choices=[("tables", _l("At numbered tables")),
                                                        ("meeting_points", _l("At each participant's own meeting point "
                                                                              "(a booth)"))], default="tables")
    tables = IntegerField(_l("Number of tables"), default=10, validators=[
        Optional(), NumberRange(min=1, max=1000, message=_l("Please enter a number from 1 to 1,000."))])
    max_per_session = IntegerField(_l("Most meetings per participant and time block"), default=6, validators=[
        InputRequired(_l("Please fill in this field.")),
        NumberRange(min=1, max=100, message=_l("Please enter a number from 1 to 100."))])
    max_open_requests = IntegerField(_l("Most open requests a participant may have sent"), default=20, validators=[
        InputRequired(_l("Please fill in this field.")),
        NumberRange(min=1, max=500, message=_l("Please enter a number from 1 to 500."))])
    request_expiry_hours = IntegerField(_l("A request expires after (hours)"), default=72, validators=[
        InputRequired(_l("Please fill in this field.")),
        NumberRange(min=1, max=240, message=_l("Please enter a number from 1 to 240."))])
    who_may_request = SelectField(_l("Who may ask whom"), choices=list(WHO_MAY_REQUEST.items()), default="all")
    sector_pairs = MultiCheckboxField(_l("Sector pairs that may ask each other"))
    request_mode = SelectField(_l("Requests"), choices=list(REQUEST_MODES.items()), default="approval")
    scheduling_mode = SelectField(_l("Scheduling"), choices=list(SCHEDULING_MODES.items()), default="participants")

    FIELD_MAP = {"sessions": "sessions", "breaks": "breaks", "slot_minutes": "slot_minutes", "mode": "mode",
                 "tables": "tables", "max_per_session": "max_per_session", "max_open_requests": "max_open_requests",
                 "request_expiry_minutes": "request_expiry_hours", "who_may_request": "who_may_request",
                 "sector_pairs": "sector_pairs", "request_mode": "request_mode",
                 "scheduling_mode": "scheduling_mode"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        sectors = i18n.choices("sector")
        self.sector_pairs.choices = [(f"{a}+{b}", f"{na} – {nb}") for i, (a, na) in enumerate(sectors)
                                     for b, nb in sectors[i:]]

    def validate(self, extra_validators=None) -> bool:
        ok = super().validate(extra_validators)
        if not any(entry.starts_at.data and entry.ends_at.data for entry in self.sessions):
            self.sessions.errors = list(self.sessions.errors) + [_l("Please give at least one time block.")]
            ok = False
        for rows in (self.sessions, self.breaks):
            for entry in rows:
                if bool(entry.starts_at.data) != bool(entry.ends_at.data):
                    entry.ends_at.errors = list(entry.ends_at.errors) + [_l("Please give both the start and the end.")]
                    ok = False
        # empty only: 0 already has its range error, and one message per mistake is enough
        if self.mode.data == "tables" and self.tables.data is None and not self.tables.errors:
            self.tables.errors = list(self.tables.errors) + [_l("Please enter the number of tables.")]
            ok = False
        if self.who_may_request.data == "by_sector" and not self.sector_pairs.data:
            self.sector_pairs.errors = list(self.sector_pairs.errors) + [_l("Please choose at least one pair.")]
            ok = False
        return ok

    @staticmethod
    def _periods(rows: FieldList) -> list[dict]:
        return [{"starts_at": e.starts_at.data, "ends_at": e.ends_at.data} for e in rows
                if e.starts_at.data and e.ends_at.data]

    def to_setup(self) -> dict:
        """The set-up JSON of meetings-service; the expiry in minutes, as the service counts it."""
        tables = self.mode.data == "tables"
        return {"sessions": self._periods(self.sessions), "breaks": self._periods(self.breaks),
                "slot_minutes": self.slot_minutes.data, "mode": self.mode.data,
                "tables": self.tables.data if tables else None, "max_per_session": self.max_per_session.data,
                "max_open_requests": self.max_open_requests.data,
                "request_expiry_minutes": self.request_expiry_hours.data * 60,
                "who_may_request": self.who_may_request.data,
                "sector_pairs": [pair.split("+") for pair in self.sector_pairs.data]
                if self.who_may_request.data == "by_sector" else [],
                "request_mode": self.request_mode.data, "scheduling_mode": self.scheduling_mode.data}

    def fill(self, setup: dict) -> None:
        """Show a stored set-up: its times as the wall-clock times of the event's zone."""
        from datetime import datetime
        from zoneinfo import ZoneInfo

        zone = ZoneInfo(setup.get("timezone") or DEFAULT_TIMEZONE)

        def local(value):
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if moment.tzinfo is not None:
                moment = moment.astimezone(zone)
            return moment.strftime("%Y-%m-%dT%H:%M")

        for rows, periods in ((self.sessions, setup.get("sessions") or []), (self.breaks, setup.get("breaks") or [])):
            for entry, period in zip(rows, periods, strict=False):
                entry.starts_at.data, entry.ends_at.data = local(period["starts_at"]), local(period["ends_at"])
        self.slot_minutes.data, self.mode.data = setup["slot_minutes"], setup.get("mode") or "tables"
        self.tables.data, self.max_per_session.data = setup.get("tables"), setup["max_per_session"]
        self.max_open_requests.data = setup["max_open_requests"]
        self.request_expiry_hours.data = max(1, round(setup["request_expiry_minutes"] / 60))
        self.who_may_request.data = setup["who_may_request"]
        self.sector_pairs.data = ["+".join(sorted(pair, key=[c[0] for c in i18n.choices("sector")].index))
                                  for pair in setup.get("sector_pairs") or []]
        self.request_mode.data, self.scheduling_mode.data = setup["request_mode"], setup["scheduling_mode"]


class AvailabilityForm(FlaskForm):
    """The slots a participant can meet in (all ticked when it opts in)."""
    slots = MultiCheckboxField(_l("I can meet in these slots"), coerce=int)
    meeting_point = StringField(_l("Where to find me (booth or meeting point)"),
                                validators=[Optional(), at_most(200)])
    FIELD_MAP = {"available": "slots", "meeting_point": "meeting_point"}


class MeetingRequestForm(FlaskForm):
    message = TextAreaField(_l("Your message (optional)"), validators=[Optional(), at_most(1000)])
    FIELD_MAP = {"message": "message", "recipient_id": "message"}


class AcceptMeetingForm(FlaskForm):
    """Accept with a slot both are free in, or leave the slot to the organizers ("" → null)."""
    slot = SelectField(_l("When to meet"), validators=[Optional()])
    FIELD_MAP = {"slot": "slot"}


class RescheduleMeetingForm(FlaskForm):
    """Move an accepted meeting to another slot both sides have free (meetings-service checks it again)."""
    slot = SelectField(_l("New time"), validators=[DataRequired(message=_l("Please choose a time."))])
    FIELD_MAP = {"slot": "slot"}


class ReasonForm(FlaskForm):
    reason = TextAreaField(_l("Reason (optional; the other side reads it)"), validators=[Optional(), at_most(1000)])
    FIELD_MAP = {"reason": "reason"}


class PlacementForm(FlaskForm):
    """An organizer moves one meeting (locked, so "schedule all" keeps it)."""
    slot = SelectField(_l("Slot"), validators=[DataRequired(_l("Please choose a slot."))])
    table = SelectField(_l("Table"), validators=[Optional()])
    FIELD_MAP = {"slot": "slot", "table": "table"}


OUTCOMES = {"no_further_contact": _l("No further contact"), "useful_later": _l("Contact useful for later"),
            "negotiation": _l("Negotiation started"), "agreement": _l("Cooperation agreement reached")}


class MeetingOutcomeForm(FlaskForm):
    """After the meeting: did it take place, and what came of it (the follow-up survey's scale)."""
    took_place = RadioField(_l("Did the meeting take place?"), choices=[("yes", _l("Yes")), ("no", _l("No"))],
                            validators=[Optional()])
    outcome = RadioField(_l("What came of it?"), choices=list(OUTCOMES.items()), validators=[Optional()])
    led_to_project = BooleanField(_l("It led to a joint project"))
    FIELD_MAP = {"took_place": "took_place", "outcome": "outcome", "led_to_project": "led_to_project"}

    def validate(self, extra_validators=None) -> bool:
        ok = super().validate(extra_validators)
        if not self.took_place.data and not self.outcome.data:
            self.took_place.errors = list(self.took_place.errors) + [_l("Please answer at least one question.")]
            ok = False
        if self.took_place.data == "no" and self.outcome.data:
            self.outcome.errors = list(self.outcome.errors) + [
                _l("A meeting that did not take place has no outcome; leave this empty.")]
            ok = False
        return ok
