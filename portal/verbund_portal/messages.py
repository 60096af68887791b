"""The services' error messages in the page's language and in plain words.

The services answer in English for developers ("127.0.0.1 is a loopback address", "must not
contain a control or invalid character (U+202E at position 36)", "Not a valid URL."). A member
sees the portal's own catalogue message instead, without code points, ids or "validation
failed". A message the portal does not know is shown as the service wrote it when the service
said it wrote it for people in the page's language (Content-Language, members-service's import
refusals: the portal forwards the page's language as Accept-Language); otherwise it becomes
"Please check this entry." and is logged (so the next one can be added here). Each message
appears once at its field.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Callable

from flask_babel import gettext as _
from flask_babel import ngettext

log = logging.getLogger("verbund_portal.messages")

_NUMBER = r"-?\d+(?:\.\d+)?"


def _fixed(text: Callable[[], str]) -> Callable[[re.Match], str]:
    return lambda match: text()


# service message (regular expression, searched) → the catalogue message; the first that matches wins.
KNOWN: list[tuple[re.Pattern, Callable[[re.Match], str]]] = [
    (re.compile(r"must not contain a tab or line break"),
     _fixed(lambda: _("Please write this on one line, without tabs or line breaks."))),
    (re.compile(r"must not contain a control or invalid character"),
     _fixed(lambda: _("This contains an invisible or special character that is not allowed, perhaps copied "
                      "along from another document. Please type the text again."))),
    (re.compile(r"must contain a letter or digit"),
     _fixed(lambda: _("Please name it in words: at least one letter or digit."))),
    (re.compile(r"must contain a visible character"),
     _fixed(lambda: _("This contains no visible character, only invisible ones (perhaps copied along from "
                      "another document). Please type the text."))),
    (re.compile(r"must start with http:// or https://"),
     _fixed(lambda: _("The address must start with https://."))),
    (re.compile(r"\b(loopback|private|link-local|multicast|reserved|unspecified) address|not a public address|"
                r"private or loopback"),
     _fixed(lambda: _("This address is in a private network or on your own computer. Verbund can only reach "
                      "addresses on the public internet."))),
    (re.compile(r"host name is too long"),
     _fixed(lambda: _("This server name is too long. Please check the address."))),
    (re.compile(r"does not resolve"),
     _fixed(lambda: _("No server answers to this address. Please check its spelling."))),
    (re.compile(r"credentials in the URL"),
     _fixed(lambda: _("Please leave out the user name and password in the address."))),
    (re.compile(r"not allowed in a URL|not a valid URL|Not a valid URL|the URL has no host|not a valid IP address",
                re.IGNORECASE),
     _fixed(lambda: _("This is not a valid web address. Example: https://www.example.de"))),
    (re.compile(r"has (?P<capacity>\d+) seat\(s\) in all"),
     lambda m: ngettext("The event has %(num)s place in all. Please ask for at most that many.",
                        "The event has %(num)s places in all. Please ask for at most that many.",
                        int(m.group("capacity")))),
    # events-service: an event's capacity cannot go below what is booked (events/domain.py, capacity_problem)
    (re.compile(r"(?P<seats>\d+) seat\(s\) are already confirmed"),
     lambda m: ngettext("%(num)s place is already confirmed, so the capacity cannot be lower. Enter at least "
                        "%(num)s, or cancel registrations on the event's page first.",
                        "%(num)s places are already confirmed, so the capacity cannot be lower. Enter at least "
                        "%(num)s, or cancel registrations on the event's page first.",
                        int(m.group("seats")))),
    (re.compile(r"a registration asks for (?P<seats>\d+) seats; the capacity cannot go below"),
     lambda m: _("One registration alone is for %(num)s places, so the capacity cannot be lower. Enter at least "
                 "%(num)s, or cancel that registration on the event's page first.", num=m.group("seats"))),
    (re.compile(r"must be between the years (?P<first>\d+) and (?P<last>\d+)"),
     lambda m: _("Please enter a date between the years %(first)s and %(last)s.", first=m.group("first"),
                 last=m.group("last"))),
    # kit schema_fields.Email: mail cannot be delivered to a local part with umlauts (no SMTPUTF8)
    (re.compile(r"part before the @ must be written without umlauts"),
     _fixed(lambda: _("Mail cannot be delivered to an address with umlauts or accents before the @. Please enter "
                      "the spelling without them that your mail provider gives (such as mueller@… for "
                      "müller@…)."))),
    (re.compile(r"Not a valid email address|not a valid e-mail", re.IGNORECASE),
     _fixed(lambda: _("This is not a valid e-mail address."))),
    (re.compile(r"Missing data for required field|Field may not be null"),
     _fixed(lambda: _("Please fill in this field."))),
    (re.compile(r"Longer than maximum length (?P<max>\d+)"),
     lambda m: _("At most %(max)s characters.", max=m.group("max"))),
    (re.compile(r"Shorter than minimum length (?P<min>\d+)"),
     lambda m: _("At least %(min)s characters.", min=m.group("min"))),
    (re.compile(r"Length must be between (?P<min>\d+) and (?P<max>\d+)"),
     lambda m: _("From %(min)s to %(max)s characters.", min=m.group("min"), max=m.group("max"))),
    (re.compile(rf"greater than or equal to (?P<min>{_NUMBER}) and less than or equal to (?P<max>{_NUMBER})"),
     lambda m: _("Please enter a number from %(min)s to %(max)s.", min=m.group("min"), max=m.group("max"))),
    (re.compile(r"Not a valid integer|Not a valid number"), _fixed(lambda: _("Please enter a whole number."))),
    (re.compile(r"German postcode has five digits"), _fixed(lambda: _("A German postcode has five digits."))),
    (re.compile(r"already (registered|used|in use)|is taken", re.IGNORECASE),
     _fixed(lambda: _("This is already used by another organisation."))),
    (re.compile(r"lists each value once"), _fixed(lambda: _("Please name each one only once."))),
    (re.compile(r"unknown topic|Must be one of"), _fixed(lambda: _("Please choose one of the options."))),
    # events-service's rules on an event's times and place (events/domain.py, event_problems)
    (re.compile(r"must be after starts_at"), _fixed(lambda: _("The end must be after the start."))),
    (re.compile(r"an event lasts at most (?P<days>\d+) days"),
     lambda m: _("An event lasts at most %(days)s days.", days=m.group("days"))),
    (re.compile(r"must not be after starts_at"),
     _fixed(lambda: _("Registration must close before the event starts."))),
    (re.compile(r"must lie in the future"), _fixed(lambda: _("Please choose a time in the future."))),
    (re.compile(r"give a venue or an online_url"),
     _fixed(lambda: _("Please give a venue or an online address (or both)."))),
    # meetings-service: a matchmaking day's set-up (meetings/domain.py, setup_problems) and its requests
    (re.compile(r"(?:session|time block) (?P<n>\d+) must end after it starts"),
     lambda m: _("Time block %(number)s must end after it starts.", number=m.group("n"))),
    (re.compile(r"(?:session|time block) (?P<n>\d+) lies outside the event's time"),
     lambda m: _("Time block %(number)s lies outside the event's time.", number=m.group("n"))),
    (re.compile(r"a slot of (?P<minutes>\d+) minutes is longer than (?:session|time block) (?P<n>\d+)"),
     lambda m: _("A meeting of %(minutes)s minutes does not fit into time block %(number)s.",
                 minutes=m.group("minutes"), number=m.group("n"))),
    (re.compile(r"(?:sessions|time blocks) overlap"),
     _fixed(lambda: _("Two time blocks overlap. Please separate them."))),
    (re.compile(r"break (?P<n>\d+) must end after it starts"),
     lambda m: _("Break %(number)s must end after it starts.", number=m.group("n"))),
    (re.compile(r"break (?P<n>\d+) lies outside every (?:session|time block)"),
     lambda m: _("Break %(number)s lies outside every time block.", number=m.group("n"))),
    (re.compile(r"give between 1 and 1000 tables"), _fixed(lambda: _("Please enter a number from 1 to 1,000."))),
    (re.compile(r"say how many tables"), _fixed(lambda: _("Please enter the number of tables."))),
    (re.compile(r"list the sector pairs"), _fixed(lambda: _("Please choose at least one pair."))),
    (re.compile(r"the clocks go forward"),
     _fixed(lambda: _("This time does not exist on that day: the clocks go forward then."))),
    (re.compile(r"meetings already hold slots"),
     _fixed(lambda: _("Meetings already hold slots, so the time blocks and the meeting length cannot change now. "
                      "Cancel or move those meetings first."))),
    (re.compile(r"meetings are booked at tables that would no longer exist"),
     _fixed(lambda: _("Meetings are booked at tables that would no longer exist. Move them first."))),
    (re.compile(r"cannot request a meeting with yourself"),
     _fixed(lambda: _("You cannot ask yourself for a meeting."))),
    (re.compile(r"does not take part in meetings at this event"),
     _fixed(lambda: _("This organisation does not take part in the matchmaking (any more)."))),
    (re.compile(r"arranged between the sectors the organizers chose"),
     _fixed(lambda: _("At this event, meetings are arranged between the sectors the organizers chose, not "
                      "with this one."))),
    (re.compile(r"already an open request between you two \(accepted\)"),
     _fixed(lambda: _("You already have a meeting with this organisation; you will find it in your agenda."))),
    (re.compile(r"already an open request between you two"),
     _fixed(lambda: _("There is already an open request between you two."))),
    (re.compile(r"you have (?P<n>\d+) open requests"),
     lambda m: _("You have %(number)s open requests, the most this event allows. Wait for answers or withdraw "
                 "one.", number=m.group("n"))),
    (re.compile(r"this request expired on"),
     _fixed(lambda: _("This request has expired and can no longer be answered. You may ask again."))),
    (re.compile(r"this request was already answered"), _fixed(lambda: _("This request was already answered."))),
    (re.compile(r"is not free for both of you"),
     _fixed(lambda: _("This time is not free for both of you. Please pick another."))),
    (re.compile(r"every table is taken in slot"),
     _fixed(lambda: _("Every table is taken at this time. Please pick another."))),
    (re.compile(r"someone else took this slot or table"),
     _fixed(lambda: _("Someone else took this time or table a moment ago. Please pick another."))),
    (re.compile(r"table (?P<table>\d+) is taken in slot"),
     lambda m: _("Table %(table)s is taken at this time.", table=m.group("table"))),
    (re.compile(r"there are (?P<n>\d+) tables"), lambda m: _("There are %(number)s tables.", number=m.group("n"))),
    (re.compile(r"the organizers schedule (the|this) meeting"),
     _fixed(lambda: _("At this event the organizers schedule the meetings."))),
    (re.compile(r"the schedule is already final"), _fixed(lambda: _("The schedule is already final."))),
    (re.compile(r"report on it afterwards"),
     _fixed(lambda: _("You can say how it went once the meeting is over."))),
    (re.compile(r"only a scheduled meeting can be reported on"),
     _fixed(lambda: _("Only a meeting that had a time can be reported on."))),
    (re.compile(r"opt in to the meetings of this event first"),
     _fixed(lambda: _("Please take part in the matchmaking first."))),
    (re.compile(r"there is nothing to cancel|only an accepted meeting"),
     _fixed(lambda: _("This meeting has changed meanwhile. Please reload the page."))),
    (re.compile(r"no such slot"), _fixed(lambda: _("Please choose one of the options."))),
]


def in_page_language(said_in: str | None) -> bool:
    """Whether a service's answer in ``said_in`` (its Content-Language, e.g. "de" or "de-DE") is in
    the page's language."""
    from verbund_portal.i18n import language

    return bool(said_in) and said_in.split(",")[0].strip()[:2].lower() == language()


def plain(message: str, said_in: str | None = None) -> str:
    """The catalogue message for one service message, in the page's language. An unknown one is
    shown as it is when the service answered in the page's language (``said_in``, its
    Content-Language); else it is logged and becomes "Please check this entry."."""
    for pattern, text in KNOWN:
        match = pattern.search(message or "")
        if match:
            return text(match)
    if message and in_page_language(said_in):
        return message
    log.warning("service message without a translation: %r", message)
    return _("Please check this entry.")


def plain_all(messages: list[str], said_in: str | None = None) -> list[str]:
    """Several messages in plain words, each once, in their order (``said_in``: see ``plain``)."""
    seen: list[str] = []
    for message in messages:
        text = plain(message, said_in)
        if text not in seen:
            seen.append(text)
    return seen


def page_message(status: int, message: str) -> str:
    """What a 403/404/409/410/429 page says, in plain words (the service's own words are logged)."""
    log.info("service refused (%s): %s", status, message)
    if status == 403:
        return _("You are not allowed to do this: it is meant for another organisation, or only the cluster "
                 "office may do it.")
    if status in (404, 410):
        return _("We could not find this. It may have been removed, or the address is incomplete.")
    if status == 409:
        return _("This has changed meanwhile, so it cannot be done now. Please reload the page.")
    if status == 429:
        return _("That was a lot of requests in a short time. Please wait a while and try again.")
    return _("That did not work. Please check your entries and try again.")
