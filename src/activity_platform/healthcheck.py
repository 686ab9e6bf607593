"""``activity-platform healthcheck``: is the process this container runs healthy?

One image runs every process, so the image's ``HEALTHCHECK`` cannot name a port or a
service: it looks at the ``activity-platform`` command running next to it (``/proc``) and
checks that one:

- ``serve`` / ``cash-endpoint``: ``GET /healthz`` on its port answers 200;
- ``worker``: the worker's health key in Redis is fresh. arq writes it from its main loop
  every ``HEALTH_INTERVAL_SECONDS`` (expiring shortly after), so a hung loop, a lost Redis
  or a dead process all read as unhealthy; the key names the host, so each replica answers
  for itself;
- anything else (``migrate``, one-off commands): nothing to check.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path

import httpx

from activity_platform.services import SERVICES
from service_kit.config import ServiceSettings
from service_kit.queue import redis_client
from service_kit.worker import worker_health_key

CHECKED = ("serve", "worker", "cash-endpoint")
TIMEOUT_SECONDS = 3.0


def _command_lines(proc: Path) -> Iterable[list[str]]:
    for entry in sorted(proc.glob("[0-9]*"), key=lambda p: int(p.name)):
        try:
            raw = (entry / "cmdline").read_bytes()
        except OSError:  # the process ended meanwhile, or is not ours to read
            continue
        yield [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def running_command(proc: Path = Path("/proc")) -> list[str] | None:
    """The arguments of the ``activity-platform`` server process on this host, if any."""
    for argv in _command_lines(proc):
        for index, part in enumerate(argv):
            if Path(part).name == "activity-platform" and index + 1 < len(argv):
                rest = argv[index + 1 :]
                if rest[0] in CHECKED:
                    return rest
                break
    return None


def _local(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host


def _http_ok(host: str, port: int) -> tuple[bool, str]:
    url = f"http://{_local(host)}:{port}/healthz"
    try:
        response = httpx.get(url, timeout=TIMEOUT_SECONDS)
    except httpx.HTTPError as exc:
        return False, f"{url}: {type(exc).__name__}"
    return response.status_code == 200, f"{url}: {response.status_code}"


async def worker_healthy(settings: ServiceSettings, service: str) -> tuple[bool, str]:
    key = worker_health_key(settings.queue_prefix, service)
    # A plain or a Sentinel URL (the master is asked, as the worker writes there).
    redis = redis_client(
        settings.redis_url, socket_connect_timeout=TIMEOUT_SECONDS, socket_timeout=TIMEOUT_SECONDS
    )
    try:
        fresh = bool(await redis.exists(key))
    except Exception as exc:  # noqa: BLE001 - any failure is "unhealthy", said in a line
        return False, f"Redis: {type(exc).__name__}"
    finally:
        await redis.aclose()
    return fresh, f"{key}: {'fresh' if fresh else 'missing'}"


def check(argv: list[str] | None) -> tuple[bool, str]:
    """(healthy, what was checked) for a command line found by ``running_command``."""
    from activity_platform.cli import build_parser

    if argv is None:
        return True, "no server process here: nothing to check"
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return _http_ok(args.host, args.port or SERVICES[args.service].port)
    if args.command == "cash-endpoint":
        return _http_ok(args.host, args.port)
    return asyncio.run(worker_healthy(SERVICES[args.service].settings(), args.service))
