"""The one envelope: CloudEvents 1.0 in structured JSON mode.

Every event is validated against the envelope rules and its type's versioned
JSON Schema (``verbund/event_schemas``) when it is written to the outbox and
again when it is consumed, so an event that breaks its contract is refused
at publish time and dead-lettered at consume time.
"""
from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from functools import cache
from importlib import resources

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource

from verbund import catalogue

CONTENT_TYPE = "application/cloudevents+json"
SPECVERSION = "1.0"
REQUIRED = ("id", "source", "type", "specversion", "time", "subject", "datacontenttype", "dataschema", "data")


class InvalidEvent(ValueError):
    """An event that is not a valid CloudEvent of a known type and schema."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def isoformat(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def new_event(type: str, source: str, subject: str, data: dict, *, id: str | None = None,
              time: datetime | None = None) -> dict:
    """A CloudEvent of a catalogued type, validated before it is returned."""
    event = {
        "specversion": SPECVERSION,
        "id": id or str(uuid.uuid4()),
        "source": source,
        "type": type,
        "subject": subject,
        "time": isoformat(time or utcnow()),
        "datacontenttype": "application/json",
        "dataschema": catalogue.event_type(type).dataschema if type in catalogue.EVENT_TYPES else "",
        "data": data,
    }
    validate(event)
    return event


@cache
def schema_documents() -> dict[str, dict]:
    """Every JSON Schema the kit ships, by its ``$id``."""
    folder = resources.files("verbund") / "event_schemas"
    documents = {}
    for entry in folder.iterdir():
        if entry.name.endswith(".json"):
            document = json.loads(entry.read_text(encoding="utf-8"))
            documents[document["$id"]] = document
    return documents


@cache
def _validator(dataschema: str) -> Draft202012Validator:
    documents = schema_documents()
    if dataschema not in documents:
        raise InvalidEvent(f"unknown dataschema {dataschema!r}")
    registry = Registry().with_resources(
        (uri, Resource.from_contents(document)) for uri, document in documents.items()
    )
    return Draft202012Validator(documents[dataschema], registry=registry, format_checker=FormatChecker())


def validate(event: object) -> None:
    """Raise InvalidEvent with a readable reason unless ``event`` keeps the contract."""
    if not isinstance(event, dict):
        raise InvalidEvent("event is not a JSON object")
    missing = [name for name in REQUIRED if name not in event]
    if missing:
        raise InvalidEvent(f"missing CloudEvents attributes: {', '.join(missing)}")
    if event["specversion"] != SPECVERSION:
        raise InvalidEvent(f"specversion must be {SPECVERSION}")
    for name in ("id", "source", "type", "subject"):
        if not isinstance(event[name], str) or not event[name]:
            raise InvalidEvent(f"{name} must be a non-empty string")
    if event["type"] not in catalogue.EVENT_TYPES:
        raise InvalidEvent(f"unknown event type {event['type']!r}")
    try:
        datetime.fromisoformat(str(event["time"]).replace("Z", "+00:00"))
    except ValueError:
        raise InvalidEvent("time is not an RFC 3339 timestamp") from None
    if event["datacontenttype"] != "application/json":
        raise InvalidEvent("datacontenttype must be application/json")
    expected = catalogue.event_type(event["type"]).dataschema
    if event["dataschema"] != expected:
        raise InvalidEvent(f"dataschema {event['dataschema']!r} is not {expected!r}")
    error = next(iter(sorted(_validator(expected).iter_errors(event["data"]), key=lambda e: e.path)), None)
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path) or "(root)"
        raise InvalidEvent(f"data does not match {expected} at {where}: {error.message}")


def dumps(event: dict) -> bytes:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def loads(body: bytes | str) -> dict:
    """Parse and validate a message body; InvalidEvent says why it is refused."""
    try:
        event = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidEvent(f"body is not JSON: {exc}") from None
    validate(event)
    return event
