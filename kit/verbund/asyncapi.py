"""The AsyncAPI 3.0 document of the public event contract (docs/asyncapi.yaml),
generated from the catalogue and the very JSON Schemas the code validates
with. ``verbund asyncapi`` writes it; a test fails when the committed file
is stale."""
from __future__ import annotations

import copy

import yaml

from verbund import catalogue, envelope

SCHEMA_FORMAT = "application/schema+json;version=draft-07"


def _bundle(schema: dict, documents: dict[str, dict], root: dict | None = None) -> dict:
    """The schema with every ``$ref`` (to another schema file or to ``#/$defs``) inlined,
    so that each message payload stands alone in the document."""
    root = schema if root is None else root
    if isinstance(schema, list):
        return [_bundle(item, documents, root) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        ref = schema["$ref"]
        if ref.startswith("#/$defs/"):
            target, target_root = root["$defs"][ref.removeprefix("#/$defs/")], root
        else:
            target_root = documents[ref]
            target = target_root
        merged = {**_bundle(target, documents, target_root), **{k: v for k, v in schema.items() if k != "$ref"}}
        return _bundle(merged, documents, root)
    return {key: _bundle(value, documents, root) for key, value in schema.items()
            if key not in ("$schema", "$id", "$defs")}


def _envelope_schema(event: catalogue.EventType, data_schema: dict, version: int) -> dict:
    return {
        "type": "object",
        "description": "CloudEvents 1.0, structured JSON mode",
        "required": list(envelope.REQUIRED),
        "properties": {
            "specversion": {"const": envelope.SPECVERSION},
            "id": {"type": "string", "description": "unique per event; consumers deduplicate on it"},
            "source": {"const": catalogue.source_of(event.producer)},
            "type": {"const": event.name},
            "subject": {"type": "string", "description": "id of the aggregate the event is about"},
            "time": {"type": "string", "format": "date-time"},
            "datacontenttype": {"const": "application/json"},
            "dataschema": {"const": event.dataschema_of(version)},
            "data": data_schema,
        },
    }


def _subject_of(data: dict) -> str:
    """The aggregate id an example's data is about, as the services set the subject."""
    for outer in ("profile", "registration", "event", "project"):
        if isinstance(data.get(outer), dict) and data[outer].get("id"):
            return data[outer]["id"]
    return str(data.get("member_id") or data.get("id") or data.get("notification_id"))


def _examples(event: catalogue.EventType, schema: dict, version: int) -> list[dict]:
    """Each ``examples`` entry of the data schema, wrapped in its envelope."""
    suffix = "" if version == event.version else f"-v{version}"
    return [{"name": f"{event.name.replace('.', '-')}{suffix}-{number}", "payload": {
        "specversion": envelope.SPECVERSION, "id": f"0b8e4f3a-6d0c-4a51-9a43-2f7d1c5e9b{number:02d}",
        "source": catalogue.source_of(event.producer), "type": event.name, "subject": _subject_of(data),
        "time": "2026-11-21T09:30:00Z", "datacontenttype": "application/json",
        "dataschema": event.dataschema_of(version),
        "data": data}} for number, data in enumerate(schema.get("examples", []), start=1)]


def document() -> dict:
    documents = envelope.schema_documents()
    channels, operations, messages, schemas = {}, {}, {}, {}
    for event in catalogue.EVENT_TYPES.values():
        key = event.name
        names = {}
        for version in (event.version, *event.deprecated):
            name = key if version == event.version else f"{key}.v{version}"
            source = documents[event.dataschema_of(version)]
            schemas[f"{key}.v{version}"] = _bundle(copy.deepcopy(source), documents)
            summary = event.summary if version == event.version else (
                f"Deprecated: version {version}, no longer published; consumers accept it until {catalogue.SUNSET} "
                f"(events of it may still be in queues and the replay stream). Read version {event.version}.")
            if version != event.version:
                schemas[f"{key}.v{version}"]["deprecated"] = True
            messages[name] = {
                "name": name,
                "title": source.get("title", key) + ("" if version == event.version else f" (v{version})"),
                "summary": summary,
                "contentType": envelope.CONTENT_TYPE,
                "payload": {"schemaFormat": SCHEMA_FORMAT,
                            "schema": _envelope_schema(event, {"$ref": f"#/components/schemas/{key}.v{version}"},
                                                       version)},
                "examples": _examples(event, source, version),
            }
            names[name] = {"$ref": f"#/components/messages/{name}"}
        channels[key] = {
            "address": key,
            "description": f"Routing key `{key}` on the topic exchange `{catalogue.EXCHANGE}`; "
                           f"published by {event.producer}-service.",
            "messages": names,
            "bindings": {"amqp": {"is": "routingKey", "exchange": {
                "name": catalogue.EXCHANGE, "type": "topic", "durable": True, "autoDelete": False, "vhost": "/"},
                "bindingVersion": "0.3.0"}},
        }
        operations[f"receive-{key}"] = {
            "action": "receive",
            "summary": f"An integrator receives {key}: bind a queue to {catalogue.EXCHANGE} with `{key}` "
                       f"or a pattern such as `{key.split('.')[0]}.*`.",
            "channel": {"$ref": f"#/channels/{key.replace('/', '~1')}"},
            "messages": [{"$ref": f"#/channels/{key}/messages/{name}"} for name in names],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Verbund platform events",
            "version": "2.0.0",
            "description": "Every domain event of the Verbund services, as CloudEvents 1.0 in structured JSON "
                           f"mode on the RabbitMQ topic exchange `{catalogue.EXCHANGE}`; the routing key is the "
                           "event type. Generated from kit/verbund/catalogue.py and kit/verbund/event_schemas/ "
                           "by `verbund asyncapi`: do not edit by hand.\n\n"
                           "Personal data: no event carries the name or e-mail address of a natural person in "
                           "clear. member.registered and member.updated (version 2) carry the contact person only "
                           "in `profile.personal`, a JWE (RFC 7516, alg dir, enc A256GCM, kid = member id) under "
                           "the member's own key. Integrators whose account grants personal data fetch the key "
                           "as a JWK at `GET /members/{id}/key` on members-service and keep it no longer than "
                           "its Cache-Control max-age; after the member's erasure the key answers 410 Gone and "
                           "every copy of `personal` stays unreadable. Version 1 of member.registered and "
                           "member.updated (contact in clear) is no longer published and is documented as "
                           f"deprecated until {catalogue.SUNSET}.",
        },
        "defaultContentType": envelope.CONTENT_TYPE,
        "servers": {"local": {"host": "localhost:5672", "protocol": "amqp", "protocolVersion": "0.9.1",
                              "description": "The RabbitMQ of a local installation; integrators get their own "
                                             "read-only user."}},
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    }


def render() -> str:
    class NoAliases(yaml.SafeDumper):
        def ignore_aliases(self, data):
            return True

    return yaml.dump(document(), Dumper=NoAliases, sort_keys=False, allow_unicode=True, width=110)
