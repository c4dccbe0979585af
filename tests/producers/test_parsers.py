"""Exchange parsers against the real captures (and documented messages where no capture exists)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from producers.exchanges import EXCHANGES, binance, bitstamp, coinbase, kraken, polygon
from producers.exchanges.common import epoch_to_us, iso_to_us, separated_pair, split_pair
from producers.trades import DlqReason
from tests.producers.captures import BINANCE_FUTURES, BITSTAMP, COINBASE, received_messages
from tickflow.settings import Settings


def _parse_capture(path: Path, exchange: str) -> tuple[list[dict], Counter[str], list]:
    spec = EXCHANGES[exchange]
    trades, ignored, rejects = [], Counter(), []
    for raw in received_messages(path):
        result = spec.parse(raw)
        trades.extend(result.trades)
        rejects.extend(result.rejects)
        if result.ignored:
            ignored[result.ignored] += 1
    return trades, ignored, rejects


def test_coinbase_capture(shared_data: Path) -> None:
    trades, ignored, rejects = _parse_capture(shared_data / COINBASE, "coinbase")
    assert len(trades) == 107  # 97 match + 10 last_match
    assert rejects == []
    assert ignored == {"l2update": 9719, "ticker": 107, "snapshot": 10, "subscriptions": 3}
    assert {t["symbol"] for t in trades} == {
        "SKL-USD", "SKL-BTC", "BAND-GBP", "NMR-EUR", "BAND-BTC", "YFI-BTC", "DASH-BTC", "NU-GBP", "CRV-EUR",
        "SKL-GBP",
    }  # fmt: skip
    # line 56: {"type":"match","trade_id":280232,...,"side":"sell","size":"985","price":"0.00001305",
    #           "product_id":"SKL-BTC",...,"time":"2021-04-17T16:43:37.089723Z"}
    trade = next(t for t in trades if t["trade_id"] == "280232")
    assert trade == {
        "exchange": "coinbase",
        "symbol": "SKL-BTC",
        "raw_symbol": "SKL-BTC",
        "price": 0.00001305,
        "size": 985.0,
        "side": "buy",  # the maker sold: the taker bought
        "trade_id": "280232",
        "event_time": 1618677817089723,
    }


def test_coinbase_side_is_the_takers(shared_data: Path) -> None:
    """The ticker channel reports the taker side of the same trade ids: every parsed side must agree."""
    messages = [json.loads(m) for m in received_messages(shared_data / COINBASE)]
    ticker_side = {
        (m["product_id"], str(m["trade_id"])): m["side"] for m in messages if m["type"] == "ticker"
    }
    trades, _, _ = _parse_capture(shared_data / COINBASE, "coinbase")
    checked = [t for t in trades if (t["raw_symbol"], t["trade_id"]) in ticker_side]
    assert len(checked) == 107
    assert all(t["side"] == ticker_side[(t["raw_symbol"], t["trade_id"])] for t in checked)


def test_binance_futures_capture(shared_data: Path) -> None:
    trades, ignored, rejects = _parse_capture(shared_data / BINANCE_FUTURES, "binance_futures")
    assert len(trades) == 91
    assert rejects == []
    assert ignored == {"depthUpdate": 764, "bookTicker": 613, "kline": 67}
    assert Counter(t["symbol"] for t in trades) == {
        "SUSHI-USDT-SWAP": 40, "CTK-USDT-SWAP": 38, "AKRO-USDT-SWAP": 8, "KEEP-USDT-SWAP": 5
    }  # fmt: skip
    # line 1511: {"e":"aggTrade","E":1626992770521,"a":16599329,"s":"CTKUSDT","p":"1.01200","q":"10",
    #             "f":23961397,"l":23961397,"T":1626992770366,"m":false}
    trade = next(t for t in trades if t["trade_id"] == "16599329")
    assert trade == {
        "exchange": "binance_futures",
        "symbol": "CTK-USDT-SWAP",  # a perpetual: never mixed with spot CTK-USDT
        "raw_symbol": "CTKUSDT",
        "price": 1.012,
        "size": 10.0,
        "side": "buy",  # the buyer was not the maker
        "trade_id": "16599329",
        "event_time": 1626992770366000,
    }


def test_bitstamp_capture(shared_data: Path) -> None:
    trades, ignored, rejects = _parse_capture(shared_data / BITSTAMP, "bitstamp")
    assert len(trades) == 10
    assert rejects == []
    assert ignored == {"data": 717, "bts:subscription_succeeded": 20}
    assert Counter((t["symbol"], t["raw_symbol"]) for t in trades) == {("ETH-USD", "ethusd"): 10}
    # line 753: {"data":{"id":216000506,...,"amount_str":"2.73248242",...,"price_str":"3800.80","type":1,
    #            "microtimestamp":"1641343721269000",...},"channel":"live_trades_ethusd","event":"trade"}
    trade = next(t for t in trades if t["trade_id"] == "216000506")
    assert trade == {
        "exchange": "bitstamp",
        "symbol": "ETH-USD",
        "raw_symbol": "ethusd",
        "price": 3800.8,
        "size": 2.73248242,
        "side": "sell",
        "trade_id": "216000506",
        "event_time": 1641343721269000,
    }


def test_binance_spot_trade_event() -> None:
    """The raw (not combined) spot ``trade`` stream, as documented."""
    raw = ('{"e":"trade","E":1672515782136,"s":"BNBBTC","t":12345,"p":"0.001","q":"100","T":1672515782136,'
           '"m":true,"M":true}')  # fmt: skip
    (trade,) = binance.parse_spot(raw).trades
    assert trade["symbol"] == "BNB-BTC" and trade["side"] == "sell" and trade["trade_id"] == "12345"
    assert trade["event_time"] == 1672515782136000
    assert binance.parse_spot('{"result":null,"id":1}').ignored == "subscription_response"
    (rejection,) = binance.parse_spot('{"code":2,"msg":"Invalid request"}').rejects
    assert rejection.reason is DlqReason.EXCHANGE_ERROR


def test_kraken_v2_trade_message() -> None:
    """The example of Kraken's websocket v2 documentation, with one bad element among good ones."""
    raw = json.dumps({"channel": "trade", "type": "update", "data": [
        {"symbol": "XBT/USD", "side": "sell", "price": 26101.5, "qty": 0.00137, "ord_type": "market",
         "trade_id": 64263591, "timestamp": "2023-09-25T07:49:37.708706Z"},
        {"symbol": "XBT/USD", "side": "sell", "price": "oops", "qty": 0.1, "ord_type": "market",
         "trade_id": 64263592, "timestamp": "2023-09-25T07:49:37.708706Z"},
    ]})  # fmt: skip
    result = kraken.parse_message(raw)
    (trade,) = result.trades
    assert trade["symbol"] == "BTC-USD" and trade["raw_symbol"] == "XBT/USD" and trade["side"] == "sell"
    assert trade["price"] == 26101.5 and trade["size"] == 0.00137 and trade["trade_id"] == "64263591"
    assert trade["event_time"] == 1695628177708706
    (rejection,) = result.rejects
    assert rejection.reason is DlqReason.BAD_PRICE and '"oops"' in rejection.raw
    assert kraken.parse_message('{"channel":"heartbeat"}').ignored == "heartbeat"
    failed = '{"method":"subscribe","success":false,"error":"Currency pair not supported"}'
    assert kraken.parse_message(failed).rejects[0].reason is DlqReason.EXCHANGE_ERROR


def test_polygon_trade_events() -> None:
    """Polygon's documented ``T`` event, a status event and a failed authentication in one array."""
    raw = json.dumps([
        {"ev": "T", "sym": "MSFT", "x": 4, "i": "12345", "z": 3, "p": 114.125, "s": 100, "c": [0, 12],
         "t": 1536036818784, "q": 3681328},
        {"ev": "status", "status": "auth_failed", "message": "authentication failed"},
    ])  # fmt: skip
    result = polygon.parse_message(raw)
    (trade,) = result.trades
    assert trade == {
        "exchange": "polygon", "symbol": "MSFT", "raw_symbol": "MSFT", "price": 114.125, "size": 100.0,
        "side": "unknown", "trade_id": "4:12345", "event_time": 1536036818784000,
    }  # fmt: skip
    assert [r.reason for r in result.rejects] == [DlqReason.EXCHANGE_ERROR]
    assert polygon.parse_message('[{"ev":"status","status":"connected"}]').ignored == "status"


def test_bitstamp_prefers_exact_strings() -> None:
    raw = ('{"data":{"id":1,"timestamp":"1641343699","amount":0.1,"amount_str":"0.10000000","price":3805.4,'
           '"price_str":"3805.44","type":0,"microtimestamp":"1641343699596123"},"channel":"live_trades_btcusd",'
           '"event":"trade"}')  # fmt: skip
    (trade,) = bitstamp.parse_message(raw).trades
    assert trade["price"] == 3805.44 and trade["event_time"] == 1641343699596123 and trade["side"] == "buy"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1626992770, 1626992770_000000),  # s
        (1626992770.5, 1626992770_500000),
        (1626992770366, 1626992770366_000),  # ms (Binance before 2025)
        ("1735689600123456", 1735689600123456),  # µs (Binance public data from 2025)
        (1735689600123456789, 1735689600123456),  # ns
    ],
)
def test_epoch_units(value: object, expected: int) -> None:
    assert epoch_to_us(value) == expected


def test_iso_and_symbols() -> None:
    assert iso_to_us("2023-09-05T16:00:01.281719Z") == 1693929601281719
    assert iso_to_us("2023-09-05T16:00:01.281719123Z") == 1693929601281719  # ns digits cut
    assert iso_to_us("2023-09-05T18:00:01+02:00") == 1693929601000000
    assert split_pair("SUSHIUSDT") == "SUSHI-USDT"
    assert split_pair("usdteur") == "USDT-EUR"
    assert split_pair("BTCFDUSD") == "BTC-FDUSD"
    assert split_pair("AAPL") == "AAPL"
    assert separated_pair("XBT/EUR") == "BTC-EUR"
    assert separated_pair("eth-usd") == "ETH-USD"


def test_subscribe_messages() -> None:
    settings = Settings(_env_file=None, polygon_api_key="k")
    (message,) = coinbase.subscribe(["BTC-USD", "ETH-USD"], settings)
    assert json.loads(message) == {"type": "subscribe", "product_ids": ["BTC-USD", "ETH-USD"],
                                   "channels": ["matches"]}  # fmt: skip
    many = binance.subscribe([f"C{i}-USDT" for i in range(120)], settings)
    assert [len(json.loads(m)["params"]) for m in many] == [50, 50, 20]
    assert json.loads(many[0])["params"][0] == "c0usdt@aggTrade"
    assert json.loads(bitstamp.subscribe(["ETH-USD"], settings)[0])["data"]["channel"] == "live_trades_ethusd"
    assert json.loads(kraken.subscribe(["BTC-USD"], settings)[0])["params"]["symbol"] == ["BTC/USD"]
    auth, sub = map(json.loads, polygon.subscribe(["AAPL", "MSFT"], settings))
    assert auth == {"action": "auth", "params": "k"} and sub["params"] == "T.AAPL,T.MSFT"
    with pytest.raises(ValueError, match="API key"):
        polygon.subscribe(["AAPL"], Settings(_env_file=None, polygon_api_key=""))
