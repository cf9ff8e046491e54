"""The HTTP API of contract section 5."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pymongo.errors
import redis.exceptions
from bson import ObjectId
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from api_stub import openapi, problems
from api_stub.auth import brand_for
from api_stub.backend import Backend, connect_backend
from api_stub.documents import render
from api_stub.limits import BodyLimit
from worker import instants
from worker.audience.fields import AudienceCreate, AudiencePatch
from worker.cache import reader
from worker.cache.debounce import first_in_window
from worker.cache.result import drop
from worker.errors import AudienceNotFound, FieldProblem, InvalidInput, UpdateConflict
from worker.instants import iso
from worker.logs import event
from worker.settings import Settings, get_settings
from worker.store import audiences

log = logging.getLogger(__name__)

MAX_PAGE = 10_000
DEFAULT_PAGE = 1_000


class Unauthorized(Exception):
    """No API key, or one that belongs to no brand."""


def create_app(backend: Backend | None = None, settings: Settings | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if backend is None:
            app.state.backend = connect_backend(settings or get_settings())
        yield

    app = FastAPI(title="audience API", lifespan=lifespan)
    if backend is not None:
        app.state.backend = backend
    app.add_middleware(BodyLimit)
    _add_error_handlers(app)
    _add_routes(app)
    return app


def _backend(request: Request) -> Backend:
    backend: Backend = request.app.state.backend
    return backend


def _brand(request: Request) -> str:
    backend = _backend(request)
    brand = brand_for(request.headers.get("authorization"), backend.settings.brand_by_key())
    if brand is None:
        raise Unauthorized()
    return brand


def _audience_id(raw: str) -> ObjectId:
    if len(raw) == 24 and ObjectId.is_valid(raw):
        return ObjectId(raw)
    msg = "audienceId must be a mongoId"
    raise InvalidInput([FieldProblem("audienceId", msg, raw, "params")])


async def _fields(request: Request, model: type[BaseModel]) -> Any:
    body = _json_body(await request.body())
    try:
        return model.model_validate(body)
    except ValidationError as error:
        raise InvalidInput(problems.from_validation(error, body)) from None


def _json_body(raw: bytes) -> Any:
    """Strict JSON: no NaN or infinities, valid Unicode, nesting Python can hold."""
    try:
        body = (
            json.loads(raw, parse_constant=_no_constant, parse_float=_finite) if raw.strip() else {}
        )
        # Lone surrogates parse, but could be neither stored nor echoed back.
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except (ValueError, UnicodeError, RecursionError):
        msg = "body must be a JSON object in UTF-8, without NaN, Infinity or out-of-range numbers"
        raise InvalidInput([FieldProblem("body", msg, None)]) from None
    return body


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


def _page_size(request: Request) -> int:
    raw = request.query_params.get("count")
    if raw is None:
        return DEFAULT_PAGE
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        msg = f"count must be an integer from 1 to {MAX_PAGE}"
        raise InvalidInput([FieldProblem("count", msg, raw, "query")])
    return int(raw)


def _as_of(request: Request) -> str | None:
    """The optional `asOf` query parameter: the instant the run evaluates at."""
    raw = request.query_params.get("asOf")
    if raw is None:
        return None
    try:
        return iso(instants.parse_as_of(raw))
    except ValueError:
        msg = "asOf must be an ISO-8601 instant with a UTC offset or Z, from 1900 on"
        raise InvalidInput([FieldProblem("asOf", msg, raw, "query")]) from None


def _add_routes(app: FastAPI) -> None:
    @app.post("/audience/create", openapi_extra=openapi.CREATE_BODY, responses=openapi.COMMON)
    async def create(request: Request) -> JSONResponse:
        brand, as_of = _brand(request), _as_of(request)
        fields: AudienceCreate = await _fields(request, AudienceCreate)
        backend = _backend(request)
        doc = audiences.new_document(brand, fields.stored(), _now())
        await _blocking(audiences.insert, backend.audiences, doc)
        await _blocking(backend.publisher.materialize, str(doc["_id"]), doc["revision"], as_of)
        event(log, "audience.created", audience_id=str(doc["_id"]), revision=doc["revision"])
        return JSONResponse(render(doc))

    @app.get("/audience/list", responses=openapi.COMMON)
    async def list_all(request: Request) -> JSONResponse:
        docs = await _blocking(
            audiences.list_for_brand, _backend(request).audiences, _brand(request)
        )
        return JSONResponse([render(doc) for doc in docs])

    @app.get("/audience/{audience_id}", openapi_extra=openapi.ID_ONLY, responses=openapi.ONE)
    async def fetch(request: Request, audience_id: str) -> JSONResponse:
        brand, oid = _brand(request), _audience_id(audience_id)
        doc = await _blocking(audiences.get, _backend(request).audiences, brand, oid)
        return JSONResponse(render(doc))

    @app.patch(
        "/audience/{audience_id}", openapi_extra=openapi.PATCH_BODY, responses=openapi.CHANGE
    )
    async def update(request: Request, audience_id: str) -> JSONResponse:
        brand, oid, as_of = _brand(request), _audience_id(audience_id), _as_of(request)
        fields: AudiencePatch = await _fields(request, AudiencePatch)
        backend = _backend(request)
        doc, moved = await _blocking(
            audiences.patch, backend.audiences, brand, oid, fields.sent(), _now()
        )
        if moved:
            await _blocking(backend.publisher.materialize, audience_id, doc["revision"], as_of)
        event(log, "audience.updated", audience_id=audience_id, revision=doc["revision"])
        return JSONResponse(render(doc))

    @app.delete(
        "/audience/{audience_id}",
        status_code=204,
        openapi_extra=openapi.ID_ONLY,
        responses=openapi.ONE,
    )
    async def remove(request: Request, audience_id: str) -> Response:
        brand, oid = _brand(request), _audience_id(audience_id)
        backend = _backend(request)
        await _blocking(audiences.get, backend.audiences, brand, oid)
        # Keys first: if Redis is down the request fails whole and can simply be repeated.
        await _blocking(drop, backend.redis, backend.settings.key_prefix, audience_id)
        await _blocking(audiences.delete, backend.audiences, brand, oid)
        event(log, "audience.deleted", audience_id=audience_id)
        return Response(status_code=204)

    @app.get(
        "/audience/{audience_id}/recipients",
        openapi_extra=openapi.PAGE,
        response_model=openapi.RecipientsPage,
        responses=openapi.RECIPIENTS,
    )
    async def recipients(request: Request, audience_id: str) -> JSONResponse:
        brand, oid = _brand(request), _audience_id(audience_id)
        count, cursor = _page_size(request), request.query_params.get("cursor", "0")
        backend = _backend(request)
        doc = await _blocking(audiences.get, backend.audiences, brand, oid)
        return await _recipients_page(backend, doc, cursor, count)


async def _recipients_page(
    backend: Backend, doc: dict[str, Any], cursor: str, count: int
) -> JSONResponse:
    audience_id = str(doc["_id"])
    if (doc.get("materialization") or {}).get("revision") is None:
        body = {"error": "audience not materialized yet", "state": _state(doc)}
        return JSONResponse(body, status_code=409)
    prefix = backend.settings.key_prefix
    try:
        page = await _blocking(reader.read_page, backend.redis, prefix, audience_id, cursor, count)
    except reader.CursorInvalid:
        msg = "cursor must be 0 or a cursor returned by this endpoint"
        raise InvalidInput([FieldProblem("cursor", msg, cursor, "query")]) from None
    except reader.ResultChanged:
        body = {"error": "recipients changed since this cursor was issued; start again at 0"}
        return JSONResponse(body, status_code=409)
    if page is None:
        # A cache miss is not an empty audience: ask for a run that is not skipped as fresh,
        # once per debounce window however many readers miss at the same time.
        window_ms = backend.settings.debounce_s * 1000
        if await _blocking(first_in_window, backend.redis, prefix, audience_id, window_ms):
            as_of = iso(_now())
            await _blocking(backend.publisher.materialize, audience_id, doc["revision"], as_of)
        event(log, "recipients.cache_miss", audience_id=audience_id, revision=doc["revision"])
        body = {"error": "recipients not cached; a materialization was triggered"}
        return JSONResponse(body, status_code=409)
    body = {"recipients": page.recipients, "cursor": page.cursor, "revision": page.revision}
    return JSONResponse(body)


def _state(doc: dict[str, Any]) -> str | None:
    return (doc.get("materialization") or {}).get("state")


def _now() -> datetime:
    # BSON dates hold milliseconds; trimming here keeps responses equal to what is stored.
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


async def _blocking(function: Callable[..., Any], *args: Any) -> Any:
    return await run_in_threadpool(function, *args)


def _methods_for(request: Request) -> list[str]:
    """The methods of the routes at this path: a literal path (`/audience/list`) wins over a
    template that would also match it (`/audience/{audience_id}`), as documented."""
    path = request.url.path
    routes = [r for r in request.app.routes if isinstance(r, APIRoute) and r.path_regex.match(path)]
    literal = [r for r in routes if r.path == path]
    return sorted({method for route in literal or routes for method in route.methods or ()})


def _add_error_handlers(app: FastAPI) -> None:
    def handle(kind: type[Exception], status: int, body: Callable[[Any], Any]) -> None:
        async def handler(_: Request, error: Exception) -> JSONResponse:
            return JSONResponse(body(error), status_code=status)

        app.add_exception_handler(kind, handler)

    handle(InvalidInput, 400, lambda e: problems.body_json(e.problems))
    handle(Unauthorized, 401, lambda _: {"error": "missing or unknown API key"})
    handle(AudienceNotFound, 404, lambda _: {"error": "audience not found"})
    handle(UpdateConflict, 409, lambda _: {"error": "audience changed concurrently; retry"})
    handle(pymongo.errors.PyMongoError, 503, lambda _: {"error": "store unavailable"})
    handle(redis.exceptions.RedisError, 503, lambda _: {"error": "cache unavailable"})

    async def routing(request: Request, error: Exception) -> JSONResponse:
        if not isinstance(error, HTTPException):
            return JSONResponse({"error": "internal error"}, status_code=500)
        body = {"error": str(error.detail).lower()}
        headers = dict(error.headers or {})
        if error.status_code == 405:
            headers["Allow"] = ", ".join(_methods_for(request))
        return JSONResponse(body, status_code=error.status_code, headers=headers)

    app.add_exception_handler(HTTPException, routing)
