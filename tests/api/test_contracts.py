"""The OpenAPI document is generated from the handlers' declarations, and agrees with the router.

Every route, method, role, path and query parameter and body model in /api/v1/openapi.json comes
from an ``Endpoint`` declared on a handler (``hub.api.routes.endpoints()``): each parameter is a
field of the endpoint's path or query model, with that field's schema, and a body model is the
pydantic model the handler validates with. The aiohttp router holds exactly the same (method,
path) pairs, each calling the declared handler; no API module reads a parameter by hand
(``request.query``, ``match_info``), so what the document says is what is validated.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from pydantic import BaseModel

from hub.api import models, replies
from hub.api.app import ApiState, create_app
from hub.api.endpoint import parse
from hub.api.routes import endpoints, route_defs
from hub.api.openapi import as_openapi30, document
from hub.errors import UsageError
from hub.settings import Settings


def _router(tmp_path) -> dict[tuple[str, str], object]:
    settings = Settings.from_env({"HUB_DATA_DIR": str(tmp_path)})
    app = create_app(ApiState(settings, engine=None, backbone=None, identity=None))  # routes only, never started
    return {(r.method, r.resource.canonical): r.handler for r in app.router.routes()
            if r.method != "HEAD" and not getattr(r.handler, "__module__", "").startswith(("hub.web", "hub.vdxp"))}


def test_router_and_document_come_from_the_declarations(tmp_path):
    declared = {(e.method, e.template): e for e in endpoints()}
    assert len(declared) == len(endpoints()), "a (method, path) is declared twice"
    router = _router(tmp_path)
    assert set(router) == set(declared)
    for key, handler in router.items():
        assert handler is declared[key].handler, key  # the router calls the declared (guarded) handler
    assert [(d.method, d.path) for d in route_defs()] == [(e.method, e.path) for e in endpoints()]

    doc = json.loads(json.dumps(document(endpoints())))  # as served: plain JSON
    ops = {(m.upper(), path): op for path, item in doc["paths"].items() for m, op in item.items()}
    assert set(ops) == set(declared)
    schemas = doc["components"]["schemas"]
    for key, e in declared.items():
        op = ops[key]
        assert op["summary"] == e.summary, key
        if e.roles is None:
            assert op["security"] == [] and "Roles:" not in op.get("description", ""), key
        else:
            assert "security" not in op and op["description"].endswith(f"Roles: {', '.join(e.roles)}."), key
            assert "403" in op["responses"], key
        assert op.get("parameters", []) == _parameters_of(e), key
        replies = {int(c) for c, r in op["responses"].items() if "$ref" not in r}
        errors = {int(c) for c, r in op["responses"].items() if "$ref" in r}
        assert replies == set(e.replies) and errors >= set(e.errors) | {401}, key
        if isinstance(e.body, type):
            assert op["requestBody"]["content"]["application/json"]["schema"] == {
                "$ref": f"#/components/schemas/{e.body.__name__}"}, key
            assert schemas[e.body.__name__]["properties"].keys() == e.body.model_fields.keys(), key
        elif e.body is None:
            assert "requestBody" not in op, key
        else:
            assert op["requestBody"] == e.body, key
    bodies = {e.body.__name__ for e in declared.values() if isinstance(e.body, type)}
    assert bodies == {m.__name__ for m in models.BODIES}, "every request model is some handler's body"


def test_the_document_is_openapi_3_0():
    """No JSON Schema 2020-12 spellings pydantic would write (null types, const, examples lists)."""
    doc = document(endpoints())
    assert doc["openapi"] == "3.0.3"
    text = json.dumps([doc["paths"], doc["components"]])
    assert '"type": "null"' not in text and '"const"' not in text and '"examples"' not in text
    assert "$defs" not in text and '"title"' not in text


def test_a_body_model_refuses_with_the_field_named():
    cases = [
        (models.UserInput, {"name": "x", "role": "root"}, "role"),
        (models.UserInput, {"role": "admin"}, "name"),
        (models.UserInput, {"name": "x", "role": "admin", "colour": "red"}, "colour"),
        (models.SettleRequest, {"ids": [1, "2"]}, "ids[1]"),
        (models.SettleRequest, {"ids": [True]}, "ids[0]"),  # JSON true is not an id
        (models.SettleRequest, {"ids": []}, "ids"),
        (models.AgencyInput, {"code": "000.00.00.H51", "accepts": ["x"]}, "accepts[0]"),
        (models.MaintenanceRequest, {"action": "pause"}, "action"),
    ]
    for model, data, element in cases:
        try:
            parse(model, data)
        except UsageError as e:
            assert e.code == "usage.invalid" and e.element == element and e.message.startswith(element), (data, e)
        else:
            raise AssertionError(f"{model.__name__} accepted {data}")
    ok = parse(models.SettleRequest, {"ids": [3, 3]})
    assert isinstance(ok, BaseModel) and ok.ids == [3, 3]


def test_every_schema_is_a_model():
    """No hand-written schema: each component is a request model or an answer model, and every
    $ref in the document resolves."""
    doc = document(endpoints())
    schemas = doc["components"]["schemas"]
    for name in schemas:
        model = getattr(models, name, None) or getattr(replies, name, None)
        assert isinstance(model, type) and issubclass(model, BaseModel), name
    refs = set()

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.add(node["$ref"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(doc)
    for r in refs:
        kind, name = r.split("/")[-2:]
        assert name in doc["components"][kind], r


def _fields(model) -> list[tuple[str, dict, bool]]:
    """(name as sent, schema, required) of each field of a path or query model, from pydantic."""
    if model is None:
        return []
    schema = as_openapi30(model.model_json_schema())
    return [(f.alias or name, schema["properties"][f.alias or name], f.is_required())
            for name, f in model.model_fields.items()]


def _parameters_of(e) -> list[dict]:
    out = []
    for where, model in (("path", e.path_model), ("query", e.query)):
        for name, prop, required in _fields(model):
            prop = dict(prop)
            description = prop.pop("description", "")
            if prop.pop("nullable", None):
                if prop.get("default", 0) is None:
                    del prop["default"]
                if "allOf" in prop:
                    prop = {**prop.pop("allOf")[0], **prop}
                if None in prop.get("enum", []):
                    prop["enum"] = [v for v in prop["enum"] if v is not None]
            out.append({"name": name, "in": where, "required": where == "path" or required, "schema": prop,
                        "description": description})
    return out


def test_every_path_parameter_is_declared_by_a_model():
    """Each ``{name}`` of a route's path is a field of its path model, and nothing else is."""
    import re

    for e in endpoints():
        names = re.findall(r"\{(\w+)", e.path)
        assert names == list(e.path_model.model_fields if e.path_model else []), (e.method, e.path)


def test_the_document_lists_every_parameter_a_handler_takes():
    doc = document(endpoints())
    listed = {(path, m.upper(), p["in"], p["name"]) for path, item in doc["paths"].items() for m, op in item.items()
              for p in op.get("parameters", [])}
    declared = {(e.template, e.method, where, name) for e in endpoints()
                for where, model in (("path", e.path_model), ("query", e.query))
                for name, _, _ in _fields(model)}
    assert listed == declared and ("/api/v1/audit/entries", "GET", "query", "format") in listed
    assert ("/api/v1/admin/followup/report", "GET", "query", "from") in listed  # the alias, as sent


API = Path(__file__).resolve().parents[2] / "hub" / "api"


@pytest.mark.parametrize("module", sorted(p.name for p in API.glob("*.py")))
def test_no_handler_reads_a_parameter_by_hand(module):
    """``request.query`` and ``request.match_info`` are read in one place: the endpoint wrapper,
    which validates them with the declared models (the request counter reads the matched route)."""
    allowed = {"endpoint.py": {"query", "match_info"}, "app.py": {"match_info", "query_string"}}
    tree = ast.parse((API / module).read_text(encoding="utf-8"))
    read = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr in (
        "query", "match_info", "query_string", "rel_url") and isinstance(n.value, ast.Name) and n.value.id == "request"}
    assert read <= allowed.get(module, set()), f"{module} reads request.{', request.'.join(sorted(read))}"


def test_a_bad_parameter_is_refused_naming_it():
    from hub.api.models import AgencyPath, AuditEntriesQuery, DeadLetterPath, InboxQuery, OverdueQuery

    cases = [
        (AgencyPath, {"code": "nonsense"}, "code", "usage.agency_code"),
        (DeadLetterPath, {"id": "abc"}, "id", "usage.invalid"),
        (InboxQuery, {"limit": "0"}, "limit", "usage.invalid"),
        (InboxQuery, {"limit": "many"}, "limit", "usage.invalid"),
        (OverdueQuery, {"days": "366"}, "days", "usage.invalid"),
        (OverdueQuery, {"from": "01/10/2026"}, "from", "usage.invalid"),
        (AuditEntriesQuery, {"since": "yesterday"}, "since", "usage.invalid"),
        (AuditEntriesQuery, {"limit": "5000"}, "limit", "usage.invalid"),  # JSON pages hold at most 1000
        (AuditEntriesQuery, {"colour": "red"}, "colour", "usage.invalid"),
    ]
    for model, data, element, reason in cases:
        try:
            parse(model, data)
        except UsageError as e:
            assert (e.code, e.element) == (reason, element) and e.message.startswith(f"{element}: "), (data, e)
        else:
            raise AssertionError(f"{model.__name__} accepted {data}")
    assert parse(AuditEntriesQuery, {"limit": "5000", "format": "csv"}).limit == 5000
    assert parse(OverdueQuery, {"days": "", "priority": " 2 "}).days == 3
