"""The adapters of Kraken (websocket v1 and v2), OKX, Bybit, Bitfinex and Binance.US against the real
captures of ``shared/data`` (exact counts, fields checked against the raw lines decoded by the standard
library), and capture recognition by the connection line."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from producers.exchanges import EXCHANGES, binance, bitfinex, bybit, kraken, okx
from producers.replay import _capture_exchange
from producers.trades import DlqReason
from tests.producers.captures import (
    BINANCE_FUTURES,
    BITFINEX,
    BITSTAMP,
    BYBIT,
    COINBASE,
    KRAKEN,
    OKX,
    received_messages,
)
from tickflow.settings import Settings


def _parse_capture(path: Path, exchange: str) -> tuple[list[dict], Counter[str], list, int]:
    """(trades, ignored by type, rejections, messages that carried trades) through one stream's parser."""
    parse = EXCHANGES[exchange].parser()
    trades, ignored, rejects, with_trades = [], Counter(), [], 0
    for raw in received_messages(path):
        result = parse(raw)
        trades.extend(result.trades)
        rejects.extend(result.rejects)
        with_trades += bool(result.trades)
        if result.ignored:
            ignored[result.ignored] += 1
    return trades, ignored, rejects, with_trades


def test_kraken_v1_capture(shared_data: Path) -> None:
    trades, ignored, rejects, with_trades = _parse_capture(shared_data / KRAKEN, "kraken")
    assert (len(trades), with_trades) == (10, 8)
    assert rejects == []
    assert ignored == {"heartbeat": 30, "subscriptionStatus": 10, "systemStatus": 1}
    assert Counter(t["symbol"] for t in trades) == {"SC-EUR": 6, "XMR-USD": 4}
    assert len({(t["symbol"], t["trade_id"]) for t in trades}) == 10  # synthetic ids are unique
    # line 41: [1921,[["0.042980","8500.00000000","1618678155.718950","b","m",""],
    #                 ["0.043000","2383.16665529","1618678155.720582","b","m",""]],"trade","SC/EUR"]
    line = next(m for m in received_messages(shared_data / KRAKEN) if "2383.16665529" in m)
    price, volume, when, _, _, _ = json.loads(line)[1][1]
    trade = next(t for t in trades if t["event_time"] == 1618678155720582)
    assert trade == {
        "exchange": "kraken",
        "symbol": "SC-EUR",
        "raw_symbol": "SC/EUR",
        "price": float(price),
        "size": float(volume),
        "side": "buy",
        "trade_id": f"{when}:{price}:{volume}",
        "event_time": 1618678155720582,  # exact: the decimal string, not a float product
    }


def test_kraken_v1_repeated_trade_and_errors() -> None:
    same = ["0.5", "10.0", "1618678155.718950", "s", "m", ""]
    result = kraken.parse_message(
        json.dumps([1, [same, same, ["0.5", "1", "x", "s", "m", ""]], "trade", "A/B"])
    )
    assert [t["trade_id"] for t in result.trades] == [
        "1618678155.718950:0.5:10.0",
        "1618678155.718950:0.5:10.0#2",
    ]
    assert [r.reason for r in result.rejects] == [DlqReason.BAD_TIMESTAMP]
    assert kraken.parse_message('[1,[],"book-10","XBT/USD"]').ignored == "book"
    error = '{"event":"subscriptionStatus","status":"error","errorMessage":"Currency pair not supported"}'
    assert kraken.parse_message(error).rejects[0].reason is DlqReason.EXCHANGE_ERROR
    assert kraken.parse_message('[1,[],"spaceship","XBT/USD"]').rejects[0].reason is DlqReason.UNKNOWN_MESSAGE


def test_okx_capture(shared_data: Path) -> None:
    trades, ignored, rejects, with_trades = _parse_capture(shared_data / OKX, "okx")
    assert (len(trades), with_trades) == (74, 74)
    assert rejects == []
    assert ignored == {"books": 290, "tickers": 28, "subscribe": 18}
    ids: dict[str, list[int]] = {}
    for t in trades:
        ids.setdefault(t["symbol"], []).append(int(t["trade_id"]))
    assert {s: len(v) for s, v in ids.items()} == {"BTC-USDT": 69, "BTC-USD-220527": 4, "UNI-USD-SWAP": 1}
    assert all(v == list(range(v[0], v[0] + len(v))) for v in ids.values())  # consecutive per instrument
    messages = [json.loads(m) for m in received_messages(shared_data / OKX)]
    raw = {
        d["tradeId"]: d
        for m in messages
        if m.get("arg", {}).get("channel") == "trades"
        for d in m.get("data", [])
    }
    spot = next(t for t in trades if t["trade_id"] == "338476316")
    assert spot == {
        "exchange": "okx",
        "symbol": "BTC-USDT",
        "raw_symbol": "BTC-USDT",
        "price": float(raw["338476316"]["px"]),
        "size": float(raw["338476316"]["sz"]),
        "side": "sell",
        "trade_id": "338476316",
        "event_time": int(raw["338476316"]["ts"]) * 1000,
    }
    # coin-margined contracts: 100 USD (BTC) or 10 USD (UNI) each, stored as base units
    swap = next(t for t in trades if t["symbol"] == "UNI-USD-SWAP")
    assert swap["size"] == pytest.approx(100 * 10 / 5.123) and swap["price"] == 5.123
    future = next(t for t in trades if t["trade_id"] == "7852")
    assert future["size"] == pytest.approx(30 * 100 / 30229.6)


def test_okx_linear_contracts_and_errors() -> None:
    def message(inst: str, sz: str) -> str:
        data = {"instId": inst, "tradeId": "1", "px": "2000", "sz": sz, "side": "buy", "ts": "1652459226050"}
        return json.dumps({"arg": {"channel": "trades", "instId": inst}, "data": [data]})

    assert okx.parse_message(message("ETH-USDT-SWAP", "3")).trades[0]["size"] == pytest.approx(0.3)
    (rejection,) = okx.parse_message(message("NEWCOIN-USDT-SWAP", "3")).rejects
    assert rejection.reason is DlqReason.BAD_SIZE and "contract value" in rejection.detail
    failed = '{"event":"error","code":"60012","msg":"Invalid request"}'
    assert okx.parse_message(failed).rejects[0].reason is DlqReason.EXCHANGE_ERROR
    assert okx.parse_message("pong").ignored == "pong"


def test_bybit_legacy_inverse_capture(shared_data: Path) -> None:
    trades, ignored, rejects, with_trades = _parse_capture(shared_data / BYBIT, "bybit_inverse")
    assert (len(trades), with_trades) == (150, 76)
    assert rejects == []
    assert ignored == {"orderBookL2_25": 1018, "subscribe_reply": 4}
    assert Counter(t["symbol"] for t in trades) == {"BTC-USD-SWAP": 131, "EOS-USD-SWAP": 19}
    assert len({t["trade_id"] for t in trades}) == 150
    # line 169: {"topic":"trade.EOSUSD","data":[{"trade_time_ms":1618677788758,...,"symbol":"EOSUSD",
    #            "side":"Sell","size":1,"price":7.971,...,"trade_id":"2b855a01-c958-5725-...",...}]}
    trade = next(t for t in trades if t["trade_id"] == "2b855a01-c958-5725-806a-d1d3b02a577b")
    assert trade == {
        "exchange": "bybit_inverse",
        "symbol": "EOS-USD-SWAP",
        "raw_symbol": "EOSUSD",
        "price": 7.971,
        "size": pytest.approx(1 / 7.971),  # one contract is 1 USD
        "side": "sell",
        "trade_id": "2b855a01-c958-5725-806a-d1d3b02a577b",
        "event_time": 1618677788758000,
    }


def test_bybit_v5_public_trade() -> None:
    """The example of Bybit's v5 documentation, on the spot and linear connections."""
    raw = json.dumps({"topic": "publicTrade.BTCUSDT", "type": "snapshot", "ts": 1672304486868, "data": [
        {"T": 1672304486865, "s": "BTCUSDT", "S": "Buy", "v": "0.001", "p": "16578.50", "L": "PlusTick",
         "i": "20f43950-d8dd-5b31-9112-a178eb6023af", "BT": False},
        {"T": 1672304486865, "s": "BTCUSDT", "S": "Hold", "v": "0.001", "p": "16578.50", "i": "x"},
    ]})  # fmt: skip
    spot, linear = bybit.parse_spot(raw), bybit.parse_linear(raw)
    assert spot.trades[0]["symbol"] == "BTC-USDT" and linear.trades[0]["symbol"] == "BTC-USDT-SWAP"
    assert linear.trades[0] | {"symbol": "BTC-USDT"} | {"exchange": "bybit"} == spot.trades[0]
    assert spot.trades[0]["size"] == 0.001 and spot.trades[0]["event_time"] == 1672304486865000
    assert [r.reason for r in spot.rejects] == [DlqReason.BAD_SIDE]
    assert bybit.parse_spot('{"success":true,"ret_msg":"subscribe","op":"subscribe"}').ignored
    assert (
        bybit.parse_spot('{"success":false,"ret_msg":"error:x"}').rejects[0].reason
        is DlqReason.EXCHANGE_ERROR
    )
    assert bybit.normalise_symbol("bybit_inverse", "BTCUSDH21") == "BTC-USD-H21"
    assert bybit.normalise_symbol("bybit_linear", "BTC-26DEC25") == "BTC-USDC-26DEC25"
    assert bybit.to_exchange_symbol("BTC-USD-H21") == "BTCUSDH21"
    assert bybit.to_exchange_symbol("BTC-USDT-SWAP") == bybit.to_exchange_symbol("BTC-USDT") == "BTCUSDT"


def test_bitfinex_capture(shared_data: Path) -> None:
    trades, ignored, rejects, with_trades = _parse_capture(shared_data / BITFINEX, "bitfinex")
    assert (len(trades), with_trades) == (210, 7)
    assert rejects == []
    assert ignored == {"book": 1600, "heartbeat": 42, "subscribed": 21, "ticker": 21, "info": 1, "conf": 1}
    assert Counter(t["symbol"] for t in trades) == {
        "BFT-USD": 30, "MANA-BTC": 30, "TESTBTC-TESTUSD": 30, "SNGLS-USD": 30, "IOTA-ETH": 30, "DOG-USD": 30,
        "ODE-USD": 30,
    }  # fmt: skip
    assert len({t["trade_id"] for t in trades}) == 210
    # the MNABTC snapshot starts [670002570,1618677535660,-76.7682617,0.00002516]: a taker sell
    trade = next(t for t in trades if t["trade_id"] == "670002570")
    assert trade == {
        "exchange": "bitfinex",
        "symbol": "MANA-BTC",
        "raw_symbol": "tMNABTC",
        "price": 0.00002516,
        "size": 76.7682617,
        "side": "sell",
        "trade_id": "670002570",
        "event_time": 1618677535660000,
    }


def test_bitfinex_te_tu_and_state() -> None:
    parse = bitfinex.SPEC.parser()
    assert parse('{"event":"subscribed","channel":"trades","chanId":17,"symbol":"tBTCF0:USTF0"}').ignored
    te = parse('[17,"te",[401597395,1574694478808,-0.005,7245.3],12]')
    tu = parse('[17,"tu",[401597395,1574694478808,-0.005,7245.3],13]')
    (trade,) = te.trades
    assert trade["symbol"] == "BTC-USDT-SWAP" and trade["side"] == "sell" and trade["size"] == 0.005
    assert tu.trades == [] and tu.ignored == "tu"  # the same trade again: not doubled
    assert parse('[18,"te",[1,1574694478808,1,1]]').rejects[0].reason is DlqReason.UNKNOWN_MESSAGE
    assert parse('[17,"te",[2,1574694478808,0,7245.3]]').rejects[0].reason is DlqReason.BAD_SIZE
    assert parse('{"event":"error","msg":"symbol: invalid","code":10300}').rejects[0].reason is (
        DlqReason.EXCHANGE_ERROR
    )
    # a stateless parse cannot know channel 17; a fresh parser per stream does not share it
    assert bitfinex.parse_message('[17,"te",[3,1574694478808,1,1]]').rejects[0].reason is (
        DlqReason.UNKNOWN_MESSAGE
    )
    assert bitfinex.SPEC.parser()('[17,"te",[3,1574694478808,1,1]]').trades == []
    assert bitfinex.normalise_symbol("tTESTBTC:TESTUSD") == "TESTBTC-TESTUSD"
    assert bitfinex.normalise_symbol("tETHUST") == "ETH-USDT"


def test_binance_us_and_futures_symbols() -> None:
    raw = '{"e":"aggTrade","E":1,"a":5,"s":"BTCUSDT","p":"1","q":"2","f":1,"l":1,"T":1672515782136,"m":true}'
    assert binance.parse_us(raw).trades[0] | {"exchange": "x"} == binance.parse_spot(raw).trades[0] | {
        "exchange": "x"
    }
    assert binance.parse_us(raw).trades[0]["exchange"] == "binance_us"
    assert binance.parse_futures(raw).trades[0]["symbol"] == "BTC-USDT-SWAP"
    dated = raw.replace('"BTCUSDT"', '"BTCUSDT_230929"')
    assert binance.parse_futures(dated).trades[0]["symbol"] == "BTC-USDT-230929"
    assert binance.to_stream_symbol("BTC-USDT-230929") == "btcusdt_230929"
    assert binance.to_stream_symbol("BTC-USDT-SWAP") == "btcusdt"


def test_new_subscribe_messages() -> None:
    settings = Settings(_env_file=None)
    (message,) = okx.subscribe(["BTC-USDT", "BTC-USD-SWAP"], settings)
    args = [{"channel": "trades", "instId": "BTC-USDT"}, {"channel": "trades", "instId": "BTC-USD-SWAP"}]
    assert json.loads(message) == {"op": "subscribe", "args": args}
    many = bybit.subscribe([f"C{i}-USDT" for i in range(25)], settings)
    assert [len(json.loads(m)["args"]) for m in many] == [10, 10, 5]
    assert json.loads(many[0])["args"][0] == "publicTrade.C0USDT"
    conf, *subs = map(json.loads, bitfinex.subscribe(["BTC-USDT", "TESTBTC-TESTUSD"], settings))
    assert conf == {"event": "conf", "flags": 65536}
    assert [s["symbol"] for s in subs] == ["tBTCUST", "tTESTBTC:TESTUSD"]


@pytest.mark.parametrize(
    ("capture", "exchange"),
    [
        (COINBASE, "coinbase"),
        (BINANCE_FUTURES, "binance_futures"),
        (BITSTAMP, "bitstamp"),
        (KRAKEN, "kraken"),
        (OKX, "okx"),
        (BYBIT, "bybit_inverse"),
        (BITFINEX, "bitfinex"),
    ],
)
def test_capture_recognised_by_connection_line(
    capture: str, exchange: str, shared_data: Path, tmp_path: Path
) -> None:
    """By the URL of the connection line alone: the file is renamed so its name cannot tell."""
    head = (shared_data / capture).read_text().splitlines()[:3]
    renamed = tmp_path / "recording.txt"
    renamed.write_text("\n".join(head) + "\n")
    spec = _capture_exchange(renamed)
    assert spec is not None and spec.name == exchange


def test_binance_us_capture_recognised(tmp_path: Path) -> None:
    by_url = tmp_path / "recording.txt"
    by_url.write_text("wss://stream.binance.us:9443/stream <-> 1626992741.1\n")
    by_name = tmp_path / "capture_BINANCE_US.ws.1.0"
    by_name.write_text('1626992741.2: {"result":null,"id":1}\n')
    assert _capture_exchange(by_url) is _capture_exchange(by_name) is binance.US_SPEC
    unknown = tmp_path / "capture_NOWHERE.ws.1.0"
    unknown.write_text("wss://example.com/ws <-> 1626992741.1\n")
    assert _capture_exchange(unknown) is None
