"""``activity-platform dev``: embedded servers (unless URLs are given), migrations, and the
three apps + three workers, restarted if they exit; Ctrl-C stops everything."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy.engine import make_url

from activity_platform.embedded import EmbeddedPostgres, EmbeddedRedis, database_url, free_port
from activity_platform.services import SERVICES
from service_kit.auth import CallerKind, encode_token
from service_kit.config import DEV_JWT_SECRET, DEV_MODE_VARIABLE
from service_kit.signing import new_secret

RESTART_DELAY_SECONDS = 1.0
CASH_PORT = 8010
"""The reference cash system's port when it is free."""


class Child:
    def __init__(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        nice: int = 0,
        pass_fds: tuple[int, ...] = (),
    ) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.nice = nice
        self.pass_fds = pass_fds
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    def start(self) -> None:
        niceness = self.nice
        self.process = subprocess.Popen(
            self.argv,
            env=self.env,
            preexec_fn=(lambda: os.nice(niceness)) if niceness else None,
            pass_fds=self.pass_fds,
        )

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)


class HeldSocket:
    """A listening socket bound by the supervisor and handed to a child by its descriptor:
    the port announced is the port served, with no window for another process to take it
    between choosing and binding, and a restarted child gets the same socket back."""

    def __init__(self, host: str, preferred: int | None) -> None:
        self.socket = socket.socket()
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if preferred is not None:
            self.socket.bind((host, preferred))  # an explicit port that is taken: an error
        else:
            try:
                self.socket.bind((host, CASH_PORT))
            except OSError:  # another stack has it: any free port
                self.socket.bind((host, 0))
        self.socket.listen(2048)
        self.port = int(self.socket.getsockname()[1])

    def fileno(self) -> int:
        return self.socket.fileno()

    def stop(self) -> None:
        self.socket.close()


def platform_env(args: argparse.Namespace, data_dir: Path) -> tuple[dict[str, str], list[object]]:
    """The environment of every child: database and Redis URLs, service URLs."""
    env = dict(os.environ)
    env[DEV_MODE_VARIABLE] = "1"  # the development secret is fine here
    # A development stack may hold sandbox tenants (their own clock, advanced over HTTP).
    env.setdefault("SANDBOX_ENABLED", "1")
    started: list[object] = []
    ports = {
        "activity": args.activity_port,
        "referral": args.referral_port,
        "reward": args.reward_port,
    }
    if not all(env.get(f"{spec.env_prefix}DATABASE_URL") for spec in SERVICES.values()):
        pg = EmbeddedPostgres(data_dir / "postgres")
        server_url = pg.start()
        started.append(pg)
        for name, spec in SERVICES.items():
            env.setdefault(f"{spec.env_prefix}DATABASE_URL", database_url(server_url, name))
        print(f"embedded PostgreSQL: {server_url}", file=sys.stderr)
    if not env.get("REDIS_URL"):
        redis = EmbeddedRedis(data_dir / "redis")
        env["REDIS_URL"] = redis.start()
        started.append(redis)
        print(f"embedded Redis: {env['REDIS_URL']}", file=sys.stderr)
    for index, (name, port) in enumerate(ports.items()):
        env[f"{name.upper()}_URL"] = f"http://{args.host}:{port}"
        # Each worker's Prometheus metrics (jobs, outbox backlog, queue depth).
        env.setdefault(
            f"{name.upper()}_WORKER_METRICS_PORT", str(_port_or_free(args.host, 9101 + index))
        )
    # The reference cash system (unless a real one is configured): the default cash endpoint
    # of tenants that configured none, with its own database next to the reward database
    # (named after it, so stacks sharing a server never share payments).
    if not env.get("REWARD_DEFAULT_CASH_ENDPOINT_URL"):
        reward_db = make_url(env["REWARD_DATABASE_URL"]).database or "reward"
        env.setdefault(
            "CASH_DATABASE_URL", database_url(env["REWARD_DATABASE_URL"], f"{reward_db}_cash")
        )
        try:
            held = HeldSocket(args.host, getattr(args, "cash_port", None))
        except OSError:
            for server in reversed(started):
                server.stop()  # type: ignore[attr-defined]
            raise
        started.append(held)
        env["CASH_PORT"] = str(held.port)
        env["CASH_FD"] = str(held.fileno())
        env["REWARD_DEFAULT_CASH_ENDPOINT_URL"] = f"http://{args.host}:{held.port}/v1/payments"
        # Calls to it are signed and verified, as a real cash system would (a key per run).
        secret = env.get("REWARD_DEFAULT_CASH_SIGNING_SECRET") or new_secret()
        env["REWARD_DEFAULT_CASH_SIGNING_SECRET"] = env["CASH_SIGNING_SECRET"] = secret
    return env, started


def _port_or_free(host: str, preferred: int) -> int:
    """The preferred port when it is free, else any free one (several stacks on a machine)."""
    with socket.socket() as s:
        try:
            s.bind((host, preferred))
        except OSError:
            return free_port()
    return preferred


def run_dev(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        env, embedded = platform_env(args, data_dir)
    except OSError as exc:  # e.g. the --cash-port asked for is taken
        print(f"activity-platform dev: {exc}", file=sys.stderr)
        return 1
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    children: list[Child] = []
    try:
        migrate = subprocess.run(
            [sys.executable, "-m", "activity_platform.cli", "migrate"], env=env, check=False
        )
        if migrate.returncode != 0:
            print("migrations failed", file=sys.stderr)
            return 1
        cli = [sys.executable, "-m", "activity_platform.cli"]
        ports = {
            "activity": args.activity_port,
            "referral": args.referral_port,
            "reward": args.reward_port,
        }
        replicas = max(1, getattr(args, "replicas", 1))
        for name in SERVICES:
            children.extend(
                api_children(cli, name, args.host, ports[name], env, replicas, embedded)
            )
            # Accepting events comes first: a worker draining a backlog on the same cores
            # takes the CPU the APIs leave (its backlog is owed in PostgreSQL, never lost).
            worker_nice = getattr(args, "worker_nice", 0)
            for replica in range(replicas):
                children.append(
                    Child(
                        _replica(f"{name}-worker", replica, replicas),
                        [*cli, "worker", name],
                        _worker_env(env, name, replica, args.host),
                        worker_nice,
                    )
                )
        if env.get("CASH_FD"):
            # served on the socket bound above, whose port the URLs already carry
            fd = int(env["CASH_FD"])
            children.append(
                Child(
                    "cash-endpoint", [*cli, "cash-endpoint", "--fd", str(fd)], env, pass_fds=(fd,)
                )
            )
        for child in children:
            child.start()
        _print_banner(args, env)
        while not stopping:
            for child in children:
                code = child.exited()
                if code is not None and not stopping:
                    # arq workers can exit after a Redis restart (arq #435, #498): restart.
                    child.restarts += 1
                    print(
                        f"{child.name} exited with {code}; restarting (restart #{child.restarts})",
                        file=sys.stderr,
                    )
                    time.sleep(RESTART_DELAY_SECONDS)
                    child.start()
            time.sleep(0.5)
        return 0
    finally:
        for child in children:
            child.stop()
        deadline = time.monotonic() + 10
        for child in children:
            if child.process is None:
                continue
            try:
                child.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
        for server in reversed(embedded):
            server.stop()  # type: ignore[attr-defined]
        print("stopped", file=sys.stderr)


def _replica(name: str, replica: int, replicas: int) -> str:
    return name if replicas == 1 else f"{name}-{replica + 1}"


def api_children(
    cli: list[str],
    name: str,
    host: str,
    port: int,
    env: dict[str, str],
    replicas: int,
    held: list[object],
) -> list[Child]:
    """One API process on the service's port, or several sharing one listening socket bound
    here (the kernel spreads connections over them; one that dies loses only its own)."""
    if replicas == 1:
        return [
            Child(f"{name}-api", [*cli, "serve", name, "--host", host, "--port", str(port)], env)
        ]
    shared = HeldSocket(host, port)
    held.append(shared)
    fd = shared.fileno()
    return [
        Child(
            _replica(f"{name}-api", replica, replicas),
            [*cli, "serve", name, "--fd", str(fd)],
            env,
            pass_fds=(fd,),
        )
        for replica in range(replicas)
    ]


def _worker_env(env: dict[str, str], name: str, replica: int, host: str) -> dict[str, str]:
    """A second worker of a service serves its metrics on a port of its own."""
    if replica == 0:
        return env
    key = f"{name.upper()}_WORKER_METRICS_PORT"
    return {**env, key: str(_port_or_free(host, int(env.get(key) or 0) + 10 * replica))}


def _print_banner(args: argparse.Namespace, env: dict[str, str]) -> None:
    secret = env.get("JWT_SECRET", DEV_JWT_SECRET)
    operator = encode_token(
        secret,
        sub="ops-1",
        tenant_id=args.tenant,
        kind=CallerKind.operator,
        permissions=["ActivityCenterFull", "RightsSystemFull"],
    )
    service = encode_token(
        secret, sub="broker-backend", tenant_id=args.tenant, kind=CallerKind.service
    )
    print(
        "\nActivity Platform is up:\n"
        f"  activity  {env['ACTIVITY_URL']}/docs\n"
        f"  referral  {env['REFERRAL_URL']}/docs\n"
        f"  reward    {env['REWARD_URL']}/docs\n"
        "  worker metrics  "
        + ", ".join(
            f"{name} :{env[f'{name.upper()}_WORKER_METRICS_PORT']}/metrics" for name in SERVICES
        )
        + "\n"
        f"  cash      {env['REWARD_DEFAULT_CASH_ENDPOINT_URL']}"
        f"{' (reference cash system)' if env.get('CASH_PORT') else ''}\n"
        f"\noperator token (tenant {args.tenant}):\n  {operator}\n"
        f"back-end (service) token:\n  {service}\n"
        "user tokens: activity-platform token --kind user --tenant "
        f"{args.tenant} --app broker-app --sub u-1001\n"
        "Ctrl-C stops everything.\n",
        flush=True,
    )
