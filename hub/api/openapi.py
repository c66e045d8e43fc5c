"""The OpenAPI 3.0.3 document at /api/v1/openapi.json, generated from the handlers' declarations.

``document(endpoints)`` turns the ``Endpoint`` records of ``hub.api.endpoint`` into paths:
summary, roles (in the description, and ``security: []`` for public routes), the path and query
parameters (from the endpoint's pydantic models), the
request body (a pydantic model's JSON schema, or a raw body's media types), the success replies
and the error responses. Every operation answers 401 (a bad token is refused even on a public
route), 403 when roles limit it and 413 when it takes a body. Every schema is generated from a
pydantic model: answers from ``hub.api.replies``, request bodies from ``hub.api.models``.
"""

from __future__ import annotations

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from hub.api.endpoint import JSON, Endpoint
from hub.api.replies import Error

ERRORS = {
    400: ("BadRequest", "The request is malformed; `element` names the field where it can"),
    401: ("Unauthorized", "No credentials, or the token is unknown or revoked"),
    403: ("Forbidden", "The caller's role may not do this (or, for packages, the sender may not)"),
    404: ("NotFound", "No such resource that the caller may see"),
    409: ("Conflict", "The resource's state does not allow this"),
    413: ("TooLarge", "The body exceeds the size limit"),
    415: ("UnsupportedMediaType", "The body's Content-Type is not one this operation takes"),
    422: ("Unprocessable", "The package is not acceptable (schema, signature, trust)"),
    503: ("Unavailable", "Maintenance, or the broker is unavailable; retry later"),
}


def as_openapi30(schema):
    """pydantic writes JSON Schema 2020-12 (``anyOf: [X, {"type": "null"}]``); OpenAPI 3.0 says
    ``nullable: true``, and has no ``const``."""
    if isinstance(schema, list):
        return [as_openapi30(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    s = {k: as_openapi30(v) for k, v in schema.items() if k != "title"}
    if "examples" in s and isinstance(s["examples"], list):
        s["example"] = s.pop("examples")[0]
    if "const" in s:
        s["enum"] = [s.pop("const")]
    variants = s.get("anyOf")
    if variants and {"type": "null"} in variants:
        rest = [v for v in variants if v != {"type": "null"}]
        del s["anyOf"]
        if len(rest) == 1 and "$ref" not in rest[0]:
            s = {**rest[0], **s}
        else:
            s["anyOf" if len(rest) > 1 else "allOf"] = rest
        s["nullable"] = True
        if "enum" in s and None not in s["enum"]:
            s["enum"] = [*s["enum"], None]  # an enum lists every value, null included
    if s.get("default", 0) is None and not s.get("nullable"):
        del s["default"]
    return s


def _model_schemas(models: list[type[BaseModel]]) -> dict:
    _, top = models_json_schema([(m, "validation") for m in models], ref_template="#/components/schemas/{model}")
    return {name: as_openapi30(schema) for name, schema in top.get("$defs", {}).items()}


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _is_model(s) -> bool:
    return isinstance(s, type) and issubclass(s, BaseModel)


def _schema(s) -> dict:
    if _is_model(s):
        return ref(s.__name__)
    return s


def operation(e: Endpoint) -> dict:
    responses = {str(code): {"description": r.description, "content": {
        r.media: {"schema": _schema(r.schema)}, **{media: {"schema": s} for media, s in r.also.items()}}}
        for code, r in sorted(e.replies.items())}
    codes = set(e.errors) | {401}
    if e.roles is not None:
        codes.add(403)
    if e.body is not None:
        codes.add(413)
    for code in sorted(codes):
        responses[str(code)] = {"$ref": f"#/components/responses/{ERRORS[code][0]}"}
    op: dict = {"summary": e.summary, "tags": [e.tag], "responses": responses}
    who = f"Roles: {', '.join(e.roles)}." if e.roles else ""
    if e.description or who:
        op["description"] = (e.description + ("\n\n" if e.description and who else "") + who).strip()
    if e.roles is None:
        op["security"] = []
    if isinstance(e.body, dict):
        op["requestBody"] = e.body
    elif e.body is not None:
        op["requestBody"] = {"description": "JSON", "required": True,
                             "content": {JSON: {"schema": ref(e.body.__name__)}}}
    parameters = [*(parameters_of(e.path_model, "path") if e.path_model is not None else []),
                  *(parameters_of(e.query, "query") if e.query is not None else [])]
    if parameters:
        op["parameters"] = parameters
    return op


def parameters_of(model: type[BaseModel], where: str) -> list[dict]:
    """A path or query model's fields as OpenAPI parameters (``in: path`` ones are always required)."""
    schema = as_openapi30(model.model_json_schema(ref_template="#/components/schemas/{model}"))
    required = set(schema.get("required", []))
    out = []
    for name, prop in schema["properties"].items():
        prop = dict(prop)
        description = prop.pop("description", "")
        if prop.pop("nullable", None):  # a parameter is absent, never null
            prop.pop("default", None) if prop.get("default", 0) is None else None
            if "allOf" in prop and len(prop["allOf"]) == 1:
                prop = {**prop.pop("allOf")[0], **prop}
            if prop.get("enum") and None in prop["enum"]:
                prop["enum"] = [v for v in prop["enum"] if v is not None]
        out.append({"name": name, "in": where, "required": where == "path" or name in required, "schema": prop,
                    "description": description})
    return out


def document(endpoints: list[Endpoint]) -> dict:
    paths: dict = {}
    for e in endpoints:
        paths.setdefault(e.template, {})[e.method.lower()] = operation(e)
    models = {e.body for e in endpoints if _is_model(e.body)} | {Error}
    models |= {r.schema for e in endpoints for r in e.replies.values() if _is_model(r.schema)}
    models = sorted(models, key=lambda m: m.__name__)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "edXML interchange hub API",
            "version": "1",
            "description": "Ministry gateway (role agency), administration (role admin; auditors may read), "
                           "audit log (auditors and admins) and operations endpoints. "
                           "Errors are always JSON: {\"reason\", \"message\"[, \"element\"]}.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "tags": [{"name": "gateway"}, {"name": "admin"}, {"name": "audit"}, {"name": "operations"}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer",
                                               "description": "hub_<id>_<secret> from `hub user add` or "
                                                              "POST /api/v1/admin/users"}},
            "schemas": _model_schemas(models),
            "responses": {name: {"description": text, "content": {JSON: {"schema": ref("Error")}}}
                          for name, text in ERRORS.values()},
        },
    }
