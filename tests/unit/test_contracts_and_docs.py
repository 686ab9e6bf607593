"""The generated OpenAPI documents match the code, and each service has one migration head."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from activity_platform.cli import openapi_documents
from activity_platform.services import SERVICES
from service_kit.migrations import alembic_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_openapi_document_is_current(service: str) -> None:
    committed = (ROOT / "openapi" / f"{service}.json").read_text(encoding="utf-8")
    assert committed == openapi_documents()[service], (
        f"openapi/{service}.json is stale: run `activity-platform openapi`"
    )


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_one_migration_head(service: str) -> None:
    script = ScriptDirectory.from_config(alembic_config(service, "postgresql+asyncpg://unused/x"))
    assert len(script.get_heads()) == 1, f"{service} has several alembic heads"


def test_operation_ids_are_unique_and_stable() -> None:
    for service, spec in SERVICES.items():
        schema = spec.create_app().openapi()
        ids = [op["operationId"] for path in schema["paths"].values() for op in path.values()]
        assert len(ids) == len(set(ids)), service


def test_every_operation_names_the_bearer_scheme() -> None:
    """Generated clients and Swagger UI send the token only where the document says so."""
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "openapi"
    for service in ("activity", "referral", "reward"):
        document = json.loads((root / f"{service}.json").read_text())
        assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
        for path, operations in document["paths"].items():
            for method, operation in operations.items():
                assert operation.get("security") == [{"HTTPBearer": []}], (service, method, path)


def test_every_error_response_is_a_problem() -> None:
    """Generated clients type every 4xx/5xx body as the Problem, field errors included."""
    import json

    root = Path(__file__).resolve().parents[2] / "openapi"
    for service in ("activity", "referral", "reward"):
        document = json.loads((root / f"{service}.json").read_text())
        problem = document["components"]["schemas"]["Problem"]
        assert problem["properties"]["errors"]["items"]["required"] == ["loc", "msg", "type"]
        for path, operations in document["paths"].items():
            for method, operation in operations.items():
                for status, response in operation["responses"].items():
                    if status[0] in "45":
                        schema = response["content"]["application/problem+json"]["schema"]
                        # Declared codes: the Problem with `code` narrowed to them.
                        schema = schema.get("allOf", [schema])[0]
                        assert schema == {"$ref": "#/components/schemas/Problem"}, (
                            service,
                            method,
                            path,
                            status,
                        )
