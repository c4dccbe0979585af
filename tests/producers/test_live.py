"""The live path end to end: a local websocket server replays a real capture and misbehaves (drops the
connection, skips messages, re-sends some, falls silent); a local HTTP server answers the REST backfill from
JSON built from the same capture; the ticks land in the real broker."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from websockets.asyncio.server import ServerConnection, serve

from producers.exchanges import get_exchange
from producers.live import LiveReport, LiveStreamer
from tests.producers.captures import (
    BINANCE_FUTURES,
    BITFINEX,
    BYBIT,
    COINBASE,
    KRAKEN,
    OKX,
    received_messages,
)
from tests.producers.kafka_util import consume_all
from tickflow.settings import Settings

REST_PAGE_CAP = 3  # the local REST server returns at most 3 trades a page, so paging is exercised


@dataclass
class Script:
    """What the websocket server sends on each connection: slices of the capture's messages; after the
    last slice of a connection it drops (``"drop"``) or falls silent (``"silent"``)."""

    connections: list[tuple[list[slice], str]]
    subscribes: list[str] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)  # indexes of messages sent, in order
    done: asyncio.Event = field(default_factory=asyncio.Event)


async def _serve_script(messages: list[str], script: Script) -> tuple[object, int]:
    connection_no = 0

    async def handler(ws: ServerConnection) -> None:
        nonlocal connection_no
        if connection_no >= len(script.connections):
            await ws.wait_closed()
            return
        slices, ending = script.connections[connection_no]
        connection_no += 1
        script.subscribes.append(await ws.recv())
        for part in slices:
            for index in range(len(messages))[part]:
                await ws.send(messages[index])
                script.sent.append(index)
        if connection_no == len(script.connections):
            script.done.set()
        if ending == "drop":
            ws.transport.abort()
        else:
            await ws.wait_closed()

    server = await serve(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@pytest.fixture
def rest_server() -> Iterator[Callable[[Callable[[str, dict[str, str]], object]], int]]:
    """Start a local HTTP server whose GETs are answered by a function (path, query) -> JSON."""
    servers: list[ThreadingHTTPServer] = []

    def start(answer: Callable[[str, dict[str, str]], object]) -> int:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                body = json.dumps(answer(parts.path, query)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server.server_address[1]

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def coinbase_rest(messages: list[str]) -> Callable[[str, dict[str, str]], object]:
    """``GET /products/{id}/trades?after=N`` from the capture: trades with id < N, newest first."""
    trades: dict[str, list[dict]] = {}
    for m in map(json.loads, messages):
        if m["type"] in ("match", "last_match"):
            rest = {k: m[k] for k in ("time", "trade_id", "price", "size", "side")}
            trades.setdefault(m["product_id"], []).append(rest)

    def answer(path: str, query: dict[str, str]) -> object:
        product = path.split("/")[2]
        older = [t for t in trades.get(product, []) if t["trade_id"] < int(query["after"])]
        older.sort(key=lambda t: -t["trade_id"])
        return older[: min(int(query["limit"]), REST_PAGE_CAP)]

    return answer


def binance_rest(messages: list[str]) -> Callable[[str, dict[str, str]], object]:
    """``GET /fapi/v1/aggTrades?symbol=S&fromId=N`` from the capture: trades with id >= N, oldest first."""
    trades: dict[str, list[dict]] = {}
    for m in (json.loads(m)["data"] for m in messages):
        if m["e"] == "aggTrade":
            trades.setdefault(m["s"], []).append({k: m[k] for k in ("a", "p", "q", "f", "l", "T", "m")})

    def answer(path: str, query: dict[str, str]) -> object:
        assert path == "/fapi/v1/aggTrades"
        newer = [t for t in trades.get(query["symbol"], []) if t["a"] >= int(query["fromId"])]
        return newer[: min(int(query["limit"]), REST_PAGE_CAP)]

    return answer


def okx_rest(messages: list[str]) -> Callable[[str, dict[str, str]], object]:
    """``GET /api/v5/market/history-trades?instId=I&type=1&after=N`` from the capture: trades with id < N,
    newest first, in OKX's ``{"code": "0", "data": [...]}`` envelope."""
    trades: dict[str, list[dict]] = {}
    for m in map(json.loads, messages):
        if m.get("arg", {}).get("channel") == "trades" and "data" in m:
            for t in m["data"]:
                trades.setdefault(t["instId"], []).append(t)

    def answer(path: str, query: dict[str, str]) -> object:
        assert path == "/api/v5/market/history-trades" and query["type"] == "1"
        older = [t for t in trades.get(query["instId"], []) if int(t["tradeId"]) < int(query["after"])]
        older.sort(key=lambda t: -int(t["tradeId"]))
        return {"code": "0", "msg": "", "data": older[: min(int(query["limit"]), REST_PAGE_CAP)]}

    return answer


@dataclass(frozen=True)
class Case:
    capture: str
    exchange: str
    rest: Callable[[list[str]], Callable[[str, dict[str, str]], object]]
    trade_of: Callable[[str], tuple[str, int] | None]  # raw message -> (normalised symbol, trade id)
    subscribe_marker: str


def _coinbase_trade(raw: str) -> tuple[str, int] | None:
    m = json.loads(raw)
    return (m["product_id"], m["trade_id"]) if m["type"] in ("match", "last_match") else None


def _binance_trade(raw: str) -> tuple[str, int] | None:
    m = json.loads(raw)["data"]
    return (m["s"].replace("USDT", "-USDT-SWAP"), m["a"]) if m["e"] == "aggTrade" else None


def _okx_trade(raw: str) -> tuple[str, int] | None:
    m = json.loads(raw)
    if m.get("arg", {}).get("channel") != "trades" or "data" not in m:
        return None
    (trade,) = m["data"]
    return trade["instId"], int(trade["tradeId"])


CASES = {
    "coinbase": Case(COINBASE, "coinbase", coinbase_rest, _coinbase_trade, '"type":"subscribe"'),
    "binance_futures": Case(BINANCE_FUTURES, "binance_futures", binance_rest, _binance_trade, '"SUBSCRIBE"'),
    "okx": Case(OKX, "okx", okx_rest, _okx_trade, '"op":"subscribe"'),
}


@pytest.mark.parametrize("name", list(CASES))
def test_live_reconnects_dedups_and_backfills(
    name: str, shared_data: Path, fresh_topics: Settings, rest_server: Callable
) -> None:
    case = CASES[name]
    messages = received_messages(shared_data / case.capture)
    trade_at = {i: t for i, raw in enumerate(messages) if (t := case.trade_of(raw)) is not None}
    order = sorted(trade_at)  # message indexes of the trades
    n = len(order)
    a, b, c, d, e = order[n // 3], order[n // 3 - 4], order[n // 2], order[2 * n // 3], order[3 * n // 4]
    # connection 1: up to trade n/3, then the TCP connection is cut;
    # connection 2: re-sends 4 trades (duplicates), skips up to trade n/2 (a gap), then falls silent;
    # connection 3 (after the watchdog fired): skips up to trade 3n/4 (another gap), sends the rest.
    script = Script(
        [
            ([slice(0, a + 1)], "drop"),
            ([slice(b, a + 1), slice(c, d + 1)], "silent"),
            ([slice(e, None)], "silent"),
        ]
    )
    rest_port = rest_server(case.rest(messages))
    settings = fresh_topics.model_copy(
        update={
            "max_clock_skew_s": 1e10,  # the capture is from 2021: accept its event times as live
            "ws_idle_timeout_s": 1.0,
            "ws_reconnect_max_delay_s": 0.2,
            "ws_subscribe_interval_s": 0.0,
        }
    )
    symbols = sorted({symbol for symbol, _ in trade_at.values()})

    async def run() -> tuple[LiveStreamer, object]:
        server, port = await _serve_script(messages, script)
        streamer = LiveStreamer(
            settings,
            case.exchange,
            symbols,
            ws_url=f"ws://127.0.0.1:{port}",
            rest_url=f"http://127.0.0.1:{rest_port}",
        )
        stop = asyncio.Event()
        task = asyncio.create_task(streamer.run(stop))
        await asyncio.wait_for(script.done.wait(), timeout=30)
        for _ in range(200):  # until the backfills are done (at most 10 s)
            if streamer.produced >= len(expected_ids(script)) and not streamer._backfills:
                break
            await asyncio.sleep(0.05)
        stop.set()
        report = await asyncio.wait_for(task, timeout=30)
        server.close()
        return streamer, report

    def expected_ids(script: Script) -> set[tuple[str, str]]:
        """Per symbol, every trade between the lowest and the highest id the client was sent live: what a
        complete stream with backfilled gaps holds (trades skipped before a symbol's first or after its
        last live trade leave no gap to detect)."""
        live_ids: dict[str, list[int]] = {}
        for index in script.sent:
            if index in trade_at:
                symbol, trade_id = trade_at[index]
                live_ids.setdefault(symbol, []).append(trade_id)
        return {
            (s, str(i))
            for s, i in trade_at.values()
            if s in live_ids and min(live_ids[s]) <= i <= max(live_ids[s])
        }

    streamer, report = asyncio.run(run())
    expected = expected_ids(script)
    sent_live = {(trade_at[i][0], str(trade_at[i][1])) for i in set(script.sent) if i in trade_at}
    records = consume_all(settings, settings.topic_ticks, len(expected))
    got = [(r.value["symbol"], r.value["trade_id"]) for r in records]

    assert len(got) == len(set(got)), "duplicate ticks in Kafka"
    assert set(got) == expected, "ticks missing from (or foreign to) Kafka"
    backfilled = {
        (r.value["symbol"], r.value["trade_id"]) for r in records if r.value["source"] == "backfill"
    }
    assert backfilled == expected - sent_live and backfilled, "exactly the skipped trades were backfilled"
    assert len(script.subscribes) == 3 and all(case.subscribe_marker in s for s in script.subscribes)
    assert report.connections == 3
    assert report.gap_unfilled == 0
    assert report.live.duplicates >= 4  # the re-sent trades were dropped, and counted
    assert report.live.dead_lettered == 0 and report.backfill.dead_lettered == 0
    assert report.gaps >= 1
    assert all(r.key == r.value["symbol"] for r in records)
    assert streamer.produced == len(expected)


@pytest.mark.parametrize(
    ("capture", "exchange", "trades"),
    [(KRAKEN, "kraken", 10), (BYBIT, "bybit_inverse", 150), (BITFINEX, "bitfinex", 210)],
)
def test_live_drop_and_resend_without_sequential_ids(
    capture: str, exchange: str, trades: int, shared_data: Path, fresh_topics: Settings
) -> None:
    """Venues whose ids are not sequential: the server drops the connection mid-stream, then replays the
    capture from its start (as a venue re-sends its snapshot on resubscribing; Bitfinex also numbers its
    channels anew). Every trade lands once; the re-sent ones are counted as duplicates."""
    messages = received_messages(shared_data / capture)
    parse = get_exchange(exchange).parser()
    carrying = [i for i, raw in enumerate(messages) if parse(raw).trades]
    cut = carrying[len(carrying) // 2]  # the connection drops after this message
    first_part = sum(len(parse(raw).trades) for raw in messages[: cut + 1])
    script = Script([([slice(0, cut + 1)], "drop"), ([slice(0, None)], "silent")])
    settings = fresh_topics.model_copy(
        update={"max_clock_skew_s": 1e10, "ws_idle_timeout_s": 5.0, "ws_reconnect_max_delay_s": 0.2}
    )

    async def run() -> LiveReport:
        server, port = await _serve_script(messages, script)
        streamer = LiveStreamer(settings, exchange, ["BTC-USD"], ws_url=f"ws://127.0.0.1:{port}")
        stop = asyncio.Event()
        task = asyncio.create_task(streamer.run(stop))
        await asyncio.wait_for(script.done.wait(), timeout=30)
        for _ in range(100):
            if streamer.produced >= trades:
                break
            await asyncio.sleep(0.05)
        stop.set()
        report = await asyncio.wait_for(task, timeout=30)
        server.close()
        return report

    report = asyncio.run(run())
    records = consume_all(settings, settings.topic_ticks, trades)
    keys = [(r.value["symbol"], r.value["trade_id"]) for r in records]
    assert len(keys) == len(set(keys)) == trades
    assert {r.value["exchange"] for r in records} == {exchange}
    assert report.connections == 2 and len(script.subscribes) == 2
    assert report.live.duplicates == first_part > 0
    assert report.live.dead_lettered == 0
