"""The OpenAPI 3.1 document of /api/v1, made from the endpoint table and its msgspec Structs
(JSON Schema 2020-12, as OpenAPI 3.1 uses), so it lists every route the API serves and the
exact shapes it accepts."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from .... import __version__
from .framework import PREFIX, PROBLEM, Api, Endpoint
from .schemas import Problem

DOC_PATH = "/openapi.json"
_REF = "#/components/schemas/{name}"
_ERRORS = {
    "401": "No token, or one that is unknown or revoked",
    "403": "The token lacks the scope",
    "404": "Not found",
    "422": "Invalid input: the problem names the field",
    "429": "Too many requests with this token (Retry-After)",
}


def _plain(tp: Any) -> bool:
    return tp is None or tp is str


def document(api: Api) -> dict[str, Any]:
    typed = [
        t for e in api.endpoints for t in (e.body, e.response) if t is not None and not _plain(t)
    ]
    schemas, components = msgspec.json.schema_components([*typed, Problem], ref_template=_REF)
    schema_of = dict(zip(map(id, [*typed, Problem]), schemas, strict=True))
    itself = {"application/json": {"schema": {"type": "object"}}}
    paths: dict[str, dict[str, Any]] = {
        PREFIX + DOC_PATH: {
            "get": {
                "operationId": "openapi",
                "summary": "This document.",
                "security": [],
                "responses": {"200": {"description": "OpenAPI 3.1", "content": itself}},
            }
        }
    }
    for e in api.endpoints:
        paths.setdefault(e.openapi_path, {})[e.method.lower()] = _operation(e, schema_of)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "newsletter API",
            "version": __version__,
            "description": "Subscribers, lists, segments, posts, issues and sequences. "
            "Authenticate with `Authorization: Bearer TOKEN` (`newsletter token create`); "
            "errors are RFC 9457 problem documents.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


def _operation(e: Endpoint, schema_of: dict[int, Any]) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": e.handler.__name__,
        "summary": e.summary,
        "description": f"{e.summary}\n\nNeeds the scope `{e.scope}`.",
        "security": [{"bearer": []}],
        "parameters": [*_path_parameters(e), *_query_parameters(e)],
    }
    if e.body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schema_of[id(e.body)]}},
        }
    if e.status == 204:
        ok: dict[str, Any] = {"description": "Done"}
    elif e.media != "application/json":
        ok = {"description": "OK", "content": {e.media: {"schema": {"type": "string"}}}}
    else:
        ok = {
            "description": "OK",
            "content": {"application/json": {"schema": schema_of[id(e.response)]}},
        }
    responses: dict[str, Any] = {str(e.status): ok}
    if e.handler.__name__ == "create_subscriber":
        responses["200"] = {"description": "The address is subscribed already: its record",
                            "content": ok["content"]}  # fmt: skip
    problem = {PROBLEM: {"schema": {"$ref": _REF.format(name="Problem")}}}
    for status, text in _ERRORS.items():
        responses[status] = {"description": text, "content": problem}
    op["responses"] = responses
    return op


def _path_parameters(e: Endpoint) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "integer", "minimum": 0} if kind == "int" else {"type": "string"},
        }
        for name, kind in re.findall(r"\{(\w+):(\w+)\}", e.path)
    ]


def _query_parameters(e: Endpoint) -> list[dict[str, Any]]:
    if e.query is None:
        return []
    params = []
    for f in msgspec.structs.fields(e.query):
        schema = msgspec.json.schema(f.type)
        schema.pop("$defs", None)
        params.append({"name": f.encode_name, "in": "query", "required": f.required,
                       "schema": schema})  # fmt: skip
    return params


def endpoint(api: Api) -> Any:
    body = msgspec.json.encode(document(api))

    async def openapi(request: Request) -> Response:
        return Response(body, media_type="application/json")

    return openapi
