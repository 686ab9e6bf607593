"""Cash calls are signed with the tenant's secret and the reference cash system verifies
them; a tenant's cash system must be an https URL on a public address outside dev."""

from __future__ import annotations

import pytest

from service_kit.outbound import REFUSED_DETAIL, OutboundPolicy
from tests.service.harness import Platform
from tests.service.reward.conftest import CASH_PAYMENTS_URL, CashSystem
from tests.service.reward.helpers import cash_prize, create_record, drain, grant, record

SECRET = "tenant-a-signing-secret-0123456789abcdef"


@pytest.fixture(autouse=True)
def fast_retries(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform.settings["reward"], "cash_retry_base_seconds", 0.05)


@pytest.fixture
def verifying_cash(cash: CashSystem, monkeypatch: pytest.MonkeyPatch) -> CashSystem:
    monkeypatch.setattr(cash.app.state.settings, "signing_secret", SECRET)
    return cash


async def _put(platform: Platform, body: dict[str, str], tenant: str = "tenant-a"):  # type: ignore[no-untyped-def]
    return await platform.reward.put(
        "/v1/payout-endpoint", json=body, headers=platform.operator(tenant)
    )


async def test_a_signed_payment_is_verified_and_paid(
    platform: Platform, verifying_cash: CashSystem
) -> None:
    answer = await _put(platform, {"url": CASH_PAYMENTS_URL, "signing_secret": SECRET})
    assert answer.status_code == 200, answer.text
    assert answer.json()["signed"] is True and answer.json()["signing_secret"] is None
    prize = await cash_prize(platform, "100.00")
    created = await create_record(platform, grant(prize["id"], "u-signed"))
    assert created is not None
    await drain(platform)
    assert (await record(platform, created.id)).status == "issued"
    assert await verifying_cash.count() == 1


async def test_a_wrong_signature_is_refused_and_nothing_is_paid(
    platform: Platform, verifying_cash: CashSystem
) -> None:
    other = "another-tenants-secret-0123456789abcdef"
    assert (await _put(platform, {"url": CASH_PAYMENTS_URL, "signing_secret": other})).is_success
    prize = await cash_prize(platform, "100.00")
    created = await create_record(platform, grant(prize["id"], "u-forged"))
    assert created is not None
    await drain(platform)
    failed = await record(platform, created.id)
    assert failed.status == "failed" and failed.failure_reason == "cash_refused:invalid_signature"
    assert await verifying_cash.count() == 0


async def test_a_secret_is_generated_shown_once_and_kept(platform: Platform) -> None:
    first = await _put(platform, {"url": CASH_PAYMENTS_URL})
    assert first.status_code == 200, first.text
    generated = first.json()["signing_secret"]
    assert generated and len(generated) >= 32 and first.json()["signed"] is True
    shown = await platform.reward.get("/v1/payout-endpoint", headers=platform.operator())
    assert shown.json()["signing_secret"] is None and shown.json()["signed"] is True
    again = await _put(platform, {"url": CASH_PAYMENTS_URL + "?v=2"})
    assert again.json()["signing_secret"] is None  # the one in place is kept, not rotated
    rotated = await _put(platform, {"url": CASH_PAYMENTS_URL, "signing_secret": SECRET})
    assert rotated.json()["signing_secret"] is None and rotated.json()["signed"] is True


@pytest.mark.parametrize("secret", ["short", "x" * 129, "has spaces in it, 32 characters long"])
async def test_a_weak_or_malformed_secret_is_refused(platform: Platform, secret: str) -> None:
    answer = await _put(platform, {"url": CASH_PAYMENTS_URL, "signing_secret": secret})
    assert answer.status_code == 422 and answer.json()["code"] == "validation_error"


def _policy(answers: dict[str, list[str]]) -> OutboundPolicy:
    async def resolver(host: str, port: int) -> list[str]:
        if host not in answers:
            raise OSError("no such host")
        return answers[host]

    return OutboundPolicy(dev=False, resolver=resolver)


@pytest.mark.parametrize(
    "url",
    [
        "http://cash.broker.example/v1/payments",  # plain http
        "https://10.1.2.3/v1/payments",  # a private literal
        "https://[::ffff:127.0.0.1]/v1/payments",  # loopback, mapped into IPv6
        "https://metadata.internal/latest",  # resolves to the link-local metadata service
        "https://split.example/v1/payments",  # one public and one private answer
        "https://nowhere.example/v1/payments",  # does not resolve
    ],
)
async def test_outside_dev_a_cash_url_must_be_https_and_public(
    platform: Platform, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    policy = _policy(
        {
            "cash.broker.example": ["93.184.216.34"],
            "metadata.internal": ["169.254.169.254"],
            "split.example": ["93.184.216.34", "192.168.1.10"],
        }
    )
    monkeypatch.setattr(platform.apps["reward"].state.http, "outbound", policy)
    answer = await _put(platform, {"url": url})
    assert answer.status_code == 422, answer.text
    # The same words whatever the reason: nothing is learnt about internal names.
    assert answer.json()["code"] == "url_not_allowed"
    assert answer.json()["detail"] == REFUSED_DETAIL
    shown = await platform.reward.get("/v1/payout-endpoint", headers=platform.operator())
    assert shown.json()["source"] == "none"
    good = await _put(platform, {"url": "https://cash.broker.example/v1/payments"})
    assert good.status_code == 200, good.text


async def test_a_cash_url_that_turns_private_fails_the_record_without_a_call(
    platform: Platform, verifying_cash: CashSystem, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _put(platform, {"url": CASH_PAYMENTS_URL, "signing_secret": SECRET})
    # Outside dev, the pinned URL is checked again before the call: refused here (plain
    # http, and its name now resolves inward), the record fails and nothing is sent.
    policy = _policy({"cash.test": ["10.0.0.7"]})
    monkeypatch.setattr(OutboundPolicy, "from_settings", classmethod(lambda cls, *a: policy))
    prize = await cash_prize(platform, "100.00")
    created = await create_record(platform, grant(prize["id"], "u-inward"))
    assert created is not None
    await drain(platform)
    failed = await record(platform, created.id)
    assert failed.status == "failed" and failed.failure_reason == "cash_endpoint_not_allowed"
    assert await verifying_cash.count() == 0
