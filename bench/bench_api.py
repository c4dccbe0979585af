"""Benchmark of the API (``tickflow api`` in its own process against a private local stack).

Run: ``.venv/bin/python bench/bench_api.py [--duration S] [--only latest|ticks|fanout|abuse]``

1. latest: ``GET /api/v1/latest/{symbol}`` with the server pinned to one core and the load generator to
   the other (``taskset``), so they do not compete: (a) at saturation with ``wrk`` (Debian package; 1
   thread, 32 keep-alive connections), once served from memory (BTC-USD, fed by a bar on pub/sub) and once
   from Redis (ETH-USD, only a Redis key) in the same run, with req/s, server CPU µs a request and their
   ratios; (b) at a constant 1,000 requests/s from memory, open loop over 32 keep-alive connections from
   a separate process, latency from the scheduled send time (no coordinated omission).
   Targets: >= 10,000 req/s on one core at saturation, p99 <= 5 ms at 1,000 req/s. Reference before the
   in-memory path: about 2,400 req/s on one core (about 410 µs CPU a request).
2. ticks: ticks produced to Kafka at 10,000/s (a separate process stamps ``receipt_time`` when it produces)
   and one WebSocket client subscribed to ``trades`` of the six symbols; latency = arrival at the client
   minus ``receipt_time``. Target: p99 <= 50 ms.
3. fanout: 1,000 WebSocket clients on ``trades`` of BTC-USD, 100 of them slow (a 4 KB receive buffer,
   reading one message per second), 200 ticks/s produced in 10 bursts/s (~10 messages/s per client);
   delivery latency of the 900 fast clients (of the oldest tick of each message; clients run in two
   processes) and the server's slow-consumer events (warned / recovered / closed with 1008). The API
   runs with a 50-message queue, a 16 KB socket send buffer and a 2 s grace period so the slow clients
   hit the policy within the run; the server's CPU use is printed too.
4. abuse: 50 WebSocket clients on ``trades`` of BTC-USD (200 ticks/s in 10 bursts/s) are measured as in 3,
   once alone and once while two abusers run in another process: a flooder (~1,000 pings/s, 20x the
   default limit, reconnecting after each 1008 close) and a connection opener (opens connections from one
   address without end, past ``api_ws_max_connections_per_client``). Clients and abusers are pinned to
   one core (``CLIENT_CPU``); the flooder aborts a closed connection at once, as an attacker would.
   Prints both p99s and their ratio (target: <= 2x) and how often the abusers were closed with 1008.

Prints percentiles and the load average (numbers are only meaningful on an otherwise idle machine).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import httpx  # noqa: E402
import orjson  # noqa: E402
import redis  # noqa: E402
import uvloop  # noqa: E402
from confluent_kafka import Producer  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from websockets.asyncio.client import ClientConnection, connect  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402

from infra.db.migrate import migrate  # noqa: E402
from infra.local.sandbox import private_stack  # noqa: E402
from infra.local.servers import ApiServer  # noqa: E402
from infra.topics import create_topics  # noqa: E402
from tickflow.keys import bars_channel, latest_price_key  # noqa: E402
from tickflow.schemas import OHLCVBar  # noqa: E402
from tickflow.settings import Settings  # noqa: E402

SYMBOLS = ["BTC-USD", "ETH-USD", "SOL-USD", "XRP-USD", "ADA-USD", "DOGE-USD"]
BENCH_BAR = OHLCVBar.model_validate(
    {
        "symbol": "BTC-USD",
        "interval": "1m",
        "window_start": "2023-09-05T16:59:00Z",
        "window_end": "2023-09-05T17:00:00Z",
        "open": 25780.0,
        "high": 25790.5,
        "low": 25779.0,
        "close": 25785.33,
        "volume": 1.5,
        "quote_volume": 38677.995,
        "vwap": 25785.33,
        "trade_count": 42,
        "first_trade_time": "2023-09-05T16:59:00.5Z",
        "last_trade_time": "2023-09-05T16:59:59.123456Z",
        "is_final": True,
    }
)


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU time of process ``pid`` (default: this process)."""
    if pid is None:
        return time.process_time()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentiles(values: list[float]) -> str:
    """``p50 / p99 / max`` of ``values`` (seconds) in ms."""
    if not values:
        return "no samples"
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return f"p50 {at(0.50):.2f} ms, p99 {at(0.99):.2f} ms, max {ordered[-1] * 1000:.2f} ms (n={len(ordered)})"


@contextmanager
def migrated_stack() -> Iterator[Settings]:
    with private_stack() as settings:
        migrate(settings.postgres_dsn)
        create_topics(settings)
        yield settings


@contextmanager
def api(settings: Settings, name: str) -> Iterator[ApiServer]:
    server = ApiServer(settings, settings.state_dir / f"{name}.log").start()
    try:
        yield server
    finally:
        server.stop()


# --- 1. /latest at a constant rate -----------------------------------------------------------------------


async def constant_rate_get(port: int, path: str, rate: float, duration_s: float) -> list[float]:
    """Latencies (s) of GETs sent at ``rate``/s for ``duration_s``, measured from their scheduled time."""
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(32):
        pool.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    clock = time.perf_counter  # not loop.time(): uvloop's has millisecond resolution
    latencies: list[float] = []
    failures = 0

    async def one(scheduled: float) -> None:
        nonlocal failures
        reader, writer = await pool.get()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        latencies.append(clock() - scheduled)
        failures += not head.startswith(b"HTTP/1.1 200")
        pool.put_nowait((reader, writer))

    start = clock() + 0.05
    tasks = []
    for i in range(int(rate * duration_s)):
        scheduled = start + i / rate
        delay = scheduled - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(scheduled)))
    await asyncio.gather(*tasks)
    if failures:
        raise RuntimeError(f"{failures} requests did not answer 200")
    return latencies


SERVER_CPU, CLIENT_CPU = 0, 1


def pin(pid: int, cpu: int) -> None:
    """Pin every thread of process ``pid`` to ``cpu``."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(tid), {cpu})


def wrk(url: str, duration_s: float, connections: int = 32) -> tuple[int, float, str]:
    """Requests done, their rate (/s) and wrk's p99 of a saturating ``wrk`` run pinned to ``CLIENT_CPU``."""
    out = subprocess.run(
        [
            "taskset",
            "-c",
            str(CLIENT_CPU),
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{duration_s:g}s",
            "--latency",
            url,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw errors:\n{out}")
    done = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+(\S+)", out).group(1)  # type: ignore[union-attr]
    return done, rate, p99


def saturate(server: ApiServer, path: str, duration_s: float) -> tuple[float, float, str, float]:
    """req/s, server CPU µs a request, wrk's p99 of ``path`` at saturation, and the share of its core the
    server got (below ~100%: other processes on the shared machine took the rest)."""
    wrk(server.url + path, 1.0)  # warm-up
    cpu, started = cpu_seconds(server.pid), time.monotonic()
    done, rate, p99 = wrk(server.url + path, duration_s)
    used = cpu_seconds(server.pid) - cpu
    return rate, used / done * 1e6, p99, used / (time.monotonic() - started)


def constant_rate_process(
    port: int, path: str, rate: float, duration_s: float, measuring: Any, results: Any
) -> None:
    """``constant_rate_get`` pinned to ``CLIENT_CPU`` after a 1 s warm-up; ``measuring`` is set between."""
    os.sched_setaffinity(0, {CLIENT_CPU})
    uvloop.run(constant_rate_get(port, path, rate, 1.0))
    measuring.set()
    results.put(uvloop.run(constant_rate_get(port, path, rate, duration_s)))


def wait_for_memory(server: ApiServer, symbol: str) -> None:
    deadline = time.monotonic() + 10
    while httpx.get(f"{server.url}/api/v1/latest/{symbol}").json().get("source") != "memory":
        if time.monotonic() > deadline:
            raise RuntimeError(f"{symbol}: the pub/sub bar did not reach the API's memory")
        time.sleep(0.05)


def bench_latest(settings: Settings, duration_s: float) -> None:
    store = redis.Redis.from_url(settings.redis_url)
    store.set(
        latest_price_key("ETH-USD"),
        orjson.dumps({"symbol": "ETH-USD", "price": 1634.21, "time": "2023-09-05T16:59:59.123456Z"}),
    )
    with api(settings, "bench-latest") as server:
        assert server.pid is not None
        pin(server.pid, SERVER_CPU)
        store.publish(bars_channel("BTC-USD"), BENCH_BAR.to_json())
        wait_for_memory(server, "BTC-USD")
        memory = saturate(server, "/api/v1/latest/BTC-USD", duration_s)
        from_redis = saturate(server, "/api/v1/latest/ETH-USD", duration_s)
        context = multiprocessing.get_context("spawn")
        results, measuring = context.Queue(), context.Event()
        generator = context.Process(
            target=constant_rate_process,
            args=(server.port, "/api/v1/latest/BTC-USD", 1000, duration_s, measuring, results),
        )
        generator.start()
        measuring.wait(60)
        cpu = cpu_seconds(server.pid)
        latencies = results.get(timeout=duration_s + 60)
        cpu_us = (cpu_seconds(server.pid) - cpu) / len(latencies) * 1e6
        generator.join()
    store.close()
    for name, (rate, us, p99, share) in (("memory", memory), ("Redis", from_redis)):
        print(
            f"1a. /api/v1/latest from {name} at saturation (server on 1 core, wrk on the other):"
            f" {rate:,.0f} req/s, server CPU {us:.0f} µs/request, wrk p99 {p99};"
            f" the server got {share:.0%} of its core (a whole core: {1e6 / us:,.0f} req/s)"
        )
    print(
        f"    memory vs Redis: {memory[0] / from_redis[0]:.1f}x the requests/s,"
        f" {from_redis[1] / memory[1]:.1f}x less CPU a request;"
        f" vs the reference 2,400 req/s / 410 µs: {memory[0] / 2400:.1f}x, {410 / memory[1]:.1f}x"
    )
    print(
        f"1b. /api/v1/latest from memory at 1,000 req/s for {duration_s:g} s: {percentiles(latencies)};"
        f" server CPU {cpu_us:.0f} µs/request (the process's idle work included)"
    )


# --- ticks to Kafka at a steady rate (a separate process) -------------------------------------------------


def produce_ticks(
    bootstrap: str, topic: str, symbols: list[str], rate: int, duration_s: float, step_s: float
) -> None:
    """Produce ``rate`` ticks/s for ``duration_s`` in bursts every ``step_s``, ``receipt_time`` = produce
    time."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1, "acks": 1})
    per_step = max(1, round(rate * step_s))
    start = time.perf_counter()
    sent = 0
    while sent < rate * duration_s:
        now = int(time.time() * 1_000_000)
        for i in range(per_step):
            symbol = symbols[(sent + i) % len(symbols)]
            tick = {
                "v": 1,
                "exchange": "bench",
                "symbol": symbol,
                "raw_symbol": symbol,
                "price": 25785.33,
                "size": 0.0123,
                "side": "buy",
                "trade_id": str(sent + i),
                "event_time": now,
                "receipt_time": now,
                "source": "synthetic",
            }
            producer.produce(topic, key=symbol, value=orjson.dumps(tick))
        producer.poll(0)
        sent += per_step
        pause = start + sent / rate - time.perf_counter()
        if pause > 0:
            time.sleep(min(pause, step_s))
    producer.flush(10)


def start_producer(
    settings: Settings, symbols: list[str], rate: int, duration_s: float, step_s: float
) -> multiprocessing.Process:
    process = multiprocessing.get_context("spawn").Process(
        target=produce_ticks,
        args=(settings.kafka_bootstrap_servers, settings.topic_ticks, symbols, rate, duration_s, step_s),
    )
    process.start()
    return process


def tick_delays(message: str | bytes, arrived: float, first_only: bool = False) -> list[float]:
    """Delays of the ticks of a ``trades`` message (only of its first, i.e. oldest, tick if asked)."""
    payload = orjson.loads(message)
    if payload["type"] != "trades":
        return []
    ticks = payload["data"][:1] if first_only else payload["data"]
    return [arrived - tick["receipt_time"] / 1e6 for tick in ticks]


async def subscribed(url: str, symbols: list[str], sock: socket.socket | None = None) -> ClientConnection:
    ws = await connect(
        url, compression=None, sock=sock, max_queue=1 if sock else 64, ping_interval=None, open_timeout=60
    )
    await ws.recv()  # welcome
    await ws.send(orjson.dumps({"type": "subscribe", "symbols": symbols, "channels": ["trades"]}).decode())
    while orjson.loads(await ws.recv())["type"] != "subscribed":
        pass
    return ws


# --- 2. tick -> client latency at 10k ticks/s ------------------------------------------------------------


async def receive_ticks(url: str, producer: multiprocessing.Process, warmup_s: float) -> list[float]:
    ws = await subscribed(url, SYMBOLS)
    delays: list[float] = []
    begin = time.time() + warmup_s
    while producer.is_alive() or delays:
        try:
            message = await asyncio.wait_for(ws.recv(), 2.0)
        except TimeoutError:
            break
        arrived = time.time()
        if arrived >= begin:
            delays += tick_delays(message, arrived)
    await ws.close()
    return delays


def bench_ticks(settings: Settings, duration_s: float) -> None:
    with api(settings, "bench-ticks") as server:
        producer = start_producer(settings, SYMBOLS, 10_000, duration_s + 1, step_s=0.01)
        cpu, started = cpu_seconds(server.pid), time.monotonic()
        delays = uvloop.run(receive_ticks(server.ws_url, producer, warmup_s=1.0))
        cpu_share = (cpu_seconds(server.pid) - cpu) / (time.monotonic() - started)
        producer.join()
    print(
        f"2. tick -> WebSocket client at 10,000 ticks/s for {duration_s:g} s: {percentiles(delays)};"
        f" server CPU {cpu_share:.0%} of a core"
    )


# --- 3. 1,000 clients, 10% slow ----------------------------------------------------------------------

FANOUT_RATE = 200  # ticks/s
FANOUT_STEP_S = 0.1  # one burst (one message per client) every 100 ms
RECEIPT = b'"receipt_time":'


def first_receipt_delay(message: bytes, arrived: float) -> float | None:
    """Delay of the first (oldest) tick of a raw ``trades`` message; None for other messages. Reads the
    number straight from the bytes: a full parse would make the client, not the server, the bottleneck."""
    at = message.find(RECEIPT)
    if at < 0 or not message.startswith(b'{"type":"trades"'):
        return None
    start = at + len(RECEIPT)
    return arrived - int(message[start : message.index(b",", start)]) / 1e6


async def fanout_clients(
    url: str, port: int, fast: int, slow: int, ready: Any, stop: Any, results: Any, warmup_s: float
) -> None:
    delays: list[float] = []

    async def fast_client(ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                message = await ws.recv(decode=False)
                arrived = time.time()
                delay = first_receipt_delay(message, arrived)
                if delay is not None and arrived >= begin:
                    delays.append(delay)

    async def slow_client(ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await ws.recv(decode=False)
                await asyncio.sleep(1.0)

    def small_buffer_socket() -> socket.socket:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", port))
        return sock

    connections: list[ClientConnection] = []
    total = fast + slow
    for first in range(0, total, 50):
        batch = range(first, min(first + 50, total))
        socks = [small_buffer_socket() if i < slow else None for i in batch]
        connections += await asyncio.gather(*(subscribed(url, ["BTC-USD"], sock) for sock in socks))
    tasks = [
        asyncio.create_task(slow_client(ws) if i < slow else fast_client(ws))
        for i, ws in enumerate(connections)
    ]
    ready.set()
    begin = time.time() + warmup_s
    while not stop.is_set():
        await asyncio.sleep(0.2)
    for ws in connections:
        await ws.close()
    await asyncio.gather(*tasks, return_exceptions=True)
    results.put(delays)


def slow_consumer_counts(server: ApiServer) -> dict[str, int]:
    """``tickflow_api_ws_slow_consumers_total`` by action, from the server's ``/metrics``."""
    counts = {}
    for family in text_string_to_metric_families(httpx.get(f"{server.url}/metrics").text):
        if family.name == "tickflow_api_ws_slow_consumers":
            counts.update(
                {s.labels["action"]: int(s.value) for s in family.samples if s.name.endswith("_total")}
            )
    return counts


def fanout_process(*args: Any) -> None:
    uvloop.run(fanout_clients(*args))


def bench_fanout(settings: Settings, duration_s: float, clients: int = 1000, processes: int = 2) -> None:
    tuned = settings.model_copy(
        update={"api_ws_queue_size": 50, "api_socket_send_buffer": 16384, "api_ws_slow_grace_s": 2.0}
    )
    slow = clients // 10
    context = multiprocessing.get_context("spawn")
    stop, results = context.Event(), context.Queue()
    with api(tuned, "bench-fanout") as server:
        workers, readies = [], []
        for k in range(processes):
            ready = context.Event()
            share = slice(k * clients // processes, (k + 1) * clients // processes)
            mine = range(clients)[share]
            n_slow = len([i for i in mine if i < slow])
            args = (server.ws_url, server.port, len(mine) - n_slow, n_slow, ready, stop, results, 2.0)
            workers.append(context.Process(target=fanout_process, args=args))
            workers[-1].start()
            readies.append(ready)
        for ready in readies:
            ready.wait(120)
        producer = start_producer(tuned, ["BTC-USD"], FANOUT_RATE, duration_s, FANOUT_STEP_S)
        server_cpu, started = cpu_seconds(server.pid), time.monotonic()
        producer.join()
        server_cpu = (cpu_seconds(server.pid) - server_cpu) / (time.monotonic() - started)
        time.sleep(1.0)
        stop.set()
        slow_events = slow_consumer_counts(server)
        delays: list[float] = [d for _ in workers for d in results.get(timeout=120)]
        for worker in workers:
            worker.join(30)
    print(
        f"3. {clients} clients ({slow} slow) in {processes} processes, {FANOUT_RATE} ticks/s in"
        f" {1 / FANOUT_STEP_S:g} bursts/s for {duration_s:g} s: fast clients {percentiles(delays)};"
        f" server slow-consumer events {slow_events};"
        f" server CPU {server_cpu:.0%} of a core"
    )


# --- 4. normal clients while a flooder and a connection opener abuse the server ---------------------------

ABUSE_CLIENTS = 50
FLOODER, OPENER = "127.0.0.3", "127.0.0.2"  # loopback source addresses: the limits count per address
FLOOD_PAUSE_S = 0.001  # ~1,000 pings/s, 20x the default limit, without the flooder taking a whole core


def p99(values: list[float]) -> float:
    """The 99th percentile of ``values`` (s) in ms."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000 if ordered else float("nan")


def bound_socket(source: str, port: int) -> socket.socket:
    """A non-blocking TCP socket from ``source`` connected to the server on 127.0.0.1."""
    sock = socket.socket()
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


async def abusers(url: str, port: int, stop: Any, results: Any) -> None:
    """Flood and open connections until ``stop``; put {flood_closes, opener_refused, opener_held}."""
    counts = {"flood_closes": 0, "flood_connections": 0, "opener_refused": 0, "opener_held": 0}
    ping = orjson.dumps({"type": "ping"}).decode()

    async def flood_once() -> int | None:
        """One connection flooding pings until the server closes it; the close code it got."""
        # max_queue=None: its unread pongs never stop it reading, so it sees the close frame behind them
        ws = await connect(url, sock=bound_socket(FLOODER, port), compression=None, max_queue=None)
        try:
            await ws.recv()  # welcome
            while ws.protocol.close_rcvd is None and not stop.is_set():
                # a send blocks once the server stops reading (it closed us): then look again
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ws.send(ping), 0.5)
                await asyncio.sleep(FLOOD_PAUSE_S)
        except ConnectionClosed:
            pass
        finally:
            ws.transport.abort()  # an abuser does not wait for the closing handshake
        return ws.protocol.close_rcvd.code if ws.protocol.close_rcvd else None

    async def flooder() -> None:
        while not stop.is_set():
            try:
                code = await flood_once()
            except Exception as exc:  # a bench: count it and go on
                key = f"flood_{type(exc).__name__}"
                counts[key] = counts.get(key, 0) + 1
                await asyncio.sleep(0.01)
                continue
            counts["flood_connections"] += 1
            counts["flood_closes"] += code == 1008

    async def opener() -> None:
        held: list[ClientConnection] = []
        while not stop.is_set():
            try:
                ws = await connect(url, sock=bound_socket(OPENER, port), compression=None, ping_interval=None)
                await ws.recv()  # welcome, or the 1008 close past the limit
                held.append(ws)
                counts["opener_held"] = len(held)
            except ConnectionClosed:
                counts["opener_refused"] += 1
            except Exception as exc:  # a bench: count it and go on
                key = f"opener_{type(exc).__name__}"
                counts[key] = counts.get(key, 0) + 1
                await asyncio.sleep(0.01)
        for ws in held:
            await ws.close()

    tasks = [asyncio.create_task(flooder()), asyncio.create_task(opener())]
    while not stop.is_set():
        await asyncio.sleep(0.1)
    await asyncio.wait(tasks, timeout=10)
    results.put(counts)


def abusers_process(*args: Any) -> None:
    os.sched_setaffinity(0, {CLIENT_CPU})
    uvloop.run(abusers(*args))


def measured_clients(server: ApiServer, duration_s: float, abuse: bool) -> tuple[list[float], dict[str, int]]:
    """Delivery delays of ``ABUSE_CLIENTS`` clients over ``duration_s`` of ticks, with the abusers running
    or not; and the abusers' counts."""
    context = multiprocessing.get_context("spawn")
    stop, results, ready = context.Event(), context.Queue(), context.Event()
    args = (server.ws_url, server.port, ABUSE_CLIENTS, 0, ready, stop, results, 2.0)
    clients = context.Process(target=fanout_process, args=args)
    clients.start()
    assert clients.pid is not None
    pin(clients.pid, CLIENT_CPU)
    ready.wait(120)
    abuse_stop, abuse_results = context.Event(), context.Queue()
    attacker = None
    if abuse:
        attacker = context.Process(
            target=abusers_process, args=(server.ws_url, server.port, abuse_stop, abuse_results)
        )
        attacker.start()
        time.sleep(3.0)  # the abusers are at it (the opener holds its limit) before the measured ticks
    producer = start_producer(server.settings, ["BTC-USD"], FANOUT_RATE, duration_s, FANOUT_STEP_S)
    producer.join()
    time.sleep(1.0)
    stop.set()
    delays = results.get(timeout=120)
    clients.join(30)
    counts: dict[str, int] = {}
    if attacker is not None:
        abuse_stop.set()
        counts = abuse_results.get(timeout=60)
        attacker.join(30)
    return delays, counts


def bench_abuse(settings: Settings, duration_s: float) -> None:
    tuned = settings.model_copy(update={"api_ws_max_connections_per_client": 100})
    with api(tuned, "bench-abuse") as server:
        quiet, _ = measured_clients(server, duration_s, abuse=False)
        abused, counts = measured_clients(server, duration_s, abuse=True)
        healthy = httpx.get(f"{server.url}/live").status_code == 200
    print(
        f"4. {ABUSE_CLIENTS} clients, {FANOUT_RATE} ticks/s for {duration_s:g} s: alone {percentiles(quiet)};"
        f" with a flooder and a connection opener {percentiles(abused)};"
        f" p99 {p99(abused):.2f} ms vs {p99(quiet):.2f} ms = {p99(abused) / p99(quiet):.2f}x (target <= 2x);"
        f" flooder closed with 1008 {counts.get('flood_closes', 0)} times, opener refused"
        f" {counts.get('opener_refused', 0)} times (held {counts.get('opener_held', 0)}); abusers {counts};"
        f" server /live {'ok' if healthy else 'FAILED'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=10.0, help="Seconds per scenario (fanout: >= 30).")
    parser.add_argument("--only", choices=["latest", "ticks", "fanout", "abuse"])
    args = parser.parse_args()
    with migrated_stack() as settings:
        if args.only in (None, "latest"):
            bench_latest(settings, args.duration)
        if args.only in (None, "ticks"):
            bench_ticks(settings, args.duration)
        if args.only in (None, "fanout"):
            bench_fanout(settings, max(args.duration, 30))
        if args.only in (None, "abuse"):
            bench_abuse(settings, args.duration)
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
