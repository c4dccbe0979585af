"""Secure access and abuse limits of a real API process (issue 15): API keys never reach the log, the
operational routes that reveal internals need a key, ``/ready`` and 503s name no host, user or port, the
WebSocket limits close abusers with 1008 while other clients are still served, and unknown symbols are
looked up once per TTL."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection

from infra.local.sandbox import free_port
from infra.local.servers import ApiServer
from tests.api.conftest import API_KEY
from tests.api.seed import Seeded, ticks_of
from tests.api.wsclient import TickProducer, live, open_ws, receive, receive_until, request, trade_ids
from tickflow.settings import Settings

AUTH = {"X-API-Key": API_KEY}
PROTECTED = ("/metrics", "/docs", "/openapi.json", "/redoc")


class VerboseApiServer(ApiServer):
    """``tickflow api`` logging at info level with uvicorn's access log on (a line per request)."""

    ARGS = ("api", "--log-level", "info", "--access-log")


def closed_with(ws: ClientConnection, timeout_s: float = 10.0) -> tuple[int | None, str]:
    """Read until the server closes the connection; its close code and reason."""
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            ws.recv(timeout=max(deadline - time.monotonic(), 0.001))
    except ConnectionClosed as closed:
        return (closed.rcvd.code, closed.rcvd.reason) if closed.rcvd else (None, "")
    raise TimeoutError("connection still open")


def symbol_lookups(server: ApiServer) -> float:
    """``tickflow_api_symbol_lookups_total`` of ``server`` (0 when the metric does not exist)."""
    text = httpx.get(f"{server.url}/metrics", headers=AUTH, timeout=10).text
    for family in text_string_to_metric_families(text):
        if family.name == "tickflow_api_symbol_lookups":
            return sum(s.value for s in family.samples if s.name.endswith("_total"))
    return 0.0


def limited(api_settings: Settings, name: str, **limits: object) -> ApiServer:
    """A started API process of ``api_settings`` with these WebSocket ``limits`` (settings fields)."""
    settings = api_settings.model_copy(update=limits)
    return ApiServer(settings, settings.state_dir / f"api-{name}-{uuid.uuid4().hex[:6]}.log").start()


@pytest.fixture(scope="module")
def limited_server(api_settings: Settings, seeded: Seeded) -> Iterator[ApiServer]:
    """An API process allowing 4 WebSocket connections, 2 per client address."""
    server = limited(api_settings, "conns", api_ws_max_connections=4, api_ws_max_connections_per_client=2)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def rate_limited_server(api_settings: Settings, seeded: Seeded) -> Iterator[ApiServer]:
    """An API process allowing 5 client messages per second per connection (bursts of 10)."""
    server = limited(api_settings, "rate", api_ws_max_messages_per_s=5.0)
    yield server
    server.stop()


def test_api_keys_never_reach_the_log(api_settings: Settings, seeded: Seeded) -> None:
    log = api_settings.state_dir / f"api-verbose-{uuid.uuid4().hex[:6]}.log"
    server = VerboseApiServer(api_settings, log).start()
    try:
        for via in ("query", "header", "bearer", "message"):
            with open_ws(server, via=via) as ws:
                assert receive(ws)["type"] == "welcome", via
        response = httpx.get(f"{server.url}/api/v1/symbols", params={"api_key": API_KEY}, headers=AUTH)
        assert response.status_code == 200
    finally:
        server.stop()  # flushes the process's output
    text = log.read_text()
    assert "WebSocket /ws" in text and "GET /api/v1/symbols" in text  # uvicorn logged both requests...
    assert "api_key=[redacted]" in text  # ...with the query-string key redacted
    assert API_KEY not in text


@pytest.mark.parametrize("path", PROTECTED)
def test_operational_routes_that_reveal_internals_need_a_key(api_server: ApiServer, path: str) -> None:
    url = f"{api_server.url}{path}"
    refused = httpx.get(url)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Basic")  # a browser asks for the login
    assert httpx.get(url, headers={"X-API-Key": "wrong"}).status_code == 401
    assert httpx.get(url, auth=("anyone", "wrong")).status_code == 401
    assert httpx.get(url, headers=AUTH).status_code == 200
    assert httpx.get(url, headers={"Authorization": f"Bearer {API_KEY}"}).status_code == 200
    assert httpx.get(url, auth=("anyone", API_KEY)).status_code == 200


def test_probes_stay_open(api_server: ApiServer) -> None:
    for path in ("/live", "/health", "/ready"):
        assert httpx.get(f"{api_server.url}{path}").status_code == 200, path


def test_ready_and_503s_name_no_host_user_or_port(api_settings: Settings, seeded: Seeded) -> None:
    dead_postgres, dead_redis, user = free_port(), free_port(), f"user{uuid.uuid4().hex[:8]}"
    settings = api_settings.model_copy(
        update={
            "postgres_dsn": f"postgresql://{user}@127.0.0.1:{dead_postgres}/tickflow",
            "redis_url": f"redis://127.0.0.1:{dead_redis}/0",
        }
    )
    server = ApiServer(settings, settings.state_dir / f"api-dead-{uuid.uuid4().hex[:6]}.log").start()
    try:
        ready = httpx.get(f"{server.url}/ready", timeout=15)
        ticks = httpx.get(f"{server.url}/api/v1/ticks/BTC-USD", headers=AUTH, timeout=15)
    finally:
        server.stop()
    assert ready.status_code == 503
    checks = ready.json()["checks"]
    assert not checks["postgres"]["ok"] and not checks["redis"]["ok"]
    assert ticks.status_code == 503
    for body in (ready.text, ticks.text):
        for internal in (user, str(dead_postgres), str(dead_redis), "127.0.0.1", "refused"):
            assert internal not in body, (internal, body)
    assert f"port {dead_postgres} failed" in server.log.read_text()  # the operator finds the reason there


@pytest.mark.parametrize("via", ["bearer", "message"])
def test_a_websocket_key_by_bearer_or_first_message_is_accepted(api_server: ApiServer, via: str) -> None:
    with open_ws(api_server, via=via) as ws:
        assert receive(ws)["type"] == "welcome"


@pytest.mark.parametrize("first", [{"type": "auth", "api_key": "wrong"}, {"type": "ping"}, "not json"])
def test_a_wrong_first_message_is_closed_with_1008(api_server: ApiServer, first: object) -> None:
    with open_ws(api_server, key=None) as ws:
        ws.send(first if isinstance(first, str) else orjson.dumps(first).decode())
        assert closed_with(ws)[0] == 1008


def test_connections_past_the_limits_are_closed_with_1008(limited_server: ApiServer) -> None:
    with contextlib.ExitStack() as stack:
        admitted = [stack.enter_context(open_ws(limited_server, source=a)) for a in ("127.0.0.1",) * 2]
        for ws in admitted:
            assert receive(ws)["type"] == "welcome"
        with open_ws(limited_server, source="127.0.0.1") as third:
            code, reason = closed_with(third)
        assert code == 1008 and "from your address" in reason
        admitted += [stack.enter_context(open_ws(limited_server, source="127.0.0.2")) for _ in range(2)]
        for ws in admitted[2:]:
            assert receive(ws)["type"] == "welcome"
        with open_ws(limited_server, source="127.0.0.3") as fifth:
            code, reason = closed_with(fifth)
        assert code == 1008 and "to this server" in reason
        for ws in admitted:  # the admitted clients are still served
            assert request(ws, {"type": "ping"})["type"] == "pong"
    # their slots are freed once they are gone (the server notices the closes a moment later)
    deadline = time.monotonic() + 10
    while True:
        with open_ws(limited_server, source="127.0.0.3") as ws, contextlib.suppress(ConnectionClosed):
            if receive(ws)["type"] == "welcome":
                break
        assert time.monotonic() < deadline, "the closed connections still count"
        time.sleep(0.1)


def test_a_flooding_client_is_closed_with_1008_while_another_still_gets_data(
    rate_limited_server: ApiServer, seeded: Seeded
) -> None:
    server = rate_limited_server
    trades = seeded.trades.iloc[4000:4020].assign(symbol="SOL-USD")
    with open_ws(server, source="127.0.0.4") as normal:
        receive(normal)
        reply = request(normal, {"type": "subscribe", "symbols": ["SOL-USD"], "channels": ["trades"]})
        assert reply["type"] == "subscribed"
        with open_ws(server, source="127.0.0.5") as flooder:
            receive(flooder)
            ping = orjson.dumps({"type": "ping"}).decode()
            with contextlib.suppress(ConnectionClosed):
                for _ in range(200):
                    flooder.send(ping)
            code, reason = closed_with(flooder)
        assert code == 1008 and "rate limit" in reason
        producer = TickProducer(server.settings)
        producer.send(ticks_of(trades, int(time.time() * 1e6)))
        producer.flush()
        got = live(receive_until(normal, lambda m: trades.trade_id.iloc[-1] in trade_ids([m]), timeout_s=15))
        assert trade_ids(got)[-len(trades) :] == list(trades.trade_id)
        assert request(normal, {"type": "ping"})["type"] == "pong"


def test_unknown_symbols_are_looked_up_once_per_ttl(rate_limited_server: ApiServer) -> None:
    server = rate_limited_server
    symbols = [f"ZQ{i:03d}-USD" for i in range(100)]  # they match symbol_pattern; no data has them
    before = symbol_lookups(server)
    with open_ws(server, source="127.0.0.6") as ws:
        receive(ws)
        for _ in range(3):
            reply = request(ws, {"type": "subscribe", "symbols": symbols, "channels": ["trades"]})
            assert reply["type"] == "error" and reply["code"] == "UNKNOWN_SYMBOL"
    assert symbol_lookups(server) - before == len(symbols)
