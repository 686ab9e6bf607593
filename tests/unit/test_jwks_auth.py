"""Tokens of an identity provider: RS256 and ES256 verified with the keys of a JWKS URL
(served locally here), with issuer and audience checks; HS256 with JWT_SECRET still works
(development and the services' own calls)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import APIRouter, Depends

from activity_platform.embedded import free_port
from service_kit.app_factory import create_service_app
from service_kit.auth import Authenticator, CallerKind, Principal, encode_token
from service_kit.config import ServiceSettings
from service_kit.http import ServiceClient

ISSUER = "https://idp.broker.example/"
AUDIENCE = "activity-platform"
SECRET = "internal-service-secret-0123456789abcdef"

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _jwk(key: Any, kid: str, alg: str) -> dict[str, Any]:
    algorithm = jwt.algorithms.RSAAlgorithm if alg == "RS256" else jwt.algorithms.ECAlgorithm
    public = json.loads(algorithm.to_jwk(key.public_key()))
    return {**public, "kid": kid, "alg": alg, "use": "sig"}


@pytest.fixture(scope="module")
def jwks_url() -> Iterator[str]:
    body = json.dumps(
        {"keys": [_jwk(RSA_KEY, "rsa-1", "RS256"), _jwk(EC_KEY, "ec-1", "ES256")]}
    ).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            self.send_response(200 if self.path == "/.well-known/jwks.json" else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    finally:
        server.shutdown()
        server.server_close()


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "sub": "ops-1",
        "tenant_id": "tenant-a",
        "kind": "operator",
        "permissions": ["ActivityCenterFull"],
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 600,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def rs256(key: Any = RSA_KEY, kid: str = "rsa-1", **overrides: Any) -> str:
    return jwt.encode(claims(**overrides), key, algorithm="RS256", headers={"kid": kid})


def es256(**overrides: Any) -> str:
    return jwt.encode(claims(**overrides), EC_KEY, algorithm="ES256", headers={"kid": "ec-1"})


def _settings(jwks_url: str, **overrides: Any) -> ServiceSettings:
    values: dict[str, Any] = {
        "service_name": "t",
        "jwt_secret": SECRET,
        "jwt_jwks_url": jwks_url,
        "jwt_issuer": ISSUER,
        "jwt_audience": AUDIENCE,
    }
    values.update(overrides)
    return ServiceSettings(**values)


async def call(settings: ServiceSettings, token: str) -> httpx.Response:
    router = APIRouter()
    operator = Authenticator(kinds={CallerKind.operator, CallerKind.service})

    @router.get("/whoami")
    async def whoami(principal: Principal = Depends(operator)) -> dict[str, str]:
        return {"sub": principal.sub, "tenant": principal.tenant_id, "kind": principal.kind}

    app = create_service_app(title="t", description="d", settings=settings, routers=[router])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        return await client.get("/whoami", headers={"Authorization": f"Bearer {token}"})


@pytest.mark.parametrize("make", [rs256, es256], ids=["RS256", "ES256"])
async def test_identity_provider_tokens_are_verified_with_its_key_set(
    jwks_url: str, make: Any
) -> None:
    response = await call(_settings(jwks_url), make())
    assert response.status_code == 200, response.text
    assert response.json() == {"sub": "ops-1", "tenant": "tenant-a", "kind": "operator"}


async def test_an_audience_list_naming_the_platform_is_accepted(jwks_url: str) -> None:
    token = rs256(aud=["other-api", AUDIENCE])
    assert (await call(_settings(jwks_url), token)).status_code == 200


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(lambda: rs256(iss="https://evil.example/"), id="wrong issuer"),
        pytest.param(lambda: rs256(iss=None), id="no issuer"),
        pytest.param(lambda: rs256(aud="another-api"), id="wrong audience"),
        pytest.param(lambda: rs256(aud=None), id="no audience"),
        pytest.param(lambda: rs256(key=OTHER_RSA_KEY), id="signed by another key"),
        pytest.param(lambda: rs256(kid="unknown"), id="unknown kid"),
        pytest.param(lambda: rs256(tenant_id=None), id="no tenant"),
        pytest.param(lambda: rs256(kind="root"), id="unknown kind"),
        pytest.param(
            lambda: jwt.encode(claims(), "x" * 40, algorithm="HS256"), id="HS256, another secret"
        ),
        pytest.param(
            lambda: jwt.encode(claims(), RSA_KEY, algorithm="RS512", headers={"kid": "rsa-1"}),
            id="an algorithm not accepted",
        ),
        pytest.param(lambda: "not.a.token", id="garbage"),
    ],
)
async def test_tokens_failing_a_check_are_401(jwks_url: str, token: Any) -> None:
    response = await call(_settings(jwks_url), token())
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "invalid_token"


async def test_an_expired_token_is_401_token_expired(jwks_url: str) -> None:
    response = await call(_settings(jwks_url), rs256(exp=int(time.time()) - 5))
    assert response.status_code == 401 and response.json()["code"] == "token_expired"


async def test_the_services_own_hs256_tokens_still_work(jwks_url: str) -> None:
    settings = _settings(jwks_url)
    # What ServiceClient sends another service: HS256 with JWT_SECRET, issuer and audience.
    headers = ServiceClient(settings)._headers("tenant-a")
    token = headers["Authorization"].removeprefix("Bearer ")
    response = await call(settings, token)
    assert response.status_code == 200 and response.json()["kind"] == "service"
    # Without the configured issuer and audience, even the right secret is not enough.
    bare = encode_token(SECRET, sub="reward", tenant_id="tenant-a", kind=CallerKind.service)
    assert (await call(settings, bare)).status_code == 401


async def test_an_unreachable_key_set_is_a_503_not_a_401() -> None:
    settings = _settings(f"http://127.0.0.1:{free_port()}/jwks.json")
    response = await call(settings, rs256())
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
