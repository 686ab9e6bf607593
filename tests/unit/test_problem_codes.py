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
from tests.service.harness import ProblemCodeCheck, operation_of

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
    [("/things/missing", 0), ("/things/fine", 0), ("/things/other", 1), ("/open", 1)],
)
async def test_the_check_notes_a_code_the_operation_did_not_declare(
    path: str, undeclared: int
) -> None:
    found: list[str] = []
    transport = httpx.ASGITransport(app=ProblemCodeCheck(_app(), found))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        await client.get(path)
    assert len(found) == undeclared, found
    if path == "/things/other":
        assert "'shelf_not_found'" in found[0]
    if path == "/open":
        # An operation that declares nothing fails the check too.
        assert "declares no codes" in found[0]


def test_the_check_finds_the_operation_by_the_documents_paths() -> None:
    schema = {
        "paths": {
            "/records/{record_id}": {"get": {"operationId": "get_record"}},
            "/records/export": {"get": {"operationId": "export_records"}},
            "/records/{record_id}/cancel": {"post": {"operationId": "cancel_record"}},
        }
    }
    assert operation_of(schema, "GET", "/records/export") == "export_records"
    assert operation_of(schema, "GET", "/records/42") == "get_record"
    assert operation_of(schema, "POST", "/records/42/cancel") == "cancel_record"
    assert operation_of(schema, "POST", "/records/42") is None


def _documents() -> dict[str, dict[str, Any]]:
    return {
        name: json.loads((ROOT / "openapi" / f"{name}.json").read_text())
        for name in ("activity", "referral", "reward")
    }


def test_every_operation_declares_its_codes() -> None:
    undeclared = [
        f"{name}: {method.upper()} {path}"
        for name, document in _documents().items()
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if declared_problem_codes(document, operation["operationId"]) is None
    ]
    assert not undeclared, "operations without `responses=problems(...)`:\n" + "\n".join(undeclared)


def test_every_error_response_says_what_its_codes_mean() -> None:
    for document in _documents().values():
        for operations in document["paths"].values():
            for operation in operations.values():
                for status, response in operation["responses"].items():
                    if status[:1] in ("4", "5"):
                        assert "`" in response["description"], (operation["operationId"], status)
    prizes = _documents()["reward"]["paths"]["/v1/prizes/{prize_id}"]
    delete = prizes["delete"]["responses"]
    assert "the activity service" in delete["503"]["description"]
    # A route's own words for a status stay (which If-Match problem it is).
    assert delete["428"]["description"].startswith("If-Match missing or not an ETag")
    assert "`precondition_required`" in delete["428"]["description"]


def test_a_reused_idempotency_key_is_declared_at_422() -> None:
    """The product answers a key reused for another request with 422 (docs/architecture.md,
    tests/service/test_idempotency.py); the key still in use by another request is a 409."""
    reward = _documents()["reward"]
    codes = declared_problem_codes(reward, "create_prize")
    assert codes is not None
    assert "idempotency_key_reused" in codes[422]
    assert codes[409] == {"idempotency_key_busy"}
    # An operation without the header declares neither.
    plain = declared_problem_codes(reward, "get_prize")
    assert plain is not None
    assert "idempotency_key_reused" not in plain.get(422, set()) and 409 not in plain


def test_prize_operations_list_their_codes() -> None:
    document = json.loads((ROOT / "openapi" / "reward.json").read_text())
    delete = document["paths"]["/v1/prizes/{prize_id}"]["delete"]["responses"]

    def enum(status: str) -> list[str]:
        schema = delete[status]["content"]["application/problem+json"]["schema"]
        return list(schema["allOf"][1]["properties"]["code"]["enum"])

    assert enum("404") == ["prize_not_found"]
    assert enum("409") == ["prize_in_use"]
    assert enum("503") == ["prize_usage_unknown"]
    assert enum("422") == ["invalid_body", "invalid_value", "validation_error"]
    assert enum("412") == ["version_mismatch"]
    assert enum("401") == ["invalid_token", "token_expired", "unauthenticated"]
