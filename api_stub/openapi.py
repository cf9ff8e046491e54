"""What the OpenAPI document says of each route: accepted bodies and every answer's shape."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from worker.audience.fields import AudienceCreate, AudiencePatch


class FieldError(BaseModel):
    value: Any = None
    msg: str
    param: str
    location: str


class Rejected(BaseModel):
    """400: what was wrong with the input, one item per parameter."""

    errors: list[FieldError]


class Problem(BaseModel):
    """401, 404, 409, 413, 503: what went wrong, in one sentence."""

    error: str


class RecipientsPage(BaseModel):
    recipients: list[str]
    cursor: str
    revision: int


def _answer(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"model": model, "description": description}


Answers = dict[int | str, dict[str, Any]]

COMMON: Answers = {
    400: _answer(Rejected, "the input is invalid; nothing changed"),
    401: _answer(Problem, "no API key, or an unknown one"),
    413: _answer(Problem, "the request body is over 1 MiB"),
    503: _answer(Problem, "the store or the cache is unreachable"),
}
ONE: Answers = {**COMMON, 404: _answer(Problem, "no such audience for this brand")}
CHANGE: Answers = {**ONE, 409: _answer(Problem, "the audience kept changing; retry")}
RECIPIENTS: Answers = {
    **ONE,
    409: _answer(Problem, "not materialized yet, a cache miss, or a stale cursor"),
}


def body(model: type[BaseModel]) -> dict[str, Any]:
    """An `openapi_extra` declaring a JSON body of `model`'s accepted forms."""
    schema = model.model_json_schema()
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


ID_PARAMETER = {
    "name": "audience_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[0-9a-fA-F]{24}$"},
    "description": "the audience's ObjectId, 24 hexadecimal digits",
}
ID_ONLY = {"parameters": [ID_PARAMETER]}
PAGE = {
    "parameters": [
        ID_PARAMETER,
        {
            "name": "cursor",
            "in": "query",
            "required": False,
            "schema": {"type": "string", "pattern": "^(0|[0-9]{1,19}-[0-9]{1,20}(-[0-9]{1,5})?)$"},
            "description": '"0" (or absent) to start; then the cursor of the previous page',
        },
        {
            "name": "count",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "minimum": 1, "maximum": 10_000, "default": 1000},
            "description": "at most this many recipients in the page",
        },
    ]
}


CREATE_BODY = body(AudienceCreate)
PATCH_BODY = {**body(AudiencePatch), "parameters": [ID_PARAMETER]}
