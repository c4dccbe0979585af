"""Provider failover against three local websocket servers (Coinbase, Kraken v1 and Bitstamp protocols) that
replay trade messages of the real captures as a live BTC-USD stream (each message of the capture with the
pair, a fresh id and the current time put in); the ticks land in the real broker."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from producers.failover import FailoverReport, FailoverStreamer
from tests.producers.captures import BITSTAMP, COINBASE, KRAKEN, received_messages
from tests.producers.kafka_util import consume_all
from tickflow.settings import Settings

PERIOD_S = 0.02  # one trade per venue every 20 ms
SYMBOL = "BTC-USD"


class Venue:
    """A local websocket server streaming ``make(n, now_s) -> (message, trade id, event time µs)`` messages;
    ``sent`` lists (trade id, event time) in order across restarts. ``stop``/``start`` take it down and up
    on the same port; ``paused`` keeps the connection open but silent."""

    def __init__(self, make: Callable[[int, float], tuple[str, str, int]]) -> None:
        self._make = make
        self.sent: list[tuple[str, int]] = []
        self.paused = False
        self.port = 0
        self._server: Server | None = None

    async def start(self) -> None:
        self._server = await serve(self._handler, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handler(self, ws: ServerConnection) -> None:
        await ws.recv()  # the (first) subscribe message
        while True:
            try:
                await asyncio.wait_for(ws.wait_closed(), PERIOD_S)
                return  # closed (by the client or by stop)
            except TimeoutError:
                pass
            if self.paused:
                continue
            message, trade_id, event_time = self._make(len(self.sent), time.time())
            try:
                await ws.send(message)
            except ConnectionClosed:
                return
            self.sent.append((trade_id, event_time))


def _coinbase(shared_data: Path) -> Callable[[int, float], tuple[str, str, int]]:
    template = next(json.loads(m) for m in received_messages(shared_data / COINBASE) if '"match"' in m)

    def make(n: int, now: float) -> tuple[str, str, int]:
        moment = datetime.fromtimestamp(now, UTC)
        trade_id = 5_000_000 + n
        message = {**template, "product_id": SYMBOL, "trade_id": trade_id, "time": moment.isoformat()}
        return json.dumps(message), str(trade_id), round(now * 1_000_000)

    return make


def _kraken(shared_data: Path) -> Callable[[int, float], tuple[str, str, int]]:
    template = next(json.loads(m) for m in received_messages(shared_data / KRAKEN) if m.startswith("["))

    def make(n: int, now: float) -> tuple[str, str, int]:
        price, volume, _, *rest = template[1][0]
        when = f"{now:.6f}"
        message = [template[0], [[price, volume, when, *rest]], "trade", "XBT/USD"]
        whole, fraction = when.split(".")
        return json.dumps(message), f"{when}:{price}:{volume}", int(whole) * 1_000_000 + int(fraction)

    return make


def _bitstamp(shared_data: Path) -> Callable[[int, float], tuple[str, str, int]]:
    template = next(json.loads(m) for m in received_messages(shared_data / BITSTAMP) if '"trade"' in m)

    def make(n: int, now: float) -> tuple[str, str, int]:
        micros = int(now * 1_000_000)
        data = {**template["data"], "id": 900_000_000 + n, "microtimestamp": str(micros),
                "timestamp": str(micros // 1_000_000)}  # fmt: skip
        message = {**template, "channel": "live_trades_btcusd", "data": data}
        return json.dumps(message), str(data["id"]), micros

    return make


async def _until(condition: Callable[[], bool], timeout_s: float) -> float:
    """Wait for ``condition``; the monotonic time it became true."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)
    return time.monotonic()


def test_failover_switches_and_switches_back(shared_data: Path, fresh_topics: Settings) -> None:
    settings = fresh_topics.model_copy(
        update={
            "ws_idle_timeout_s": 5.0,
            "ws_reconnect_max_delay_s": 0.2,
            "ws_subscribe_interval_s": 0.0,
            "failover_down_after_s": 1.0,
            "failover_hysteresis_s": 1.5,
            "quality_publish_interval_s": 0.5,
        }
    )
    venues = {"coinbase": Venue(_coinbase(shared_data)), "kraken": Venue(_kraken(shared_data)),
              "bitstamp": Venue(_bitstamp(shared_data))}  # fmt: skip
    timings: dict[str, float] = {}

    async def run() -> FailoverReport:
        for venue in venues.values():
            await venue.start()
        urls = {name: f"ws://127.0.0.1:{v.port}" for name, v in venues.items()}
        streamer = FailoverStreamer(settings, list(venues), [SYMBOL], ws_urls=urls)
        stop = asyncio.Event()
        task = asyncio.create_task(streamer.run(stop))
        await _until(lambda: all(len(v.sent) > 20 for v in venues.values()), 10)
        assert streamer.active[SYMBOL] == "coinbase" and not streamer.switches

        timings["stopped"] = time.monotonic()  # the active provider goes down
        await venues["coinbase"].stop()
        timings["switched"] = await _until(lambda: streamer.active[SYMBOL] == "kraken", 5)
        await asyncio.sleep(0.5)

        timings["restarted"] = time.monotonic()  # it comes back: takes over after the hysteresis
        await venues["coinbase"].start()
        timings["back"] = await _until(lambda: streamer.active[SYMBOL] == "coinbase", 6)
        await asyncio.sleep(0.5)

        venues["coinbase"].paused = True  # connected but silent while the others trade
        timings["paused"] = time.monotonic()
        timings["silent_switch"] = await _until(lambda: streamer.active[SYMBOL] == "kraken", 5)
        await asyncio.sleep(0.3)
        stop.set()
        report = await asyncio.wait_for(task, timeout=30)
        for venue in venues.values():
            await venue.stop()
        return report

    report = asyncio.run(run())
    limit, hysteresis = settings.failover_down_after_s, settings.failover_hysteresis_s

    # switches: within the watchdog time, back after the hysteresis, and on silence
    assert [(s.old, s.new, s.reason) for s in report.switches] == [
        ("coinbase", "kraken", "disconnected"),
        ("kraken", "coinbase", "recovered"),
        ("coinbase", "kraken", "silent"),
    ]
    assert limit <= timings["switched"] - timings["stopped"] <= limit + 0.5
    assert hysteresis <= timings["back"] - timings["restarted"] <= hysteresis + 1.5
    assert limit <= timings["silent_switch"] - timings["paused"] <= limit + 0.5

    produced = sum(p.live.produced + p.backfill.produced for p in report.providers.values())
    ticks = [r.value for r in consume_all(settings, settings.topic_ticks, produced)]
    assert len(ticks) == produced
    keys = [(t["exchange"], t["trade_id"]) for t in ticks]
    assert len(keys) == len(set(keys)), "a tick was published twice"
    assert {t["symbol"] for t in ticks} == {SYMBOL}
    assert {t["exchange"] for t in ticks} == {"coinbase", "kraken"}  # bitstamp stood by all along
    assert report.providers["bitstamp"].live.held > 0 and report.providers["bitstamp"].live.produced == 0

    # the venue that stayed up (kraken): each of its two turns is an unbroken run of what it sent, starting
    # right after the last tick the failing provider published (nothing lost at the handover)
    sent = [trade_id for trade_id, _ in venues["kraken"].sent]
    event_of = dict(venues["kraken"].sent)
    published = sorted(sent.index(t["trade_id"]) for t in ticks if t["exchange"] == "kraken")
    runs = [[published[0]]]
    for index in published[1:]:
        if index == runs[-1][-1] + 1:
            runs[-1].append(index)
        else:
            runs.append([index])
    assert len(runs) == 2, "kraken's ticks have a hole inside a turn"
    coinbase_events = sorted(t["event_time"] for t in ticks if t["exchange"] == "coinbase")
    for run_ in runs:
        first = sent[run_[0]]
        before = [e for e in coinbase_events if e < event_of[first]]
        assert before, "kraken took over before coinbase published anything"
        previous = sent[run_[0] - 1]
        assert event_of[previous] <= before[-1], "a kraken trade after coinbase's last tick was lost"

    anomalies = [r.value for r in consume_all(settings, settings.topic_anomalies, 3)]
    assert [(a["anomaly_type"], a["details"]["from"], a["details"]["to"]) for a in anomalies] == [
        ("feed_failover", "coinbase", "kraken"),
        ("feed_failover", "kraken", "coinbase"),
        ("feed_failover", "coinbase", "kraken"),
    ]


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_hysteresis_and_quality_without_network(fresh_topics: Settings) -> None:
    """The decision rules alone, on a fake clock: a better provider that flaps never takes back over; one
    whose quality score is below ``failover_min_score`` is passed over."""
    settings = fresh_topics.model_copy(
        update={"failover_down_after_s": 2.0, "failover_hysteresis_s": 5.0, "failover_min_score": 0.85}
    )
    clock = FakeClock()
    streamer = FailoverStreamer(settings, ["coinbase", "kraken", "bitstamp"], [SYMBOL], clock=clock)
    clients = {name: p.streamer.client for name, p in streamer.providers.items()}

    def connected(name: str, up: bool) -> None:
        clients[name].connected = up
        clients[name].changed_at = clock.now

    def trade_all(*names: str) -> None:
        for name in names:
            streamer.providers[name].last_trade[SYMBOL] = clock.now

    for name in clients:
        connected(name, True)
    for _ in range(10):  # all healthy: coinbase stays active
        clock.now += 0.5
        trade_all("coinbase", "kraken", "bitstamp")
        streamer.check()
    assert streamer.active[SYMBOL] == "coinbase" and not streamer.switches

    connected("coinbase", False)
    clock.now += 2.0
    streamer.check()
    assert streamer.active[SYMBOL] == "kraken" and streamer.switches[-1].reason == "disconnected"

    for _ in range(6):  # coinbase flaps: up 3 s, down 1 s, never healthy for the 5 s of hysteresis
        connected("coinbase", True)
        for _ in range(6):
            clock.now += 0.5
            trade_all("coinbase", "kraken", "bitstamp")
            streamer.check()
        connected("coinbase", False)
        clock.now += 1.0
        trade_all("kraken", "bitstamp")
        streamer.check()
    assert streamer.active[SYMBOL] == "kraken" and len(streamer.switches) == 1

    # kraken's dead letters cost it their whole weight (0.2): 0.8 < 0.85, so bitstamp takes over
    streamer.quality.accepted([{"exchange": "kraken", "symbol": SYMBOL, "event_time": 0}], 0, live=False)
    for _ in range(20):
        streamer.quality.dead_letter("kraken", SYMBOL, normalised=True)
    clock.now += 0.1
    trade_all("kraken", "bitstamp")
    streamer.check()
    assert streamer.active[SYMBOL] == "bitstamp" and streamer.switches[-1].reason == "low_quality"
    streamer.producer.flush()
