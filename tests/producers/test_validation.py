"""Validation rules, de-duplication, and hostile input (hypothesis) ending in the real dead-letter topic."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from prometheus_client import REGISTRY
from pydantic import ValidationError

from producers.exchanges import EXCHANGES
from producers.kafka_producer import TickProducer
from producers.pipeline import TickPipeline, now_us
from producers.trades import DlqReason, TradeFields
from producers.validation import TickValidator
from tests.producers.kafka_util import consume_all
from tickflow.dead_letter import DeadLetter
from tickflow.schemas import Tick, TickSource
from tickflow.settings import Settings

NOW = now_us()
SETTINGS = Settings(_env_file=None, max_clock_skew_s=30.0, dedup_window=1000)


def trade(**changes: Any) -> TradeFields:
    base: dict[str, Any] = {
        "exchange": "coinbase", "symbol": "BTC-USD", "raw_symbol": "BTC-USD", "price": 25785.33,
        "size": 0.0012, "side": "buy", "trade_id": "1", "event_time": NOW - 1_000_000,
    }  # fmt: skip
    base.update(changes)
    return base  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"price": 0.0}, DlqReason.BAD_PRICE),
        ({"price": -1.0}, DlqReason.BAD_PRICE),
        ({"price": math.nan}, DlqReason.BAD_PRICE),
        ({"price": math.inf}, DlqReason.BAD_PRICE),
        ({"price": "1.5"}, DlqReason.BAD_PRICE),
        ({"size": 0.0}, DlqReason.BAD_SIZE),
        ({"size": math.nan}, DlqReason.BAD_SIZE),
        ({"side": "long"}, DlqReason.BAD_SIDE),
        ({"trade_id": ""}, DlqReason.MISSING_FIELD),
        ({"trade_id": 7}, DlqReason.BAD_TRADE_ID),
        ({"trade_id": "12\x0034"}, DlqReason.BAD_TRADE_ID),
        ({"symbol": "BTC-USD\x1b"}, DlqReason.UNKNOWN_SYMBOL),
        ({"trade_id": "x" * 129}, DlqReason.BAD_TRADE_ID),
        ({"symbol": "btc usd"}, DlqReason.UNKNOWN_SYMBOL),
        ({"raw_symbol": ""}, DlqReason.MISSING_FIELD),
        ({"exchange": None}, DlqReason.MISSING_FIELD),
        ({"event_time": 946_684_799_999_999}, DlqReason.BAD_TIMESTAMP),  # 1999-12-31
        ({"event_time": float(NOW)}, DlqReason.BAD_TIMESTAMP),
        ({"event_time": NOW + 31_000_000}, DlqReason.CLOCK_SKEW),
        ({"event_time": NOW - 31_000_000}, DlqReason.CLOCK_SKEW),
    ],
)
def test_live_rules(changes: dict[str, Any], reason: DlqReason) -> None:
    validator = TickValidator(SETTINGS)
    assert validator.check(trade(), NOW, live=True) is None
    assert validator.check(trade(**{"trade_id": "2", **changes}), NOW, live=True) is reason
    (name,) = changes
    assert name in validator.explain(trade(**changes), reason, NOW)


def test_missing_field_and_history_rules() -> None:
    validator = TickValidator(SETTINGS)
    incomplete = trade()
    del incomplete["size"]  # type: ignore[misc]
    assert validator.check(incomplete, NOW, live=False) is DlqReason.MISSING_FIELD
    assert "size" in validator.explain(incomplete, DlqReason.MISSING_FIELD, NOW)
    old = trade(event_time=1_618_677_817_089_723)  # 2021: fine for replay, skewed for live
    assert validator.check(old, NOW, live=True) is DlqReason.CLOCK_SKEW
    assert validator.check(old, NOW, live=False) is None
    future = trade(trade_id="9", event_time=NOW + 3_600_000_000)
    assert validator.check(future, NOW, live=False) is DlqReason.FUTURE_EVENT_TIME


def test_symbol_universe() -> None:
    strict = TickValidator(SETTINGS.model_copy(update={"accept_unlisted_symbols": False}))
    assert strict.check(trade(symbol="SKL-BTC"), NOW, live=True) is DlqReason.UNKNOWN_SYMBOL
    assert strict.check(trade(symbol="ETH-USD"), NOW, live=True) is None
    lenient = TickValidator(SETTINGS)
    assert lenient.check(trade(symbol="SKL-BTC"), NOW, live=True) is None
    assert lenient.check(trade(symbol="AAPL", trade_id="2"), NOW, live=True) is None
    assert lenient.check(trade(symbol="BTC-USD-SWAP", trade_id="3"), NOW, live=True) is None  # a contract
    assert (
        lenient.check(trade(symbol="FAR-TOO-MANY-DASHES", trade_id="4"), NOW, live=True)
        is DlqReason.UNKNOWN_SYMBOL
    )


def test_duplicates_per_exchange_and_window() -> None:
    validator = TickValidator(SETTINGS.model_copy(update={"dedup_window": 3}))
    assert validator.check(trade(), NOW, live=True) is None
    assert validator.check(trade(), NOW, live=True) is DlqReason.DUPLICATE
    assert validator.check(trade(exchange="kraken"), NOW, live=True) is None  # another exchange
    assert validator.check(trade(symbol="ETH-USD"), NOW, live=True) is None  # another symbol
    for n in range(2, 8):  # push "1" out of the window (at least 3, at most 6 + a batch remembered)
        assert validator.check(trade(trade_id=str(n)), NOW, live=True) is None
    assert validator.check(trade(), NOW, live=True) is None
    batch = [trade(trade_id=str(n)) for n in (10, 11, 10, 12)]  # a duplicate within one batch
    accepted, rejected = validator.validate(batch, NOW, live=True)
    assert [t["trade_id"] for t in accepted] == ["10", "11", "12"]
    assert [(t["trade_id"], reason) for t, reason in rejected] == [("10", DlqReason.DUPLICATE)]


prices = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(), st.text(max_size=5), st.none()
)
fields = st.fixed_dictionaries(
    {
        "exchange": st.sampled_from(["coinbase", "", "kraken"]),
        "symbol": st.sampled_from(["BTC-USD", "AAPL", "bad symbol", "", "X" * 20]),
        "raw_symbol": st.sampled_from(["BTC-USD", "", "btcusd"]),
        "price": prices,
        "size": prices,
        "side": st.sampled_from(["buy", "sell", "unknown", "BUY", "", "long"]),
        "trade_id": st.one_of(st.text(max_size=3), st.integers()),
        "event_time": st.one_of(st.integers(min_value=-(2**63), max_value=2**63), st.floats()),
    }
)


@given(fields)
@hsettings(max_examples=300, deadline=None)
def test_whatever_validation_accepts_is_a_valid_tick(candidate: dict[str, Any]) -> None:
    """One definition of the rules: the fast checks never accept what the ``Tick`` model would refuse."""
    if TickValidator(SETTINGS).check(dict(candidate), NOW, live=False) is not None:  # type: ignore[arg-type]
        return
    wire = orjson.dumps({**candidate, "v": 1, "receipt_time": NOW, "source": "replay"})
    tick = Tick.from_wire(wire)
    assert (tick.price, tick.size, tick.trade_id) == (
        candidate["price"],
        candidate["size"],
        candidate["trade_id"],
    )


def test_tick_model_refuses_what_validation_refuses_on_fields() -> None:
    for bad in ({"price": -1.0}, {"size": 0.0}, {"side": "long"}, {"trade_id": ""}, {"price": math.inf}):
        assert TickValidator(SETTINGS).check(trade(**bad), NOW, live=False) is not None
        with pytest.raises(ValidationError):
            Tick(**{**trade(**bad), "receipt_time": NOW, "source": "replay"})


# --- hostile messages through every exchange parser into the real dead-letter topic ----------------------

BASE_MESSAGES: dict[str, dict[str, Any]] = {
    "coinbase": {"type": "match", "trade_id": 280232, "side": "sell", "size": "985", "price": "0.00001305",
                 "product_id": "SKL-BTC", "sequence": 177100030, "time": "2021-04-17T16:43:37.089723Z"},
    "binance_futures": {"e": "aggTrade", "E": 1626992770521, "a": 16599329, "s": "CTKUSDT", "p": "1.01200",
                        "q": "10", "f": 23961397, "l": 23961397, "T": 1626992770366, "m": False},
    # without the rounded `price`/`amount`/`timestamp` the parser falls back to when the exact field is absent
    "bitstamp": {"data": {"id": 216000506, "amount_str": "2.73248242", "price_str": "3800.80", "type": 1,
                          "microtimestamp": "1641343721269000"},
                 "channel": "live_trades_ethusd", "event": "trade"},
    "kraken": {"channel": "trade", "type": "update", "data": [
        {"symbol": "XBT/USD", "side": "sell", "price": 26101.5, "qty": 0.00137, "ord_type": "market",
         "trade_id": 64263591, "timestamp": "2023-09-25T07:49:37.708706Z"}]},
    "polygon": [{"ev": "T", "sym": "MSFT", "x": 4, "i": "12345", "z": 3, "p": 114.125, "s": 100, "c": [0, 12],
                 "t": 1536036818784, "q": 3681328}],
}  # fmt: skip

# (exchange, path to the field) -> the role of the field
FIELDS: dict[str, dict[tuple[Any, ...], str]] = {
    "coinbase": {("price",): "number", ("size",): "number", ("time",): "iso", ("side",): "side",
                 ("trade_id",): "id", ("product_id",): "symbol"},
    "binance_futures": {("p",): "number", ("q",): "number", ("T",): "epoch", ("m",): "side", ("a",): "id",
                        ("s",): "symbol"},
    "bitstamp": {("data", "price_str"): "number", ("data", "amount_str"): "number",
                 ("data", "microtimestamp"): "epoch", ("data", "type"): "side", ("data", "id"): "id",
                 ("channel",): "symbol"},
    "kraken": {("data", 0, "price"): "number", ("data", 0, "qty"): "number", ("data", 0, "timestamp"): "iso",
               ("data", 0, "side"): "side", ("data", 0, "trade_id"): "id", ("data", 0, "symbol"): "symbol"},
    "polygon": {(0, "p"): "number", (0, "s"): "number", (0, "t"): "epoch", (0, "i"): "id",
                (0, "sym"): "symbol"},
}  # fmt: skip

ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)
junk = st.one_of(st.none(), st.just(""), st.lists(ints, max_size=2),
                 st.dictionaries(st.text(max_size=2), ints, max_size=1))  # fmt: skip
not_side = st.one_of(junk, st.booleans())  # booleans are Binance's valid `m`
HOSTILE: dict[str, st.SearchStrategy[Any]] = {
    "number": st.one_of(not_side, st.sampled_from(["abc", "nan", "-inf", "inf", "1e999", "-1", "0", "0x10"]),
                        st.floats(max_value=0), st.integers(min_value=-(2**63), max_value=0)),
    "iso": st.one_of(not_side, st.sampled_from(["yesterday", "2021-13-45T00:00:00Z", "1999-12-31T23:59:59Z",
                                                "2999-01-01T00:00:00Z"]), ints),
    "epoch": st.one_of(not_side, st.sampled_from(["soon", "-5", "nan", "1e30", "4102444800000"]),
                       st.integers(min_value=-(2**63), max_value=946_684_799)),
    "side": st.one_of(junk, st.sampled_from(["long", "BUY ", 2, -1, "0", 0.5])),
    "id": st.one_of(not_side, st.sampled_from(["   ", 1.5, "x" * 200])),
    "symbol": st.one_of(not_side,
                        st.sampled_from(["not a symbol!!", "btc usd", 5, "A" * 100, "live_trades_"])),
}  # fmt: skip
REASONS = {
    "number": {DlqReason.MISSING_FIELD, DlqReason.BAD_PRICE, DlqReason.BAD_SIZE},
    "iso": {DlqReason.MISSING_FIELD, DlqReason.BAD_TIMESTAMP, DlqReason.FUTURE_EVENT_TIME},
    "epoch": {DlqReason.MISSING_FIELD, DlqReason.BAD_TIMESTAMP, DlqReason.FUTURE_EVENT_TIME},
    "side": {DlqReason.MISSING_FIELD, DlqReason.BAD_SIDE},
    "id": {DlqReason.MISSING_FIELD, DlqReason.BAD_TRADE_ID},
    "symbol": {DlqReason.MISSING_FIELD, DlqReason.UNKNOWN_SYMBOL},
}
DELETE = object()


def _mutate(message: Any, path: tuple[Any, ...], value: Any) -> Any:
    copy = json.loads(json.dumps(message))
    parent = copy
    for step in path[:-1]:
        parent = parent[step]
    if value is DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return copy


@st.composite
def hostile_messages(draw: Callable) -> tuple[str, bytes, set[DlqReason]]:
    exchange = draw(st.sampled_from(sorted(BASE_MESSAGES)))
    path, role = draw(st.sampled_from(sorted(FIELDS[exchange].items(), key=str)))
    value = draw(st.one_of(st.just(DELETE), HOSTILE[role]))
    return exchange, orjson.dumps(_mutate(BASE_MESSAGES[exchange], path, value)), REASONS[role]


def test_hostile_input_ends_in_the_dead_letter_topic(fresh_topics: Settings) -> None:
    producer = TickProducer(fresh_topics)
    pipelines = {
        name: TickPipeline(fresh_topics, producer, TickSource.REPLAY, name) for name in BASE_MESSAGES
    }
    expected: Counter[tuple[str, str]] = Counter()

    for name, base in BASE_MESSAGES.items():  # the unmutated messages are valid
        raw = orjson.dumps(base)
        assert pipelines[name].submit(EXCHANGES[name].parse(raw), raw, now_us()) == 1, name

    @given(hostile_messages())
    @hsettings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    def mutated_fields(case: tuple[str, bytes, set[DlqReason]]) -> None:
        name, raw, reasons = case
        pipeline = pipelines[name]
        before = Counter(pipeline.stats.rejected)
        result = EXCHANGES[name].parse(raw)
        produced = pipeline.submit(result, raw, now_us())
        added = Counter(pipeline.stats.rejected) - before
        assert produced == 0 and sum(added.values()) == 1, (raw, added)
        (reason,) = added
        assert DlqReason(reason) in reasons, (raw, reason)
        # the parser keeps the offending element of a multi-trade message; validation the whole message
        expected[(reason, result.rejects[0].raw if result.rejects else raw.decode())] += 1

    json_values = st.recursive(
        st.none() | st.booleans() | st.floats() | st.text(max_size=8),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
        max_leaves=8,
    )

    @given(
        st.one_of(st.binary(max_size=64), json_values.map(orjson.dumps)),
        st.sampled_from(sorted(BASE_MESSAGES)),
    )
    @hsettings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    def garbage(raw: bytes, name: str) -> None:
        result = EXCHANGES[name].parse(raw)
        assert result.trades == []
        assert result.rejects or result.ignored, raw
        for rejection in result.rejects:
            assert isinstance(rejection.reason, DlqReason) and rejection.exchange == name
            expected[(rejection.reason.value, rejection.raw)] += 1
        pipelines[name].submit(result, raw, now_us())

    mutated_fields()
    garbage()
    assert producer.flush() == 0
    assert sum(p.stats.produced for p in pipelines.values()) == len(BASE_MESSAGES)
    rejected_total = sum(p.stats.dead_lettered for p in pipelines.values())
    assert rejected_total == sum(expected.values()) and producer.failed == 0

    letters = [
        DeadLetter.from_wire(r.raw) for r in consume_all(fresh_topics, fresh_topics.topic_dlq, rejected_total)
    ]
    assert Counter((letter.reason.value, letter.raw) for letter in letters) == expected
    assert all(letter.source is TickSource.REPLAY and letter.received_at > NOW for letter in letters)
    metric = REGISTRY.get_sample_value(
        "tickflow_producer_rejected_total",
        {"source": "replay", "exchange": "coinbase", "reason": "bad_price"},
    )
    assert metric is not None and metric >= pipelines["coinbase"].stats.rejected["bad_price"]
