"""A service that cannot reach another answers 503 naming that service, never its address
or the connection error (issue: the problem detail used to carry the internal URL)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from activity_platform.embedded import free_port
from activity_platform.services import SERVICES
from service_kit.errors import UpstreamUnavailable
from service_kit.http import ServiceClient
from tests.infra import Infra
from tests.service.activity_config.helpers import basic_body
from tests.service.harness import ALL_OPERATOR_PERMISSIONS, token


@pytest.fixture
async def lonely_activity(
    infra: Infra, database_urls: dict[str, str]
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """The activity service on the test database, reward_service at a port where nothing
    listens."""
    port = free_port()
    settings = SERVICES["activity"].settings(
        database_url=database_urls["activity"],
        redis_url=infra.redis_url,
        queue_prefix=infra.queue_prefix,
        reward_url=f"http://127.0.0.1:{port}",
        dev_mode=True,
    )
    app = SERVICES["activity"].create_app(settings=settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://activity.test"
        ) as client:
            yield client, str(port)


async def test_the_503_names_the_service_not_its_address(
    lonely_activity: tuple[httpx.AsyncClient, str],
) -> None:
    client, port = lonely_activity
    operator = token(
        "operator",
        f"t-{uuid.uuid4().hex[:8]}",
        permissions=ALL_OPERATOR_PERMISSIONS,
        secret=client._transport.app.state.settings.jwt_secret,  # type: ignore[attr-defined]
    )
    body = basic_body([str(uuid.uuid4()), str(uuid.uuid4())])
    response = await client.post("/v1/activities", json=body, headers=operator)
    assert response.status_code == 503, response.text
    problem = response.json()
    assert problem["code"] == "upstream_unavailable"
    assert problem["service"] == "reward"
    assert "reward service" in problem["detail"]
    text = response.text
    assert "127.0.0.1" not in text and port not in text and "http://" not in text
    assert "ConnectError" not in text and "Errno" not in text
    # nothing was created
    listed = await client.get("/v1/activities", headers=operator)
    assert listed.json()["items"] == []


@pytest.mark.parametrize("service", ["activity", "referral", "reward", None])
async def test_the_client_says_which_service_it_could_not_reach(service: str | None) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    urls = {
        "activity_url": "http://a.invalid",
        "referral_url": "http://r.invalid",
        "reward_url": "http://w.invalid",
    }
    if service is not None:
        urls[f"{service}_url"] = url + "/"  # a trailing slash names the same service
    settings = SERVICES["activity"].settings(**urls)
    client = ServiceClient(settings, retries=1)
    try:
        with pytest.raises(UpstreamUnavailable) as caught:
            await client.get(url, "/v1/anything", tenant_id="t")
    finally:
        await client.aclose()
    problem = caught.value.to_dict()
    assert problem["service"] == service
    assert str(port) not in problem["detail"] and "127.0.0.1" not in problem["detail"]
    expected = f"The {service} service" if service else "A service this needs"
    assert problem["detail"].startswith(expected)
