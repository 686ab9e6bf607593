"""compose.yaml and the Dockerfile cannot run here (no Docker engine): lint them instead."""

from __future__ import annotations

from pathlib import Path

import yaml

from activity_platform.cli import build_parser
from activity_platform.services import SERVICES

ROOT = Path(__file__).resolve().parents[2]


def test_compose_runs_every_process_with_valid_commands() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    expected = {"postgres", "redis", "migrate", *SERVICES, *(f"{s}-worker" for s in SERVICES)}
    assert expected <= services.keys()
    parser = build_parser()
    for name in ["migrate", "cash", *SERVICES, *(f"{s}-worker" for s in SERVICES)]:
        args = parser.parse_args(services[name]["command"])  # raises on a wrong command
        assert args.command in {"migrate", "serve", "worker", "cash-endpoint"}
        env = services[name]["environment"]
        for prefix in ("ACTIVITY", "REFERRAL", "REWARD"):
            assert env[f"{prefix}_DATABASE_URL"].startswith("postgresql+asyncpg://")
        assert env["REDIS_URL"].startswith("redis://")
    for name in SERVICES:
        assert services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )


def test_dockerfile_installs_the_project_and_uses_the_cli() -> None:
    text = (ROOT / "Dockerfile").read_text()
    for needed in (
        "COPY src",
        "COPY migrations",
        "pip install",
        'ENTRYPOINT ["activity-platform"]',
    ):
        assert needed in text
