"""``activity-platform healthcheck`` (the image's HEALTHCHECK): finds the process the
container runs and checks it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from activity_platform.cli import main
from activity_platform.embedded import free_port
from activity_platform.healthcheck import check, running_command


def _proc(root: Path, pid: int, *argv: str) -> None:
    (root / str(pid)).mkdir()
    (root / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")


def test_the_server_process_is_found_next_to_the_check(tmp_path: Path) -> None:
    _proc(tmp_path, 1, "/usr/bin/tini", "--", "activity-platform", "migrate")
    _proc(tmp_path, 7, "/opt/platform/bin/python", "/opt/platform/bin/activity-platform",
          "serve", "reward", "--host", "0.0.0.0", "--port", "8003")  # fmt: skip
    _proc(tmp_path, 9, "activity-platform", "healthcheck")
    (tmp_path / "self").mkdir()
    assert running_command(tmp_path) == ["serve", "reward", "--host", "0.0.0.0", "--port", "8003"]


def test_one_off_commands_have_nothing_to_check(tmp_path: Path) -> None:
    _proc(tmp_path, 1, "activity-platform", "migrate")
    _proc(tmp_path, 2, "activity-platform", "healthcheck")
    assert running_command(tmp_path) is None
    assert check(None) == (True, "no server process here: nothing to check")


@pytest.fixture
def healthz_port() -> Iterator[int]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            self.send_response(200 if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def test_an_api_is_healthy_when_its_healthz_answers(healthz_port: int) -> None:
    healthy, said = check(["serve", "activity", "--host", "0.0.0.0", "--port", str(healthz_port)])
    assert healthy and said == f"http://127.0.0.1:{healthz_port}/healthz: 200"
    cash_healthy, _ = check(["cash-endpoint", "--port", str(healthz_port)])
    assert cash_healthy


def test_an_api_that_does_not_answer_is_unhealthy() -> None:
    healthy, said = check(["serve", "activity", "--port", str(free_port())])
    assert not healthy and "ConnectError" in said


def test_the_command_exits_non_zero_when_unhealthy(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    monkeypatch.setattr(
        "activity_platform.healthcheck.running_command",
        lambda: ["serve", "referral", "--port", str(port)],
    )
    assert main(["healthcheck"]) == 1
    assert capsys.readouterr().out.startswith("unhealthy: http://127.0.0.1:")
