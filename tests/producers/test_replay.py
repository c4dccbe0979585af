"""Replay of recorded files into the real broker."""

from __future__ import annotations

import csv
import time
from collections import Counter
from pathlib import Path

import pytest

from producers.replay import CsvColumns, detect_format, replay_file
from tests.producers.captures import (
    BINANCE_FUTURES,
    BITFINEX,
    BITSTAMP,
    BYBIT,
    COINBASE,
    COINBASE_HOUR,
    KRAKEN,
    OKX,
    binance_agg_trades,
)
from tests.producers.kafka_util import consume_all
from tickflow.dead_letter import DeadLetter
from tickflow.schemas import Tick
from tickflow.settings import Settings


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_coinbase_hour_arrives_complete_and_in_order(shared_data: Path, fresh_topics: Settings) -> None:
    path = shared_data / COINBASE_HOUR
    rows = _csv_rows(path)
    assert len(rows) == 5882

    stats = replay_file(fresh_topics, path)
    assert (stats.produced, stats.delivered, stats.dead_lettered, stats.duplicates) == (5882, 5882, 0, 0)

    records = consume_all(fresh_topics, fresh_topics.topic_ticks, 5882)
    assert len(records) == 5882
    assert {r.partition for r in records} == {records[0].partition}  # one symbol, one partition
    records.sort(key=lambda r: r.offset)
    ticks = [Tick.from_wire(r.raw) for r in records]
    assert [t.trade_id for t in ticks] == [str(i) for i in range(1, 5883)]  # file order, ids = row numbers
    assert {(t.exchange, t.symbol, t.raw_symbol, t.source.value) for t in ticks} == {
        ("coinbase", "BTC-USD", "BTC-USD", "replay")
    }
    assert all(r.key == "BTC-USD" for r in records)
    for tick, row in zip(ticks, rows, strict=True):
        assert tick.price == float(row["price"]) and tick.size == float(row["amount"])
        assert tick.side.value == row["side"]
    # "2023-09-05T16:00:01.281719Z" and "2023-09-05T16:59:58.761737Z", the first and last rows
    assert (ticks[0].event_time, ticks[-1].event_time) == (1693929601281719, 1693933198761737)
    assert [t.event_time for t in ticks] == sorted(t.event_time for t in ticks)


def test_replaying_twice_gives_the_same_ids(shared_data: Path, fresh_topics: Settings) -> None:
    path = shared_data / COINBASE_HOUR
    replay_file(fresh_topics, path)
    replay_file(fresh_topics, path)
    records = consume_all(fresh_topics, fresh_topics.topic_ticks, 2 * 5882)
    by_id: dict[str, set[tuple]] = {}
    for r in records:
        v = r.value
        by_id.setdefault(v["trade_id"], set()).add((v["price"], v["size"], v["side"], v["event_time"]))
    assert len(records) == 2 * 5882 and len(by_id) == 5882
    assert all(len(versions) == 1 for versions in by_id.values())  # same id, same trade


@pytest.mark.parametrize(
    ("capture", "exchange", "trades", "trade_messages"),
    [
        (COINBASE, "coinbase", 107, 107),
        (BINANCE_FUTURES, "binance_futures", 91, 91),
        (BITSTAMP, "bitstamp", 10, 10),
        (KRAKEN, "kraken", 10, 8),
        (OKX, "okx", 74, 74),
        (BYBIT, "bybit_inverse", 150, 76),
        (BITFINEX, "bitfinex", 210, 7),
    ],
)
def test_capture_replay(
    capture: str, exchange: str, trades: int, trade_messages: int, shared_data: Path, fresh_topics: Settings
) -> None:
    """``--format auto`` recognises every capture by its connection line and replays every trade."""
    assert detect_format(shared_data / capture) == "capture"
    stats = replay_file(fresh_topics, shared_data / capture)
    assert (stats.produced, stats.dead_lettered, stats.delivered) == (trades, 0, trades)
    assert stats.ignored == stats.messages - trade_messages
    records = consume_all(fresh_topics, fresh_topics.topic_ticks, trades)
    assert len(records) == trades
    assert {Tick.from_wire(r.raw).exchange for r in records} == {exchange}


def test_binance_us_capture(shared_data: Path, fresh_topics: Settings, tmp_path: Path) -> None:
    """A Binance.US capture: the Binance protocol recorded on ``stream.binance.us`` (here the real futures
    capture with the Binance.US connection line), recognised by ``auto`` and parsed by Binance's parser."""
    lines = (shared_data / BINANCE_FUTURES).read_text().splitlines()
    opened = lines[0].split(" <-> ")[1]
    capture = tmp_path / "capture_BINANCE_US.ws.1.0"
    capture.write_text("\n".join([f"wss://stream.binance.us:9443/stream <-> {opened}", *lines[1:]]) + "\n")
    stats = replay_file(fresh_topics, capture)
    assert (stats.produced, stats.dead_lettered) == (91, 0)
    ticks = [Tick.from_wire(r.raw) for r in consume_all(fresh_topics, fresh_topics.topic_ticks, 91)]
    assert {t.exchange for t in ticks} == {"binance_us"}
    assert Counter(t.symbol for t in ticks) == {
        "SUSHI-USDT": 40,
        "CTK-USDT": 38,
        "AKRO-USDT": 8,
        "KEEP-USDT": 5,
    }


def test_binance_public_data_ms_and_us(shared_data: Path, fresh_topics: Settings, tmp_path: Path) -> None:
    """The same real aggTrades as a pre-2025 file (ms, no header) and a 2025 file (µs, header)."""
    events = [e for e in binance_agg_trades(shared_data / BINANCE_FUTURES) if e["s"] == "SUSHIUSDT"]
    old = tmp_path / "SUSHIUSDT-aggTrades-2021-07-22.csv"
    new = tmp_path / "SUSHIUSDT-aggTrades-2025-07-22.csv"
    header = "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker\n"
    line = "{a},{p},{q},{f},{l},{T},{m}\n"
    old.write_text("".join(line.format(**{**e, "m": str(e["m"])}) for e in events))
    new.write_text(
        header + "".join(line.format(**{**e, "T": e["T"] * 1000, "m": str(e["m"]).lower()}) for e in events)
    )

    assert detect_format(old) == detect_format(new) == "binance_aggtrades"
    assert replay_file(fresh_topics, old, exchange="binance_futures").produced == 40
    assert replay_file(fresh_topics, new, exchange="binance_futures").produced == 40
    records = consume_all(fresh_topics, fresh_topics.topic_ticks, 80)
    versions: dict[int, set[tuple]] = {}
    for tick in (Tick.from_wire(r.raw) for r in records):
        versions.setdefault(int(tick.trade_id), set()).add(
            (tick.symbol, tick.exchange, tick.price, tick.size, tick.side.value, tick.event_time)
        )
    assert versions == {  # both files give the very same ticks
        e["a"]: {("SUSHI-USDT-SWAP", "binance_futures", float(e["p"]), float(e["q"]),
                  "sell" if e["m"] else "buy", e["T"] * 1000)}
        for e in events
    }  # fmt: skip


def test_generic_csv_with_bad_rows(fresh_topics: Settings, tmp_path: Path) -> None:
    good = ["1693929601.5,ETH-USD,1650.25,0.5,b", "1693929602250,ETH-USD,1650.5,1.25,S"]
    bad = {
        "1693929603,ETH-USD,abc,1,b": "bad_price",
        "1693929603,ETH-USD,1650,-1,b": "bad_size",
        "yesterday,ETH-USD,1650,1,b": "bad_timestamp",
        "1693929603,eth usd!,1650,1,b": "unknown_symbol",
        "1693929603,ETH-USD,1650,1,sideways": "bad_side",
        "1693929603,ETH-USD": "missing_field",
    }
    path = tmp_path / "trades.csv"
    path.write_text("ts,sym,px,qty,side\n" + "\n".join([*good, *bad]) + "\n")
    columns = CsvColumns.parse("price=px,size=qty,time=ts,symbol=sym,side=side", "myvenue")

    stats = replay_file(fresh_topics, path, "csv", columns=columns)
    assert stats.produced == 2 and stats.rejected == Counter(bad.values())

    ticks = [Tick.from_wire(r.raw) for r in consume_all(fresh_topics, fresh_topics.topic_ticks, 2)]
    assert sorted((t.event_time, t.side.value, t.trade_id, t.exchange) for t in ticks) == [
        (1693929601500000, "buy", "1", "myvenue"),
        (1693929602250000, "sell", "2", "myvenue"),
    ]
    letters = [
        DeadLetter.from_wire(r.raw) for r in consume_all(fresh_topics, fresh_topics.topic_dlq, len(bad))
    ]
    assert {letter.raw: letter.reason.value for letter in letters} == bad
    assert {(letter.source.value, letter.exchange) for letter in letters} == {("replay", "myvenue")}


def test_speed_preserves_event_time_gaps(fresh_topics: Settings, tmp_path: Path) -> None:
    path = tmp_path / "slow.csv"
    path.write_text(
        '"symbol","side","price","amount","timestamp"\n'
        '"BTC-USD","buy",1,1,"2023-09-05T16:00:00Z"\n'
        '"BTC-USD","buy",1,1,"2023-09-05T16:00:01Z"\n'
        '"BTC-USD","buy",1,1,"2023-09-05T16:00:02Z"\n'
    )
    started = time.monotonic()
    assert replay_file(fresh_topics, path, speed=4.0).produced == 3
    assert time.monotonic() - started >= 0.5  # 2 s of event time at 4x
    assert replay_file(fresh_topics, path, speed=4.0).duplicates == 0  # a new run, a new window


def test_unknown_format_is_a_clear_error(tmp_path: Path, fresh_topics: Settings) -> None:
    path = tmp_path / "mystery.csv"
    path.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(ValueError, match="cannot tell the format"):
        replay_file(fresh_topics, path)
    with pytest.raises(ValueError, match="lacks columns"):
        replay_file(
            fresh_topics, path, "csv", columns=CsvColumns("px", "qty", "ts", "x", fixed_symbol="AAPL")
        )


def test_capture_with_damaged_lines(shared_data: Path, fresh_topics: Settings, tmp_path: Path) -> None:
    lines = (shared_data / BITSTAMP).read_text().splitlines()
    trades = [line for line in lines if '"event":"trade"' in line][:2]
    damaged = tmp_path / "capture_BITSTAMP.ws.9.0"
    garbage = ["hello there", '1641343700.1: {"data": {"id": 1, "price_str": "3800', "1641343700.2: \x00\x01"]
    damaged.write_text("\n".join([lines[0], lines[1], trades[0], *garbage, trades[1]]) + "\n")

    stats = replay_file(fresh_topics, damaged)
    assert stats.produced == 2 and stats.rejected == {"malformed": 3}
    letters = [DeadLetter.from_wire(r.raw) for r in consume_all(fresh_topics, fresh_topics.topic_dlq, 3)]
    assert {letter.exchange for letter in letters} == {"bitstamp"}
    assert sorted(letter.raw for letter in letters) == sorted(
        ["hello there", '{"data": {"id": 1, "price_str": "3800', "\x00\x01"]
    )
