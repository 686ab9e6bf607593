"""External segment sources are operator-set URLs: https and public only outside dev, and
a failing source's error says nothing about the hosts behind it."""

from __future__ import annotations

import httpx
import pytest

from service_kit.http import ServiceClient
from service_kit.outbound import REFUSED_DETAIL, OutboundPolicy
from tests.service.harness import Platform


def _policy(answers: dict[str, list[str]], allow: str = "") -> OutboundPolicy:
    async def resolver(host: str, port: int) -> list[str]:
        if host not in answers:
            raise OSError("no such host")
        return answers[host]

    base = OutboundPolicy.from_settings(False, allow)
    return OutboundPolicy(dev=False, hosts=base.hosts, networks=base.networks, resolver=resolver)


async def _create(platform: Platform, url: str) -> httpx.Response:
    return await platform.activity.post(
        "/v1/segments",
        json={"name": f"src {url}"[:100], "source": "external", "external_url": url},
        headers=platform.operator(),
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://segments.broker.example/v1/dormant",
        "https://127.0.0.1:5432/",
        "https://db.internal/v1/dormant",
        "https://169.254.169.254/latest/meta-data/",
        "https://missing.example/v1/dormant",
    ],
)
async def test_a_source_that_is_not_https_and_public_is_refused(
    platform: Platform, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    policy = _policy({"segments.broker.example": ["93.184.216.34"], "db.internal": ["10.20.30.40"]})
    monkeypatch.setattr(platform.apps["activity"].state.http, "outbound", policy)
    answer = await _create(platform, url)
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == "url_not_allowed"
    assert answer.json()["detail"] == REFUSED_DETAIL
    listed = await platform.activity.get("/v1/segments", headers=platform.operator())
    assert listed.json()["items"] == []


async def test_an_allow_listed_private_source_is_accepted(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = _policy(
        {"segments.link.internal": ["10.8.0.5"], "crm.internal": ["172.16.4.4"]},
        allow="segments.link.internal, 172.16.0.0/12",
    )
    monkeypatch.setattr(platform.apps["activity"].state.http, "outbound", policy)
    for url in ("https://segments.link.internal/dormant", "https://crm.internal/dormant"):
        answer = await _create(platform, url)
        assert answer.status_code == 201, answer.text


async def test_an_unreachable_source_is_reported_without_its_address(
    platform: Platform,
) -> None:
    app = platform.apps["activity"]
    original = app.state.http

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connect call failed ('10.9.9.9', 8080)")

    app.state.http = ServiceClient(
        platform.settings["activity"],
        mounts={"http://segments.down": httpx.MockTransport(refuse)},
        retries=1,
    )
    try:
        created = await _create(platform, "http://segments.down/v1/dormant")
        assert created.status_code == 201, created.text
        refreshed = await platform.activity.post(
            f"/v1/segments/{created.json()['id']}/refresh", headers=platform.operator()
        )
    finally:
        await app.state.http.aclose()
        app.state.http = original
    assert refreshed.status_code == 502
    problem = refreshed.json()
    assert problem["code"] == "external_segment_unavailable"
    assert problem["detail"] == "The segment source could not be reached."
    assert "10.9.9.9" not in refreshed.text and "segments.down" not in refreshed.text
