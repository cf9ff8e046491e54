"""Turning rejected input into the contract's 400 body."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from worker.errors import FieldProblem

PREDICATES = {
    "missing": "is required",
    "extra_forbidden": "is not an accepted field",
    "bool_type": "must be a boolean",
    "int_type": "must be an integer",
    "greater_than_equal": "must be an integer from 0 to 36500",
    "less_than_equal": "must be an integer from 0 to 36500",
}


def from_validation(error: ValidationError, body: Any) -> list[FieldProblem]:
    problems = []
    for item in error.errors(include_url=False):
        loc = item["loc"]
        param = str(loc[0]) if loc else "body"
        value = body.get(param) if loc and isinstance(body, dict) else body
        problems.append(FieldProblem(param, f"{param} {_predicate(item)}", value))
    return problems


def _predicate(item: Any) -> str:
    kind = item["type"]
    if kind in PREDICATES:
        return PREDICATES[kind]
    if kind == "literal_error":
        return "must be one of: " + item["ctx"]["expected"].replace("'", "")
    if kind == "model_type":
        return "must be a JSON object"
    return str(item["msg"])


def body_json(problems: list[FieldProblem]) -> dict[str, Any]:
    return {
        "errors": [
            {"value": p.value, "msg": p.msg, "param": p.param, "location": p.location}
            for p in problems
        ]
    }
