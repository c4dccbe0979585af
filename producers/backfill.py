"""REST backfill of trade-id gaps: rate-limited, retried GETs (httpx + tenacity) per provider."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any, Final

import httpx
import structlog
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

log = structlog.get_logger(__name__)

RETRY_STATUSES: Final = frozenset({408, 418, 425, 429, 500, 502, 503, 504})
ATTEMPTS: Final = 5


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code in RETRY_STATUSES
    return isinstance(exc, httpx.TransportError)


class RestClient:
    """GET JSON from one provider: at most one request per ``min_interval_s``, up to 5 attempts with
    exponential back-off and jitter on transport errors, 429 and 5xx."""

    def __init__(self, base_url: str, min_interval_s: float, timeout_s: float = 10.0) -> None:
        self._client = httpx.AsyncClient(base_url=base_url, timeout=timeout_s)
        self._min_interval_s = min_interval_s
        self._next_slot = 0.0
        self._lock = asyncio.Lock()

    async def _pace(self) -> None:
        async with self._lock:
            now = time.monotonic()
            wait = self._next_slot - now
            self._next_slot = max(now, self._next_slot) + self._min_interval_s
        if wait > 0:
            await asyncio.sleep(wait)

    async def get_json(self, path: str, params: Mapping[str, Any]) -> Any:
        """``GET path?params`` as JSON.

        Raises:
            httpx.HTTPError: after the last attempt, or at once for a non-retryable status.
            ValueError: the body is not JSON.
        """
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(ATTEMPTS),
            wait=wait_random_exponential(multiplier=0.5, max=10),
            retry=retry_if_exception(_retryable),
            reraise=True,
        ):
            with attempt:
                await self._pace()
                response = await self._client.get(path, params=dict(params))
                response.raise_for_status()
                return response.json()
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def aclose(self) -> None:
        await self._client.aclose()
