"""A thread-safe HTTP GET cache with stale fallback, shared by every session of the dashboard process.

A response is reused for ``ttl_s`` seconds, so several browser tabs (and several callbacks of one page)
cost one request. The last good response of each URL is kept: when the server cannot be reached, times
out or answers 5xx, :meth:`HttpCache.get` returns that copy marked stale (``Fetched.error`` says why), so
the page keeps showing data while a notice tells the user. After a failure the origin is not asked again
for ``retry_s`` seconds, so a dead host costs one timeout per ``retry_s``, not one per callback.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

Params = Mapping[str, str | int | float]
Parser = Callable[[httpx.Response], Any]


class FetchError(Exception):
    """A GET failed and no earlier response of that request is cached.

    ``status`` is the HTTP status (None when the server was not reached); ``detail`` the reason.
    """

    def __init__(self, url: str, detail: str, status: int | None = None) -> None:
        super().__init__(f"{url}: {detail}")
        self.url = url
        self.detail = detail
        self.status = status


@dataclass(frozen=True)
class Fetched:
    """A parsed response body and when it was received (Unix seconds); ``error`` is set when it is a stale
    copy served because a newer request failed."""

    data: Any
    fetched_at: float
    error: str | None = None

    @property
    def stale(self) -> bool:
        return self.error is not None


def json_body(response: httpx.Response) -> Any:
    """The response's JSON body."""
    return response.json()


def text_body(response: httpx.Response) -> str:
    """The response's text body."""
    return response.text


class HttpCache:
    """GET with a TTL cache, stale fallback and per-origin back-off; at most ``max_entries`` URLs kept."""

    def __init__(
        self,
        timeout_s: float,
        ttl_s: float,
        retry_s: float,
        headers: Mapping[str, str] | None = None,
        max_entries: int = 256,
    ) -> None:
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 1.0)), headers=dict(headers or {})
        )
        self._ttl_s = ttl_s
        self._retry_s = retry_s
        self._max_entries = max_entries
        self._entries: OrderedDict[tuple[str, tuple[tuple[str, str], ...]], Fetched] = OrderedDict()
        self._down: dict[str, tuple[float, str]] = {}  # origin -> (retry at, monotonic; reason)
        self._lock = threading.Lock()

    def get(
        self,
        url: str,
        params: Params | None = None,
        parse: Parser = json_body,
        ttl_s: float | None = None,
        accept: Collection[int] = (),
    ) -> Fetched:
        """The parsed body of ``GET url?params``: cached, fresh, or a stale copy when the server fails.

        ``ttl_s`` overrides the cache TTL of this request; ``accept`` lists error statuses whose body is a
        normal answer (``/ready`` answers 503 with the failing checks).

        Raises:
            FetchError: 4xx answer (``status`` set), or the server failed and nothing is cached.
        """
        key = (url, tuple(sorted((k, str(v)) for k, v in (params or {}).items())))
        parts = httpx.URL(url)
        origin = f"{parts.scheme}://{parts.netloc.decode()}"
        now = time.time()
        with self._lock:
            cached = self._entries.get(key)
            down = self._down.get(origin)
        if cached is not None and now - cached.fetched_at < (self._ttl_s if ttl_s is None else ttl_s):
            return cached
        if down is not None and time.monotonic() < down[0]:
            return self._fallback(url, cached, down[1])
        try:
            response = self._client.get(url, params=dict(params or {}))
        except httpx.HTTPError as exc:
            return self._failed(origin, url, cached, f"{type(exc).__name__}: {exc}".rstrip(": "))
        if response.status_code >= 500 and response.status_code not in accept:
            return self._failed(origin, url, cached, f"HTTP {response.status_code}")
        if response.status_code >= 400 and response.status_code not in accept:
            raise FetchError(url, _detail(response), response.status_code)
        try:
            fetched = Fetched(parse(response), time.time())
        except (ValueError, KeyError, TypeError) as exc:  # e.g. a proxy's HTML page: treat as a failure
            return self._failed(origin, url, cached, f"unreadable response: {type(exc).__name__}: {exc}")
        with self._lock:
            self._down.pop(origin, None)
            self._entries[key] = fetched
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
        return fetched

    def close(self) -> None:
        self._client.close()

    def _failed(self, origin: str, url: str, cached: Fetched | None, reason: str) -> Fetched:
        with self._lock:
            self._down[origin] = (time.monotonic() + self._retry_s, reason)
        return self._fallback(url, cached, reason)

    @staticmethod
    def _fallback(url: str, cached: Fetched | None, reason: str) -> Fetched:
        if cached is None:
            raise FetchError(url, reason)
        return Fetched(cached.data, cached.fetched_at, reason)


def _detail(response: httpx.Response) -> str:
    """The ``detail`` of a FastAPI error body, else the status line."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, list):  # 422: FastAPI's list of errors
        detail = "; ".join(str(item.get("msg", item)) for item in detail if isinstance(item, dict))
    return str(detail) if detail else f"HTTP {response.status_code}"
