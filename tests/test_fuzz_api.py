"""Schemathesis against the API's own OpenAPI document: no server error, no answer outside
the documented shapes. A bounded run here; `FUZZ_EXAMPLES=1000` for a longer one."""

from __future__ import annotations

import os
from typing import Any, cast

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (
    negative_data_rejection,
    positive_data_acceptance,
)

from api_stub.app import create_app
from api_stub.backend import Backend
from worker.materialize.run import Context
from worker.settings import Settings

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "30"))


class NoPublisher:
    def materialize(self, audience_id: str, revision: int, as_of: str | None = None) -> bool:
        return True


# The document needs no store: each test plugs its own store and Redis in below.
app = create_app(backend=Backend(Settings(), cast(Any, None), cast(Any, None), NoPublisher()))
schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_the_api_keeps_to_its_documented_shapes(case: schemathesis.Case, ctx: Context) -> None:
    app.state.backend = Backend(ctx.settings, ctx.stores.audiences, ctx.redis, NoPublisher())
    # JSON Schema cannot state every rule (trimmed items must not be empty, a Buffer must
    # hold UTF-8, id rules need ids, 1 MiB bodies): whether a generated body should pass is
    # the contract tests' job. Here: no server error, and every answer as documented.
    case.call_and_validate(
        headers={"Authorization": "Bearer key-a"},
        excluded_checks=[positive_data_acceptance, negative_data_rejection],
    )
