"""Calls between services: httpx with timeouts, a service token minted for the tenant in
question, the request id propagated, and retries on idempotent calls."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx

from service_kit import tracing
from service_kit.auth import CallerKind, encode_token
from service_kit.config import ServiceSettings
from service_kit.correlation import REQUEST_ID_HEADER, request_id_var
from service_kit.errors import UpstreamUnavailable
from service_kit.outbound import OutboundPolicy

log = logging.getLogger(__name__)

RETRYABLE_STATUS = {502, 503, 504}


class ServiceClient:
    def __init__(
        self,
        settings: ServiceSettings,
        *,
        mounts: dict[str, httpx.AsyncBaseTransport] | None = None,
        retries: int = 3,
    ) -> None:
        self.settings = settings
        self.retries = retries
        # What operator-set URLs may reach (checked before every call to one).
        self.outbound = OutboundPolicy.from_settings(settings.dev_mode, settings.outbound_allowlist)
        self._client = httpx.AsyncClient(
            timeout=settings.http_timeout_seconds, mounts=mounts or None
        )
        # A span per call, with ``traceparent`` sent on, when traces are exported.
        tracing.instrument_client(self._client)

    def _headers(self, tenant_id: str) -> dict[str, str]:
        token = encode_token(
            self.settings.jwt_secret,
            sub=self.settings.service_name,
            tenant_id=tenant_id,
            kind=CallerKind.service,
            ttl_seconds=300,
            algorithm=self.settings.jwt_algorithm,
            # The checks every token must pass, the services' own included.
            issuer=self.settings.jwt_issuer,
            audience=self.settings.jwt_audience,
        )
        headers = {"Authorization": f"Bearer {token}"}
        request_id = request_id_var.get()
        if request_id:
            headers[REQUEST_ID_HEADER] = request_id
        return headers

    async def get(
        self, base_url: str, path: str, *, tenant_id: str, params: dict[str, Any] | None = None
    ) -> httpx.Response:
        """GET is idempotent: retried with backoff on connection errors and 502/503/504."""
        return await self._idempotent("GET", base_url, path, tenant_id, params=params)

    async def put(
        self,
        base_url: str,
        path: str,
        *,
        tenant_id: str,
        json: Any,
        timeout: float | None = None,
    ) -> httpx.Response:
        """PUT is idempotent too: retried like GET."""
        return await self._idempotent("PUT", base_url, path, tenant_id, json=json, timeout=timeout)

    async def ask(self, base_url: str, path: str, *, tenant_id: str, json: Any) -> httpx.Response:
        """POST a question that changes nothing (its list is too long for a query string):
        retried like GET."""
        return await self._idempotent("POST", base_url, path, tenant_id, json=json)

    async def _idempotent(
        self,
        method: str,
        base_url: str,
        path: str,
        tenant_id: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        url = base_url.rstrip("/") + path
        delay = 0.1
        for attempt in range(1, self.retries + 1):
            try:
                response = await self._client.request(
                    method,
                    url,
                    params=params,
                    json=json,
                    headers=self._headers(tenant_id),
                    timeout=timeout or self.settings.http_timeout_seconds,
                )
                if response.status_code not in RETRYABLE_STATUS or attempt == self.retries:
                    return response
            except httpx.TransportError as exc:
                if attempt == self.retries:
                    # The caller is told which service, never where it lives or why the
                    # connection failed: those are for the log.
                    service = self.service_at(base_url)
                    log.warning("%s at %s is unreachable: %r", service or "a service", url, exc)
                    which = f"The {service} service" if service else "A service this needs"
                    raise UpstreamUnavailable(
                        f"{which} is unavailable; retry later.", service=service
                    ) from exc
            await asyncio.sleep(delay)
            delay *= 3
        raise AssertionError("unreachable")

    def service_at(self, base_url: str) -> str | None:
        """The platform service ``base_url`` is the address of (``activity``, ``referral``,
        ``reward``), or None for an address that is none of them."""
        wanted = base_url.rstrip("/")
        for name in ("activity", "referral", "reward"):
            if getattr(self.settings, f"{name}_url").rstrip("/") == wanted:
                return name
        return None

    async def get_external(
        self, url: str, *, params: dict[str, Any] | None = None
    ) -> httpx.Response:
        """GET from a system outside the platform (e.g. a segmentation source): retried like
        ``get`` but WITHOUT the platform's service token, which must never leave it. The URL
        is operator-set: ``UrlNotAllowed`` unless the outbound policy allows it (now: what
        its host resolves to may have changed since it was set). Errors do not echo the URL
        or the low-level reason."""
        await self.outbound.check(url)
        delay = 0.1
        headers = {}
        request_id = request_id_var.get()
        if request_id:
            headers[REQUEST_ID_HEADER] = request_id
        for attempt in range(1, self.retries + 1):
            try:
                response = await self._client.get(url, params=params, headers=headers)
                if response.status_code not in RETRYABLE_STATUS or attempt == self.retries:
                    return response
            except httpx.TransportError as exc:
                if attempt == self.retries:
                    raise UpstreamUnavailable("The external system is unreachable.") from exc
            await asyncio.sleep(delay)
            delay *= 3
        raise AssertionError("unreachable")

    async def post(
        self,
        url: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        """A single POST; the caller decides about retries (it knows the idempotency key).
        ``content``: bytes sent as they are (a signed body must be the bytes signed)."""
        return await self._client.post(
            url,
            json=json,
            content=content,
            headers=headers,
            timeout=timeout or self.settings.http_timeout_seconds,
        )

    async def aclose(self) -> None:
        await self._client.aclose()
