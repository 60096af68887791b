"""OpenAPI 3.1 documents of the services' HTTP APIs, generated from the
``@api`` entrypoints and their marshmallow schemas (apispec). Each service
serves its document at GET /openapi.json; ``verbund openapi`` writes them to
docs/openapi/ and a test fails when a committed one is stale."""
from __future__ import annotations

import inspect
import re
from dataclasses import dataclass

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from verbund import envelope
from verbund.web import ApiEndpoint

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string"},
        "fields": {"type": "object", "description": "field errors, by field name (422)"},
        "correlation_id": {"type": ["string", "null"]},
    },
}
STATUS_TEXT = {200: "OK", 201: "Created", 204: "No content", 400: "Malformed request", 401: "No or invalid token",
               403: "Not allowed for this role or principal", 404: "Not found", 409: "Conflict",
               410: "Gone (deleted)", 412: "Stale If-Match", 413: "Body too large", 415: "Unsupported media type",
               422: "Field errors", 429: "Too many requests; wait Retry-After seconds", 503: "Not ready"}


@dataclass(frozen=True)
class Extended:
    """A kit JSON Schema with more properties, for answers that add to it
    (a registration answers the profile plus the member's token)."""
    urn: str
    name: str
    properties: dict


def endpoints(service_cls) -> list[tuple[str, ApiEndpoint, object]]:
    found = []
    for name, method in inspect.getmembers(service_cls, inspect.isfunction):
        for entrypoint in getattr(method, "nameko_entrypoints", ()):
            if isinstance(entrypoint, ApiEndpoint):
                found.append((name, entrypoint, method))
    return sorted(found, key=lambda item: (item[1].url, item[1].method))


def _path(url: str) -> str:
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", url)


def _schema_ref(spec: APISpec, schema) -> dict:
    """A reference to a marshmallow schema class or a kit JSON Schema (by its urn), added once."""
    if isinstance(schema, Extended):
        if schema.name not in spec.components.schemas:
            base = {k: v for k, v in envelope.schema_documents()[schema.urn].items()
                    if k not in ("$schema", "$id", "examples")}
            extended = {**base, "required": [*base.get("required", []), *schema.properties],
                        "properties": {**base.get("properties", {}), **schema.properties}}
            spec.components.schema(schema.name, _local_refs(extended, schema.name))
        return {"$ref": f"#/components/schemas/{schema.name}"}
    if isinstance(schema, str):
        name = ".".join(schema.split(":")[-2:])
        if name not in spec.components.schemas:
            document = {k: v for k, v in envelope.schema_documents()[schema].items()
                        if k not in ("$schema", "$id", "examples")}
            spec.components.schema(name, _local_refs(document, name))
        return {"$ref": f"#/components/schemas/{name}"}
    name = schema.__name__.removesuffix("Schema")
    if name not in spec.components.schemas:
        spec.components.schema(name, schema=schema)
    return {"$ref": f"#/components/schemas/{name}"}


def _local_refs(node, name: str):
    """Point ``#/$defs/x`` at the copy of the definitions inside the component,
    and references to other kit schemas at their components."""
    if isinstance(node, list):
        return [_local_refs(item, name) for item in node]
    if not isinstance(node, dict):
        return node
    rewritten = {key: _local_refs(value, name) for key, value in node.items()}
    ref = rewritten.get("$ref", "")
    if ref.startswith("#/$defs/"):
        rewritten["$ref"] = f"#/components/schemas/{name}/$defs/{ref.removeprefix('#/$defs/')}"
    elif ref.startswith("urn:verbund:schema:"):
        rewritten["$ref"] = "#/components/schemas/" + ".".join(ref.split(":")[-2:])
    return rewritten


def document(service_cls, version: str = "1.0.0") -> dict:
    spec = APISpec(title=f"{service_cls.name}-service", version=version, openapi_version="3.1.0",
                   plugins=[MarshmallowPlugin()],
                   info={"description": (inspect.getdoc(inspect.getmodule(service_cls)) or "").split("\n\n")[0]})
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    spec.components.schema("Error", ERROR)
    for name, endpoint, method in endpoints(service_cls):
        path_params = re.findall(r"<(?:([a-z]+):)?([a-z_]+)>", endpoint.url)
        operation: dict = {
            "operationId": name,
            "summary": (inspect.getdoc(method) or name.replace("_", " ")).split("\n")[0],
            "description": f"Roles: {', '.join(endpoint.roles)}.",
            "parameters": [{"name": name, "in": "path", "required": True,
                            "schema": {"type": "string", "format": "uuid"} if converter == "uuid" else
                            {"type": "integer"} if converter == "int" else {"type": "string"}}
                           for converter, name in path_params],
            "responses": {},
        }
        if "anonymous" not in endpoint.roles:
            operation["security"] = [{"bearer": []}]
        if endpoint.query is not None:
            operation["parameters"].append({"in": "query", "schema": endpoint.query})
        if endpoint.body is not None:
            media = endpoint.body if isinstance(endpoint.body, dict) else \
                {"application/json": {"schema": _schema_ref(spec, endpoint.body)}}
            # A body whose every field has a default may be left out.
            required = isinstance(endpoint.body, dict) or any(f.required for f in endpoint.body().fields.values())
            operation["requestBody"] = {"required": required, "content": media}
        for status, described in endpoint.responses.items():
            text, schema = described if isinstance(described, tuple) else (described, None)
            response: dict = {"description": text or STATUS_TEXT.get(status, "")}
            if schema is not None:
                content_type, schema = schema if isinstance(schema, tuple) else ("application/json", schema)
                response["content"] = {content_type: {"schema": schema if isinstance(schema, dict)
                                                      else _schema_ref(spec, schema)}}
            operation["responses"][str(status)] = response
        errors = [400, 422] if endpoint.body is not None or endpoint.query is not None else []
        errors += [401, 403] if "anonymous" not in endpoint.roles else []
        errors += [404] if path_params else []
        for status in errors + list(endpoint.errors):
            operation["responses"].setdefault(str(status), {
                "description": STATUS_TEXT[status],
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
        if endpoint.query is not None:
            # The WSGI server refuses a request line over 8 KiB before any handler runs, with a
            # plain-text answer: long percent-encoded filters can reach that.
            operation["responses"]["414"] = {"description": "URI Too Long: the query string exceeds 8 KiB"}
        spec.path(path=_path(endpoint.url), operations={endpoint.method.lower(): operation})
    return spec.to_dict()
