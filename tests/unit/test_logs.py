"""Log lines: JSON with the service and request id, an access line per request, personal
data scrubbed, and the request id stamped on the messages a request causes."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from fastapi import APIRouter

from service_kit.app_factory import create_service_app
from service_kit.config import ServiceSettings
from service_kit.correlation import (
    message_context,
    request_id_of,
    request_id_var,
    request_ids_of,
    stamp,
)
from service_kit.logs import REDACTED, ArqJobLines, log_handler, scrub


@contextmanager
def captured(json_logs: bool = True) -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = log_handler("proc", json_logs=json_logs, stream=stream)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def lines_of(stream: io.StringIO) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line]
    return [line for line in lines if line["logger"] != "httpx"]  # the test client's


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("shipment {'recipient_name': 'Chan Tai Man', 'phone': '+852 5555 0199'}", "Chan Tai"),
        ("shipment {'recipient_name': 'Chan Tai Man', 'phone': '+852 5555 0199'}", "5555"),
        ('{"address_line": "Flat 3, 12 Queen\'s Rd", "city": "HK"}', "Queen"),
        ("phone=+85255550199&postal_code=999077", "85255550199"),
        ("phone=+85255550199&postal_code=999077", "999077"),
        ("EMAIL: alice@example.com", "alice@example.com"),
        ("1 validation error\n  input_value='+852 5555 0199', input_type=str", "5555"),
        (
            "(asyncpg.exceptions.X) boom\n[SQL: INSERT ...]\n[parameters: ('Chan', '+852')]\n"
            "(Background on this error at: https://sqlalche.me/e/20/dbapi)",
            "Chan",
        ),
        ("Authorization: Bearer abc.def-ghi", "abc.def-ghi"),
        ("token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.sig", "eyJzdWIiOiJ4In0"),
    ],
)
def test_known_personal_data_is_scrubbed(text: str, secret: str) -> None:
    cleaned = scrub(text)
    assert secret not in cleaned
    assert REDACTED in cleaned


def test_scrubbing_keeps_what_is_not_personal() -> None:
    text = "record R-1 of user u-42 moved issuing → issued (prize 30-day market data)"
    assert scrub(text) == text


def test_every_line_is_json_with_service_request_id_and_scrubbed_traceback() -> None:
    log = logging.getLogger("tests.logs")
    with captured() as stream:
        token = request_id_var.set("req-7")
        try:
            log.info("saved %s", {"phone": "+852 5555 0199", "status": "ready"})
            try:
                raise ValueError("bad recipient_name='Chan Tai Man'")
            except ValueError:
                log.exception("failed")
        finally:
            request_id_var.reset(token)
        log.warning("no request")
    first, second, third = lines_of(stream)
    assert first["service"] == "proc" and first["request_id"] == "req-7"
    assert first["level"] == "INFO" and first["logger"] == "tests.logs"
    assert "5555" not in first["msg"] and "'status': 'ready'" in first["msg"]
    assert "Chan" not in second["exc"] and "ValueError" in second["exc"]
    assert "request_id" not in third and third["service"] == "proc"


def test_the_plain_format_has_the_same_context() -> None:
    with captured(json_logs=False) as stream:
        token = request_id_var.set("req-8")
        try:
            logging.getLogger("tests.logs").info("phone=+85255550199")
        finally:
            request_id_var.reset(token)
    line = stream.getvalue()
    assert " proc tests.logs " in line and "request_id=req-8" in line
    assert "85255550199" not in line


def test_arq_job_lines_that_print_payloads_are_dropped() -> None:
    keep = logging.LogRecord("arq.worker", logging.INFO, "", 0, "Starting worker", (), None)
    start = logging.LogRecord(
        "arq.worker", logging.INFO, "", 0, "%6.2fs → %s(%s)%s", (0.1, "j", "{}", ""), None
    )
    done = logging.LogRecord(
        "arq.worker", logging.INFO, "", 0, "%6.2fs ← %s ● %s", (0.1, "j", "{}"), None
    )
    keeps = ArqJobLines()
    assert keeps.filter(keep) and not keeps.filter(start) and not keeps.filter(done)


def _app() -> Any:
    router = APIRouter()

    @router.get("/v1/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        logging.getLogger("tests.logs").info("reading %s", thing_id)
        return {"id": thing_id}

    @router.get("/boom")
    async def boom() -> None:
        raise RuntimeError("phone=+85255550199")

    return create_service_app(
        title="t",
        description="d",
        settings=ServiceSettings(service_name="things"),
        routers=[router],
    )


async def _get(path: str, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=_app()), base_url="http://t"
    ) as client:
        return await client.get(path, headers=headers)


async def test_each_request_gets_an_access_line_with_its_request_id() -> None:
    with captured() as stream:
        response = await _get("/v1/things/t1?user_id=u-9", **{"X-Request-ID": "req-a"})
        await _get("/healthz")  # probes that pass are not logged at INFO
    assert response.headers["x-request-id"] == "req-a"
    handler_line, access = lines_of(stream)
    assert handler_line["msg"] == "reading t1" and handler_line["service"] == "things"
    assert handler_line["request_id"] == "req-a"
    assert access["logger"] == "access" and access["request_id"] == "req-a"
    assert access["service"] == "things"
    assert (access["method"], access["path"], access["route"], access["status"]) == (
        "GET",
        "/v1/things/t1",  # no query string: it may carry user ids
        "/v1/things/{thing_id}",
        200,
    )
    assert access["duration_ms"] >= 0


async def test_a_500_carries_the_request_id_in_its_header_and_log_lines() -> None:
    with captured() as stream:
        response = await _get("/boom", **{"X-Request-ID": "req-500"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "req-500"
    error, access = lines_of(stream)
    assert error["level"] == "ERROR" and error["request_id"] == "req-500"
    assert "RuntimeError" in error["exc"] and "85255550199" not in error["exc"]
    assert access["status"] == 500 and access["request_id"] == "req-500"


@pytest.mark.parametrize("sent", [b"bad\x7fid", "é-accent".encode("latin-1"), b""])
async def test_an_unprintable_request_id_is_replaced(sent: bytes) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=_app()), base_url="http://t"
    ) as client:
        response = await client.get("/v1/things/t1", headers=[(b"X-Request-ID", sent)])
    echoed = response.headers["x-request-id"]
    assert echoed.encode() != sent and len(echoed) == 32


def test_messages_are_stamped_with_the_current_request_id_without_changing_the_original() -> None:
    payload = {"grant_key": "k"}
    assert stamp(payload) is payload  # no request: nothing to carry
    token = request_id_var.set("req-s")
    try:
        stamped = stamp(payload)
    finally:
        request_id_var.reset(token)
    assert stamped == {"grant_key": "k", "_meta": {"request_id": "req-s"}}
    assert payload == {"grant_key": "k"}
    assert request_id_of(stamped) == "req-s"
    assert request_id_of(payload) is None and request_id_of(None) is None
    assert request_id_of({"_meta": {"request_id": 7}}) is None
    other = {"_meta": {"request_id": "req-t"}}
    assert request_ids_of([stamped, payload, other, stamped]) == ["req-s", "req-t"]
    with message_context(other):
        assert request_id_var.get() == "req-t"
    assert request_id_var.get() is None
