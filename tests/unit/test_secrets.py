"""Outside development, a service refuses to start with a secret anyone could sign with."""

from __future__ import annotations

import pytest

from activity_platform.cli import main
from service_kit.config import DEV_JWT_SECRET, weak_secret


@pytest.mark.parametrize(
    ("secret", "reason"),
    [
        ("", "empty"),
        (DEV_JWT_SECRET, "public development secret"),
        ("x", "shorter than 32"),
        ("s3cret-but-only-31-characters!!", "shorter than 32"),
    ],
)
def test_weak_hmac_secrets_are_named(secret: str, reason: str) -> None:
    found = weak_secret(secret, "HS256")
    assert found is not None and reason in found


def test_a_long_random_secret_is_fine() -> None:
    assert weak_secret("k" * 32, "HS256") is None
    assert weak_secret("q8Zf0T1s-3mVb9cY2xLr7Wn5Hj4Pd6Ga", "HS512") is None


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_serve_and_worker_refuse_the_development_secret_outside_dev(
    command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("ACTIVITY_PLATFORM_DEV", raising=False)
    monkeypatch.delenv("JWT_SECRET", raising=False)
    assert main([command, "reward"]) == 2
    line = capsys.readouterr().err.strip()
    assert "refusing to start" in line and "development secret" in line
    assert "\n" not in line

    monkeypatch.setenv("JWT_SECRET", "short")
    assert main([command, "reward"]) == 2
    assert "shorter than 32" in capsys.readouterr().err
