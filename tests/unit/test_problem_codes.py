"""Operations declare the problem codes they answer: the document lists them per status,
and the service tests' check notes any answered code an operation did not declare."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from service_kit.errors import (
    NotFound,
    declared_problem_codes,
    document_problem_codes,
    install_error_handlers,
    problems,
)
from tests.service.harness import ProblemCodeCheck

ROOT = Path(__file__).resolve().parents[2]


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/things/{name}", responses=problems({404: ["thing_not_found"]}))
    async def get_thing(name: str) -> dict[str, str]:
        if name == "missing":
            raise NotFound("No such thing.", code="thing_not_found")
        if name == "other":
            raise NotFound("Nothing here.", code="shelf_not_found")
        return {"name": name}

    @app.get("/open")
    async def open_thing() -> dict[str, str]:
        raise NotFound("Never declared anywhere.", code="whatever")

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title="t", version="1", routes=app.routes)
            document_problem_codes(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def test_declared_codes_become_an_enum_with_the_common_ones() -> None:
    schema = _app().openapi()
    responses = schema["paths"]["/things/{name}"]["get"]["responses"]
    not_found = responses["404"]["content"]["application/problem+json"]["schema"]
    assert not_found["allOf"][0] == {"$ref": "#/components/schemas/Problem"}
    assert not_found["allOf"][1]["properties"]["code"]["enum"] == ["thing_not_found"]
    assert "`thing_not_found`" in responses["404"]["description"]
    codes = declared_problem_codes(schema, "get_thing_things__name__get")
    assert codes is not None
    assert codes[422] == {"validation_error", "invalid_value", "invalid_body"}
    # The common codes go only where their status is documented (no 401 without a token).
    assert 401 not in codes
    # An operation that declares nothing keeps `code` a plain string.
    assert declared_problem_codes(schema, "open_thing_open_get") is None


@pytest.mark.parametrize(
    ("path", "undeclared"),
    [("/things/missing", 0), ("/things/fine", 0), ("/things/other", 1), ("/open", 0)],
)
async def test_the_check_notes_a_code_the_operation_did_not_declare(
    path: str, undeclared: int
) -> None:
    found: list[str] = []
    transport = httpx.ASGITransport(app=ProblemCodeCheck(_app(), found))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        await client.get(path)
    assert len(found) == undeclared, found
    if undeclared:
        assert "'shelf_not_found'" in found[0]


def test_prize_operations_list_their_codes() -> None:
    document = json.loads((ROOT / "openapi" / "reward.json").read_text())
    delete = document["paths"]["/v1/prizes/{prize_id}"]["delete"]["responses"]

    def enum(status: str) -> list[str]:
        schema = delete[status]["content"]["application/problem+json"]["schema"]
        return list(schema["allOf"][1]["properties"]["code"]["enum"])

    assert enum("404") == ["prize_not_found"]
    assert enum("409") == ["prize_in_use"]
    assert enum("503") == ["prize_usage_unknown"]
    assert enum("412") == ["version_mismatch"]
    assert enum("401") == ["invalid_token", "token_expired", "unauthenticated"]
