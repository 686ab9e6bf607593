"""The outbound URL policy (operator-set URLs) and the signature of cash calls, pure."""

from __future__ import annotations

import pytest

from activity_platform.cli import main
from service_kit.outbound import OutboundPolicy, UrlNotAllowed
from service_kit.signing import new_secret, sign, verify

PUBLIC = "93.184.216.34"


def policy(answers: dict[str, list[str]] | None = None, allow: str = "") -> OutboundPolicy:
    table = answers or {}

    async def resolver(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError("no such host")
        return table[host]

    base = OutboundPolicy.from_settings(False, allow)
    return OutboundPolicy(dev=False, hosts=base.hosts, networks=base.networks, resolver=resolver)


@pytest.mark.parametrize(
    "url",
    [
        "http://public.example/x",
        "ftp://public.example/x",
        "https://user:pw@public.example/x",
        "https:///nohost",
        "https://127.0.0.1/x",
        "https://10.0.0.1/x",
        "https://172.16.0.1/x",
        "https://192.168.0.1/x",
        "https://100.64.0.1/x",  # shared address space (carrier NAT)
        "https://169.254.169.254/latest",  # link-local: cloud metadata
        "https://0.0.0.0/x",
        "https://224.0.0.1/x",
        "https://[::1]/x",
        "https://[fe80::1]/x",
        "https://[fd00::1]/x",
        "https://[::ffff:10.0.0.1]/x",
        "https://localhost/x",
        "https://inward.example/x",
        "https://mixed.example/x",
        "https://unknown.example/x",
        "https://public.example:99999/x",
    ],
)
async def test_refused_outside_dev(url: str) -> None:
    rules = policy(
        {
            "public.example": [PUBLIC],
            "localhost": ["127.0.0.1", "::1"],
            "inward.example": ["10.1.1.1"],
            "mixed.example": [PUBLIC, "fe80::1%eth0"],
        }
    )
    with pytest.raises(UrlNotAllowed):
        await rules.check(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://public.example/x",
        f"https://{PUBLIC}/x",
        "https://[2606:2800:220:1:248:1893:25c8:1946]/x",
        "https://PUBLIC.example./x",
    ],
)
async def test_public_https_urls_are_allowed(url: str) -> None:
    await policy({"public.example": [PUBLIC]}).check(url)


async def test_the_allow_list_names_hosts_and_networks() -> None:
    rules = policy(
        {"cash.link": ["10.8.0.5"], "crm.link": ["172.20.1.1"], "other.link": ["10.9.0.1"]},
        allow="cash.link, 172.16.0.0/12,",
    )
    await rules.check("https://cash.link/pay")
    await rules.check("https://crm.link/pay")
    await rules.check("https://172.31.0.1/pay")
    with pytest.raises(UrlNotAllowed):
        await rules.check("https://other.link/pay")
    with pytest.raises(UrlNotAllowed):
        await rules.check("http://cash.link/pay")  # allow-listed hosts still need https


async def test_dev_allows_plain_http_and_local_hosts() -> None:
    await OutboundPolicy(dev=True).check("http://127.0.0.1:8010/v1/payments")


def test_a_signature_verifies_only_the_same_body_secret_and_recent_time() -> None:
    secret, body = new_secret(), b'{"reference":"R-1","amount":"10.00"}'
    header = sign(secret, body, 1_000_000)
    assert header.startswith("t=1000000,v1=")
    assert verify(secret, body, header, 1_000_100)
    assert not verify(secret, body + b" ", header, 1_000_100)  # body changed
    assert not verify(new_secret(), body, header, 1_000_100)  # another key
    assert not verify(secret, body, header, 1_000_301)  # too old: a replay
    assert not verify(secret, body, header, 999_699)  # from the future
    assert not verify(secret, body, None, 1_000_000)
    assert not verify(secret, body, "v1=abc", 1_000_000)
    assert not verify(secret, body, "t=x,v1=abc", 1_000_000)
    # A sender rotating keys may send two signatures; one valid is enough.
    rotating = f"{header},v1={'0' * 64}"
    assert verify(secret, body, rotating, 1_000_000)


def test_reward_refuses_to_start_with_a_default_cash_system_it_cannot_sign_for(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("ACTIVITY_PLATFORM_DEV", raising=False)
    monkeypatch.setenv("JWT_SECRET", "k" * 40)
    monkeypatch.setenv("REWARD_DEFAULT_CASH_ENDPOINT_URL", "https://cash.broker.example/pay")
    monkeypatch.delenv("REWARD_DEFAULT_CASH_SIGNING_SECRET", raising=False)
    assert main(["worker", "reward"]) == 2
    line = capsys.readouterr().err.strip()
    assert "refusing to start" in line and "REWARD_DEFAULT_CASH_SIGNING_SECRET" in line
    assert "\n" not in line
