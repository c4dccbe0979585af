"""The dashboard's HTTP cache against a real local HTTP server that can answer errors or go away."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dashboard.http_cache import FetchError, HttpCache, text_body


class _Handler(BaseHTTPRequestHandler):
    """Answers ``/status/<code>`` with that status and a FastAPI-style JSON body; counts requests."""

    hits: list[str] = []  # noqa: RUF012 - shared by the handler instances of one server

    def do_GET(self) -> None:
        self.hits.append(self.path)
        code = int(self.path.split("/")[2].split("?")[0])
        body = json.dumps({"detail": f"answer {code}", "path": self.path}).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        """Quiet."""


class Server:
    def __init__(self) -> None:
        _Handler.hits = []
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def hits(self) -> list[str]:
        return _Handler.hits

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server()
    yield running
    running.stop()


def test_responses_are_shared_for_the_ttl_then_fetched_again(server: Server) -> None:
    cache = HttpCache(timeout_s=1, ttl_s=60, retry_s=0)
    first = cache.get(f"{server.url}/status/200", {"b": 2, "a": 1})
    again = cache.get(f"{server.url}/status/200", {"a": 1, "b": 2})
    assert again is first and not first.stale and len(server.hits) == 1
    assert first.data["path"] == "/status/200?b=2&a=1"
    fresh = HttpCache(timeout_s=1, ttl_s=0, retry_s=0)
    fresh.get(f"{server.url}/status/200")
    fresh.get(f"{server.url}/status/200")
    assert len(server.hits) == 3
    assert cache.get(f"{server.url}/status/200", parse=text_body).data.startswith("{")


def test_a_dead_server_gives_the_last_good_copy_marked_stale(server: Server) -> None:
    cache = HttpCache(timeout_s=1, ttl_s=0, retry_s=30)
    good = cache.get(f"{server.url}/status/200")
    server.stop()
    stale = cache.get(f"{server.url}/status/200")
    assert stale.stale and stale.data == good.data and stale.fetched_at == good.fetched_at
    assert "ConnectError" in (stale.error or "")
    with pytest.raises(FetchError) as never_fetched:
        cache.get(f"{server.url}/status/201")
    assert never_fetched.value.status is None and "ConnectError" in never_fetched.value.detail


def test_server_errors_fall_back_and_back_off_client_errors_raise(server: Server) -> None:
    cache = HttpCache(timeout_s=1, ttl_s=0, retry_s=30)
    with pytest.raises(FetchError) as failed:
        cache.get(f"{server.url}/status/503")
    assert failed.value.detail == "HTTP 503"
    hits = len(server.hits)
    with pytest.raises(FetchError):  # the origin is backed off: no new request
        cache.get(f"{server.url}/status/200")
    assert len(server.hits) == hits

    cache = HttpCache(timeout_s=1, ttl_s=0, retry_s=30)
    with pytest.raises(FetchError) as not_found:
        cache.get(f"{server.url}/status/404")
    assert (not_found.value.status, not_found.value.detail) == (404, "answer 404")
    assert cache.get(f"{server.url}/status/503", accept=(503,)).data["detail"] == "answer 503"


def test_an_unreadable_body_is_a_failure_not_a_crash(server: Server) -> None:
    cache = HttpCache(timeout_s=1, ttl_s=0, retry_s=0)
    good = cache.get(f"{server.url}/status/200", parse=lambda r: r.json()["detail"])
    stale = cache.get(f"{server.url}/status/200", parse=lambda r: r.json()["missing"])
    assert stale.data == good.data == "answer 200"
    assert stale.error == "unreadable response: KeyError: 'missing'"
