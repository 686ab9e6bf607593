"""``dev`` binds the reference cash system's port itself and hands the listening socket to
the child: the port in the announced URL can never be taken by another stack meanwhile."""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

import pytest

from activity_platform import dev
from activity_platform.embedded import free_port


def _args(cash_port: int | None = None) -> argparse.Namespace:
    return argparse.Namespace(
        host="127.0.0.1",
        activity_port=8001,
        referral_port=8002,
        reward_port=8003,
        cash_port=cash_port,
    )


@pytest.fixture
def servers_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ACTIVITY", "REFERRAL", "REWARD"):
        monkeypatch.setenv(f"{name}_DATABASE_URL", f"postgresql://pg@127.0.0.1:5432/{name}")
        monkeypatch.setenv(f"{name}_WORKER_METRICS_PORT", str(free_port()))
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.delenv("REWARD_DEFAULT_CASH_ENDPOINT_URL", raising=False)


def _taken(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


@pytest.mark.usefixtures("servers_configured")
def test_the_announced_cash_port_is_held_until_dev_stops(tmp_path: Path) -> None:
    env, started = dev.platform_env(_args(), tmp_path)
    (held,) = started
    assert isinstance(held, dev.HeldSocket)
    port = int(env["CASH_PORT"])
    assert env["REWARD_DEFAULT_CASH_ENDPOINT_URL"] == f"http://127.0.0.1:{port}/v1/payments"
    assert int(env["CASH_FD"]) == held.fileno()
    assert _taken(port)  # nobody else can bind it between the banner and the child
    held.stop()
    assert not _taken(port)


@pytest.mark.usefixtures("servers_configured")
def test_a_taken_default_port_falls_back_and_a_taken_explicit_port_is_an_error(
    tmp_path: Path,
) -> None:
    with socket.socket() as other_stack:
        other_stack.bind(("127.0.0.1", 0))
        other_stack.listen()
        busy = other_stack.getsockname()[1]
        with pytest.raises(OSError):
            dev.platform_env(_args(cash_port=busy), tmp_path)
        original = dev.CASH_PORT
        dev.CASH_PORT = busy
        try:
            env, (held,) = dev.platform_env(_args(), tmp_path)
        finally:
            dev.CASH_PORT = original
        assert int(env["CASH_PORT"]) not in (busy, 0)
        assert int(env["CASH_PORT"]) == held.port
        held.stop()  # type: ignore[attr-defined]
