"""The OpenAPI documents pass a linter, and a TypeScript client generated from them
type-checks the way callers use it (enums are unions, money is a string, each error's
``code`` is a union of the codes that operation answers).

Needs node and npm: the pinned tools are installed once into ``.cache/openapi-clients``
(reused while ``package.json`` is unchanged). Skipped, saying so, where node or npm is
missing."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent / "openapi_clients"
TOOLS = ROOT / ".cache" / "openapi-clients"
SERVICES = ("activity", "referral", "reward")

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or shutil.which("npm") is None,
    reason="node and npm are needed to lint the OpenAPI documents and build a TypeScript client",
)


def _run(command: list[str], cwd: Path, timeout: float) -> str:
    try:
        done = subprocess.run(
            command, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{' '.join(command)} took more than {timeout:.0f}s")
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{output[-6000:]}"
    return output


@pytest.fixture(scope="module")
def tools() -> Path:
    """The pinned linter, generator and compiler, installed once and kept between runs."""
    wanted = (HERE / "package.json").read_text()
    manifest = TOOLS / "package.json"
    bin_dir = TOOLS / "node_modules" / ".bin"
    binaries = [bin_dir / name for name in ("redocly", "openapi-typescript", "tsc")]
    current = manifest.exists() and manifest.read_text() == wanted
    if not current or not all(b.exists() for b in binaries):
        TOOLS.mkdir(parents=True, exist_ok=True)
        manifest.write_text(wanted)
        _run(
            ["npm", "install", "--no-audit", "--no-fund", "--no-package-lock", "--loglevel=error"],
            TOOLS,
            timeout=600,
        )
    return TOOLS / "node_modules" / ".bin"


def test_documents_pass_the_openapi_linter(tools: Path) -> None:
    documents = [str(ROOT / "openapi" / f"{service}.json") for service in SERVICES]
    output = _run(
        [str(tools / "redocly"), "lint", "--config", str(HERE / "redocly.yaml"), *documents],
        ROOT,
        timeout=180,
    )
    assert "warning" not in output.lower().replace("deprecation warning", ""), output


@pytest.fixture(scope="module")
def client(tools: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the TypeScript types generated from each document."""
    out = tmp_path_factory.mktemp("client")
    for service in SERVICES:
        _run(
            [
                str(tools / "openapi-typescript"),
                str(ROOT / "openapi" / f"{service}.json"),
                "--output",
                str(out / f"{service}.ts"),
            ],
            ROOT,
            timeout=180,
        )
    return out


def _tsc(tools: Path, where: Path, source: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(tools / "tsc"),
            "--noEmit",
            "--strict",
            "--target",
            "es2022",
            "--module",
            "esnext",
            "--moduleResolution",
            "bundler",
            source,
        ],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_generated_typescript_client_type_checks(tools: Path, client: Path) -> None:
    shutil.copy(HERE / "check.ts", client / "check.ts")
    done = _tsc(tools, client, "check.ts")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_type_check_fails_on_a_wrong_expectation(tools: Path, client: Path) -> None:
    """The check above can fail: a claim the documents do not support is a compile error."""
    (client / "wrong.ts").write_text(
        'import type { components } from "./reward";\n'
        'export const t: components["schemas"]["RewardRecordRead"]["prize_type"] = "voucher";\n'
    )
    done = _tsc(tools, client, "wrong.ts")
    assert done.returncode != 0 and "voucher" in done.stdout, done.stdout + done.stderr
