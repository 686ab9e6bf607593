"""Every operation of the three API documents, fuzzed with schemathesis (valid and invalid
requests generated from the documents), as an operator with every permission and as an app
user: no answer is a server error, every status code is one the document lists, and every
documented answer matches its schema.

The apps run in-process on the test databases (``tests/service/harness.py``). Hypothesis
runs in a thread and hands each request to the test's event loop, where the apps, their
database pools and Redis connections live. Failures are collected, not raised, so one run
reports all of them; the number of examples is bounded (``FUZZ_EXAMPLES`` per operation
and mode, derandomized, no shrinking) so the whole run takes a minute or two.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from activity_platform.services import SERVICES
from tests.service.harness import BASE_URLS, Platform

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "6"))
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
# A request the generator makes that no HTTP client could send (e.g. a header with a
# line break) is not a finding about the product.
UNSENDABLE = (httpx.InvalidURL, httpx.LocalProtocolError, UnicodeEncodeError, ValueError)


@dataclass
class Finding:
    operation: str
    mode: str
    request: str
    status: int
    message: str

    def __str__(self) -> str:
        return f"{self.operation} [{self.mode}] → {self.status}\n  {self.request}\n  {self.message}"


def _prepared(case: Any, base_url: str) -> requests.PreparedRequest:
    """The exact bytes schemathesis would send (query encoding, JSON, multipart …)."""
    kwargs = case.as_transport_kwargs(base_url=base_url)
    kwargs.pop("cookies", None)
    return requests.Request(**kwargs).prepare()


def _fuzz_operations(
    service: str,
    platform: Platform,
    headers: dict[str, str],
    send: Callable[[requests.PreparedRequest], httpx.Response],
) -> tuple[list[Finding], int]:
    schema = schemathesis.openapi.from_dict(platform.apps[service].openapi())
    findings: list[Finding] = []
    sent = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            sent += _fuzz_one(operation, mode, BASE_URLS[service], headers, send, findings)
    return findings, sent


def _fuzz_one(
    operation: Any,
    mode: GenerationMode,
    base_url: str,
    headers: dict[str, str],
    send: Callable[[requests.PreparedRequest], httpx.Response],
    findings: list[Finding],
) -> int:
    """Up to ``EXAMPLES`` requests to one operation; what the checks refuse is appended to
    ``findings``. Returns the number of requests sent."""
    sent = 0

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode, headers=headers))
    def run(case: Any) -> None:
        nonlocal sent
        try:
            prepared = _prepared(case, base_url)
            response = send(prepared)
        except UNSENDABLE:
            return
        sent += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except (FailureGroup, Failure) as exc:
            findings.append(
                Finding(
                    operation=operation.label,
                    mode=mode.value,
                    request=f"{prepared.method} {prepared.url} {prepared.body!r:.300}",
                    status=response.status_code,
                    message=_first_lines(str(exc), response),
                )
            )

    try:
        run()
    except Unsatisfiable:  # nothing to make invalid (an operation without input)
        pass
    return sent


def _first_lines(message: str, response: httpx.Response) -> str:
    lines = [line for line in message.splitlines() if line.strip()][:8]
    return " | ".join(lines) + f" | body: {response.text[:300]}"


@pytest.mark.parametrize("service", list(SERVICES))
@pytest.mark.parametrize("caller", ["operator", "user"])
async def test_fuzzed_requests_get_documented_answers(
    platform: Platform, service: str, caller: str
) -> None:
    headers = platform.operator() if caller == "operator" else platform.user("fuzz-user")
    client = platform.clients[service]
    loop = asyncio.get_running_loop()

    async def call(prepared: requests.PreparedRequest) -> httpx.Response:
        body = prepared.body
        if isinstance(body, str):
            body = body.encode()
        return await client.request(
            str(prepared.method),
            str(prepared.url),
            headers=dict(prepared.headers),
            content=body,
        )

    def send(prepared: requests.PreparedRequest) -> httpx.Response:
        return asyncio.run_coroutine_threadsafe(call(prepared), loop).result(timeout=60)

    findings, sent = await asyncio.to_thread(_fuzz_operations, service, platform, headers, send)
    assert sent > 0
    assert not findings, f"{len(findings)} findings in {sent} requests:\n" + "\n".join(
        str(f) for f in findings
    )
