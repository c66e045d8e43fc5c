"""Each API operation declared once, on its handler.

``@table.endpoint(method, path, summary, roles=..., body=Model, query=Model, path_model=Model,
response=..., errors=...)`` records an ``Endpoint`` in the route module's ``Endpoints`` table and
wraps the handler with what the declaration promises: the role check (401 without credentials,
403 with the wrong role) and the validation of the JSON body, the query parameters and the path
parameters by their pydantic models (400 ``usage.invalid``, or the reason a validator names,
with the field in ``element``); the handler then receives the validated body model, the query
as ``args`` and the path parameters as ``path``. ``hub.api.routes`` gathers the tables: the
aiohttp router and the OpenAPI document (``hub.api.openapi``) are both built from them, and the
role-matrix test reads ``Endpoint.roles``. No parameter is declared or parsed anywhere else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import wraps
from typing import Callable

from aiohttp import web
from pydantic import BaseModel, ValidationError

from hub.api.errors import error
from hub.api.models import Body as _Body
from hub.api.state import principal
from hub.errors import UsageError

JSON = "application/json"


@dataclass(frozen=True)
class Reply:
    """One success response: a component schema name (or a schema), its description, media type."""

    schema: str | dict | type[BaseModel]
    description: str = "OK"
    media: str = JSON
    also: dict[str, dict] = field(default_factory=dict)  # more media types: media -> schema


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # as aiohttp takes it; may hold a pattern, e.g. {id:.+}
    summary: str
    handler: Callable  # the wrapped handler the router calls
    roles: tuple[str, ...] | None  # None: public
    body: type[BaseModel] | dict | None  # a model: a JSON body; a dict: the OpenAPI requestBody of a raw body
    replies: dict[int, Reply]
    errors: tuple[int, ...]
    tag: str
    description: str = ""
    query: type[BaseModel] | None = None  # query parameters, validated into this model (``args``)
    path_model: type[BaseModel] | None = None  # path parameters, validated into this model (``path``)

    @property
    def template(self) -> str:
        """The path as the router's ``canonical`` and OpenAPI name it (patterns dropped)."""
        return re.sub(r"\{(\w+):[^}]+\}", r"{\1}", self.path)


@dataclass
class Endpoints:
    """The operations of one route module, in declaration order."""

    tag: str
    items: list[Endpoint] = field(default_factory=list)

    def endpoint(self, method: str, path: str, summary: str, *, roles: tuple[str, ...] | None = None,
                 body: type[BaseModel] | dict | None = None, response: str | dict | Reply = "",
                 status: int = 200, replies: dict[int, Reply] | None = None, errors: tuple[int, ...] = (),
                 query: type[BaseModel] | None = None, path_model: type[BaseModel] | None = None,
                 description: str = "", tag: str | None = None):
        names = set(re.findall(r"\{(\w+)", path))
        declared = set(path_model.model_fields) if path_model is not None else set()
        if names != declared:
            raise TypeError(f"{method} {path}: path parameters {sorted(names)} but the model declares {sorted(declared)}")
        ok = dict(replies or {})
        if response:
            ok[status] = response if isinstance(response, Reply) else Reply(response)

        def register(handler):
            wrapped = _guarded(handler, roles, body if isinstance(body, type) else None, query, path_model)
            self.items.append(Endpoint(method.upper(), path, summary, wrapped, roles, body, ok, tuple(errors),
                                       tag or self.tag, description, query, path_model))
            return wrapped

        return register


def _guarded(handler, roles: tuple[str, ...] | None, model: type[BaseModel] | None,
             query: type[BaseModel] | None, path_model: type[BaseModel] | None):
    @wraps(handler)
    async def inner(request: web.Request):
        if roles is not None:
            p = principal(request)
            if p is None:
                return error(401, "auth.required", "send `Authorization: Bearer <token>` (see `hub user add`)")
            if p.role not in roles:
                return error(403, "auth.forbidden", f"role {p.role} may not do this; it needs {' or '.join(roles)}")
        kw = {}
        if path_model is not None:
            kw["path"] = parse(path_model, dict(request.match_info))
        if query is not None:  # a repeated parameter counts once: its first value
            kw["args"] = parse(query, {k: request.query.get(k) for k in request.query.keys()})
        if model is None:
            return await handler(request, **kw)
        return await handler(request, parse(model, await json_object(request)), **kw)

    return inner


async def json_object(request: web.Request) -> dict:
    try:
        body = await request.json()
    except web.HTTPException:
        raise  # e.g. 413: the body is over the size limit
    except (ValueError, UnicodeDecodeError):
        raise UsageError("the request body must be a JSON object") from None
    if not isinstance(body, dict):
        raise UsageError(f"the request body must be a JSON object, not {json_type(body)}")
    return body


def json_type(value) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def _branch(part) -> bool:
    """pydantic's error locations also name the union branch tried (``list[constrained-str]``,
    ``str``); a caller knows fields and indexes only."""
    return isinstance(part, str) and ("[" in part or part in ("str", "int", "bool", "float", "list", "dict", "none"))


def parse(model: type[BaseModel], data: dict) -> BaseModel:
    """``data`` as ``model``; the first problem as a ``UsageError`` naming the field (``ids[2]``)."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        first = e.errors(include_url=False)[0]
        loc = [part for i, part in enumerate(first["loc"]) if i == 0 or not _branch(part)]
        where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".") or "body"
        kind = first["type"]
        if kind == "extra_forbidden":
            what = "parameter" if not issubclass(model, _Body) else "field"
            expected = ", ".join(f.alias or name for name, f in model.model_fields.items())
            message = f"unknown {what}; expected {expected}"
        elif "." in kind:  # a validator's own reason code (PydanticCustomError), e.g. usage.agency_code
            message = first["msg"]
        else:
            message = first["msg"].lower()
        raise UsageError(f"{where}: {message}", code="usage.invalid" if "." not in kind else kind,
                         element=where) from None
