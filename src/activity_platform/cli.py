"""``activity-platform``: dev | migrate | token | openapi | serve | worker | cash-endpoint |
healthcheck."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

from activity_platform.services import SERVICES
from service_kit.auth import CallerKind, Permission, encode_token
from service_kit.config import (
    DEV_JWT_SECRET,
    DEV_MODE_VARIABLE,
    ServiceSettings,
    weak_secret,
)
from service_kit.signing import SECRET_MIN_LENGTH
from service_kit.telemetry import configure_logging

REPO_ROOT = Path(__file__).resolve().parents[2]


def cmd_token(args: argparse.Namespace) -> int:
    permissions = [p for p in (args.permissions or "").split(",") if p]
    known = {p.value for p in Permission}
    unknown = [p for p in permissions if p not in known]
    if unknown:
        print(
            f"unknown permission(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}",
            file=sys.stderr,
        )
        return 2
    if args.kind == "user" and not args.app:
        print("--kind user needs --app", file=sys.stderr)
        return 2
    token = encode_token(
        os.environ.get("JWT_SECRET", DEV_JWT_SECRET),
        sub=args.sub or f"{args.kind}-cli",
        tenant_id=args.tenant,
        kind=CallerKind(args.kind),
        app_id=args.app,
        permissions=permissions,
        ttl_seconds=args.ttl,
    )
    print(token)
    return 0


def migrate_all(urls: dict[str, str]) -> None:
    from service_kit.migrations import ensure_database, upgrade

    for name, url in urls.items():
        asyncio.run(ensure_database(url))
        upgrade(name, url)
        print(f"migrated {name}", file=sys.stderr)


def configured_database_urls() -> dict[str, str]:
    return {name: str(spec.settings().database_url) for name, spec in SERVICES.items()}  # type: ignore[attr-defined]


def cmd_migrate(args: argparse.Namespace) -> int:
    urls = configured_database_urls()
    if args.service:
        urls = {args.service: urls[args.service]}
    migrate_all(urls)
    return 0


def openapi_documents() -> dict[str, str]:
    documents = {}
    for name, spec in SERVICES.items():
        app = spec.create_app()
        documents[name] = (
            json.dumps(app.openapi(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        )
    return documents


def cmd_openapi(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, text in openapi_documents().items():
        (out / f"{name}.json").write_text(text, encoding="utf-8")
        print(f"wrote {out / f'{name}.json'}", file=sys.stderr)
    return 0


def unsigned_cash(settings: ServiceSettings) -> str | None:
    """Why cash calls would go out unsigned, or None: a default cash system without the
    key to sign its calls."""
    url = getattr(settings, "default_cash_endpoint_url", None)
    secret = getattr(settings, "default_cash_signing_secret", "")
    if url and len(secret) < SECRET_MIN_LENGTH:
        return (
            "REWARD_DEFAULT_CASH_ENDPOINT_URL is set but REWARD_DEFAULT_CASH_SIGNING_SECRET "
            f"(the key signing its calls) is not, or is shorter than {SECRET_MIN_LENGTH}"
        )
    return None


def refuses_secret(command: str, settings: ServiceSettings) -> bool:
    """Outside ``dev``, a service never starts with a secret anyone could sign tokens with
    (the public development one, an empty or a short one): it says why in one line."""
    if os.environ.get(DEV_MODE_VARIABLE) == "1":
        return False
    reason = weak_secret(settings.jwt_secret, settings.jwt_algorithm)
    fix = "Set JWT_SECRET to a long random string"
    if reason is None:
        reason = unsigned_cash(settings)
        fix = "Set REWARD_DEFAULT_CASH_SIGNING_SECRET to the key the cash system verifies"
    if reason is None:
        return False
    print(
        f"activity-platform {command} {settings.service_name}: refusing to start: {reason}. "
        f"{fix} (or run `activity-platform dev`).",
        file=sys.stderr,
    )
    return True


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    spec = SERVICES[args.service]
    settings = spec.settings()
    if refuses_secret("serve", settings):
        return 2
    configure_logging(settings.log_level, settings.log_json, service=settings.service_name)
    app = spec.create_app(settings=settings)
    if args.fd is None:
        uvicorn.run(
            app, host=args.host, port=args.port or spec.port, log_config=None, access_log=False
        )
        return 0
    _serve_on_socket(app, args.fd)
    return 0


def _serve_on_socket(app: Any, fd: int) -> None:
    """Serve on a listening socket bound by the parent (``dev``): several replicas of an API
    share one socket and the kernel hands each connection to one of them."""
    import uvicorn

    listening = socket.socket(fileno=fd)
    config = uvicorn.Config(app, log_config=None, access_log=False)
    try:
        uvicorn.Server(config).run(sockets=[listening])
    except KeyboardInterrupt:  # Ctrl-C or dev stopping it, as uvicorn.run treats it
        pass


def _use_uvloop() -> None:
    """The workers' event loop is uvloop where installed (as uvicorn's is for the APIs): a
    worker spends much of its time in socket round trips to PostgreSQL and Redis."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - not on every platform
        return
    asyncio.set_event_loop(uvloop.new_event_loop())


def cmd_worker(args: argparse.Namespace) -> int:
    spec = SERVICES[args.service]
    settings = spec.settings()
    if refuses_secret("worker", settings):
        return 2
    configure_logging(settings.log_level, settings.log_json, service=settings.service_name)
    _use_uvloop()
    worker = spec.create_worker(settings=settings)
    worker.run()
    return 0


def cmd_cash_endpoint(args: argparse.Namespace) -> int:
    """The reference cash system (its own process and database), for dev and tests."""
    import uvicorn

    from activity_platform.reference_cash import create_app as create_cash_app

    configure_logging(os.environ.get("LOG_LEVEL", "INFO"), True, service="cash")
    if args.fd is None:
        uvicorn.run(
            create_cash_app(), host=args.host, port=args.port, log_config=None, access_log=False
        )
        return 0
    _serve_on_socket(create_cash_app(), args.fd)
    return 0


def cmd_healthcheck(args: argparse.Namespace) -> int:
    from activity_platform.healthcheck import check, running_command

    healthy, said = check(running_command())
    print(f"{'healthy' if healthy else 'unhealthy'}: {said}")
    return 0 if healthy else 1


def cmd_dev(args: argparse.Namespace) -> int:
    from activity_platform.dev import run_dev

    return run_dev(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="activity-platform", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    dev = sub.add_parser("dev", help="run the whole system (embedded PostgreSQL/Redis by default)")
    dev.add_argument("--data-dir", default=str(Path.cwd() / ".data"))
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--activity-port", type=int, default=8001)
    dev.add_argument("--referral-port", type=int, default=8002)
    dev.add_argument("--reward-port", type=int, default=8003)
    dev.add_argument(
        "--cash-port", type=int, help="reference cash system (default 8010, or a free port)"
    )
    dev.add_argument("--tenant", default="demo-tenant", help="tenant of the printed tokens")
    dev.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="API processes (sharing each service's port) and workers per service",
    )
    dev.add_argument(
        "--worker-nice",
        type=int,
        default=5,
        help="scheduling niceness of the workers: on shared cores the APIs answer first",
    )
    dev.set_defaults(func=cmd_dev)

    migrate = sub.add_parser("migrate", help="create and migrate the service databases")
    migrate.add_argument("--service", choices=sorted(SERVICES))
    migrate.set_defaults(func=cmd_migrate)

    token = sub.add_parser("token", help="mint a development JWT")
    token.add_argument("--kind", choices=[k.value for k in CallerKind], required=True)
    token.add_argument("--tenant", required=True)
    token.add_argument("--app")
    token.add_argument("--sub")
    token.add_argument("--permissions", help="comma-separated, e.g. ActivityCenterFull")
    token.add_argument("--ttl", type=int, default=12 * 3600, help="seconds")
    token.set_defaults(func=cmd_token)

    openapi = sub.add_parser("openapi", help="write openapi/<service>.json")
    openapi.add_argument("--out", default=str(REPO_ROOT / "openapi"))
    openapi.set_defaults(func=cmd_openapi)

    serve = sub.add_parser("serve", help="run one service's API")
    serve.add_argument("service", choices=sorted(SERVICES))
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int)
    serve.add_argument("--fd", type=int, help="serve on this inherited listening socket instead")
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser("worker", help="run one service's arq worker")
    worker.add_argument("service", choices=sorted(SERVICES))
    worker.set_defaults(func=cmd_worker)

    cash = sub.add_parser(
        "cash-endpoint", help="run the reference cash system (CASH_DATABASE_URL, CASH_*)"
    )
    cash.add_argument("--host", default="127.0.0.1")
    cash.add_argument("--port", type=int, default=8010)
    cash.add_argument("--fd", type=int, help="serve on this inherited listening socket instead")
    cash.set_defaults(func=cmd_cash_endpoint)

    health = sub.add_parser(
        "healthcheck",
        help="exit 0 if the server or worker running on this host is healthy (the image's "
        "HEALTHCHECK)",
    )
    health.set_defaults(func=cmd_healthcheck)

    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except Exception as exc:
        from activity_platform.embedded import EmbeddedServersMissing
        from service_kit.transient import is_unreachable

        if isinstance(exc, EmbeddedServersMissing):
            print(f"activity-platform {args.command}: {exc}", file=sys.stderr)
            return 2

        if not is_unreachable(exc):
            raise
        # PostgreSQL or Redis is not there: one line saying so, not a page of traceback.
        print(
            f"activity-platform {args.command}: PostgreSQL or Redis unreachable "
            f"({type(exc).__name__}: {exc})",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
