"""Wire schemas shared by every stage: the tick on ``tick_data`` and the OHLCV bar.

Tick wire format (Kafka value on ``tick_data``, key = normalised symbol, UTF-8 JSON object)::

    {"v": 1, "exchange": "coinbase", "symbol": "BTC-USD", "raw_symbol": "BTC-USD",
     "price": 25785.33, "size": 0.0012, "side": "buy", "trade_id": "5512345",
     "event_time": 1693929600123456, "receipt_time": 1693929600130000, "source": "live"}

- ``v``: schema version, currently ``1``; readers reject other versions to the dead-letter queue.
- ``price``: in quote currency per base unit, an IEEE-754 double; any decimal price with at most 15
  significant digits round-trips exactly (``repr(float("25785.33")) == "25785.33"``).
- ``size``: in base units (BTC for BTC-USD, shares for AAPL).
- ``side``: the taker (aggressor) side: ``buy``, ``sell`` or ``unknown``.
- ``event_time``: exchange time of the trade, integer microseconds since the Unix epoch, UTC.
- ``receipt_time``: when Tickflow received it, integer microseconds since the Unix epoch, UTC.
- ``source``: ``live``, ``backfill``, ``replay`` or ``synthetic``.

The bar (``OHLCVBar``) is the row of the ``ohlcv`` table and the JSON published to Redis and the
``bars_*`` topics (``bars_1m``...); its timestamps are UTC with microsecond resolution. ``INDICATOR_FIELDS``
name the indicator columns of a bar's row in the ``indicators`` table.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Final

import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tickflow.intervals import Interval

TICK_SCHEMA_VERSION: Final = 1
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


class Side(StrEnum):
    """Taker side of a trade."""

    BUY = "buy"
    SELL = "sell"
    UNKNOWN = "unknown"


class TickSource(StrEnum):
    """Where a tick came from."""

    LIVE = "live"
    BACKFILL = "backfill"
    REPLAY = "replay"
    SYNTHETIC = "synthetic"


# One definition of the tick's wire fields, used by the pydantic model's users and by the Spark schema
# (streaming_jobs builds its StructType from this table). Types: "str", "float", "int".
TICK_WIRE_FIELDS: Final[tuple[tuple[str, str], ...]] = (
    ("v", "int"),
    ("exchange", "str"),
    ("symbol", "str"),
    ("raw_symbol", "str"),
    ("price", "float"),
    ("size", "float"),
    ("side", "str"),
    ("trade_id", "str"),
    ("event_time", "int"),
    ("receipt_time", "int"),
    ("source", "str"),
)


class Tick(BaseModel):
    """One validated trade, normalised across exchanges.

    Shapes and units: ``price`` in quote currency (finite, > 0), ``size`` in base units (finite, > 0),
    ``event_time``/``receipt_time`` integer microseconds since the Unix epoch (UTC).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: int = TICK_SCHEMA_VERSION
    exchange: str = Field(min_length=1)
    symbol: str = Field(min_length=1)
    raw_symbol: str = Field(min_length=1)
    price: float = Field(gt=0, allow_inf_nan=False)
    size: float = Field(gt=0, allow_inf_nan=False)
    side: Side = Side.UNKNOWN
    trade_id: str = Field(min_length=1)
    event_time: int = Field(gt=0, description="µs since epoch, UTC")
    receipt_time: int = Field(gt=0, description="µs since epoch, UTC")
    source: TickSource = TickSource.LIVE

    def to_wire(self) -> bytes:
        """The Kafka value: UTF-8 JSON (see module docstring)."""
        return orjson.dumps(self.model_dump(mode="json"))

    @classmethod
    def from_wire(cls, value: bytes | str) -> Tick:
        """Parse a Kafka value.

        Raises:
            pydantic.ValidationError: the JSON is malformed or a field is missing or out of range.
        """
        return cls.model_validate_json(value)


class OHLCVBar(BaseModel):
    """One OHLCV/VWAP bar of a tumbling event-time window ``[window_start, window_end)``.

    ``open``/``close`` are the prices of the earliest/latest trade by event time (ties broken by Kafka
    partition and offset), ``high``/``low`` the extreme traded prices, all in quote currency and equal to
    traded prices. ``volume`` is the sum of sizes (base units), ``quote_volume`` the sum of price*size
    (quote currency), ``vwap = quote_volume / volume``. ``is_final`` turns true once the watermark has
    passed ``window_end``; until then a late tick may still revise the bar. The window closure and the
    timestamp that names a bar (``window_start``) are the settings of ``tickflow/bar_spec.py``.

    Invariants (checked on construction and parsing; ``pydantic.ValidationError`` names the broken one):

    - ``interval`` is a known interval name and ``window_end - window_start`` equals it;
    - ``window_start`` is aligned to the interval (a multiple of it since the Unix epoch, UTC);
    - ``low <= open <= high``, ``low <= close <= high`` and ``low > 0`` (prices are traded prices);
    - ``low <= vwap <= high`` up to a relative rounding error of 1e-9 (a mean of traded prices);
    - ``volume > 0``, ``quote_volume > 0``, ``trade_count >= 1`` (an interval without trades has no bar);
    - ``window_start <= first_trade_time <= last_trade_time < window_end`` (left-closed windows).
    """

    model_config = ConfigDict(frozen=True)

    symbol: str
    interval: str
    window_start: datetime
    window_end: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float
    quote_volume: float
    vwap: float
    trade_count: int
    first_trade_time: datetime
    last_trade_time: datetime
    is_final: bool = False
    updated_at: datetime | None = None

    @model_validator(mode="after")
    def _invariants(self) -> OHLCVBar:
        """The invariants of the class docstring.

        Raises:
            ValueError: naming the first broken invariant and the values.
        """
        interval = Interval.parse(self.interval)
        length = self.window_end - self.window_start
        if length != timedelta(microseconds=interval.micros):
            raise ValueError(
                f"window_end - window_start = {length} but interval {self.interval} is {interval.minutes} min"
            )
        start = self.window_start if self.window_start.tzinfo else self.window_start.replace(tzinfo=UTC)
        since_epoch = (start - _EPOCH) // timedelta(microseconds=1)
        if since_epoch % interval.micros:
            raise ValueError(f"window_start {self.window_start} is not aligned to the {self.interval} grid")
        if not 0 < self.low <= min(self.open, self.close) or max(self.open, self.close) > self.high:
            raise ValueError(
                f"prices break 0 < low <= open, close <= high: open={self.open} high={self.high} "
                f"low={self.low} close={self.close}"
            )
        slack = 1e-9 * self.high
        if not self.low - slack <= self.vwap <= self.high + slack:
            raise ValueError(f"vwap {self.vwap} is outside [low, high] = [{self.low}, {self.high}]")
        if self.volume <= 0 or self.quote_volume <= 0 or self.trade_count < 1:
            raise ValueError(
                f"a bar needs trades: volume={self.volume} quote_volume={self.quote_volume} "
                f"trade_count={self.trade_count}"
            )
        if not self.window_start <= self.first_trade_time <= self.last_trade_time < self.window_end:
            raise ValueError(
                f"trade times break window_start <= first_trade_time <= last_trade_time < window_end: "
                f"{self.window_start}, {self.first_trade_time}, {self.last_trade_time}, {self.window_end}"
            )
        return self

    def to_json(self) -> bytes:
        """UTF-8 JSON with ISO-8601 UTC timestamps."""
        return orjson.dumps(self.model_dump(mode="json"))


BAR_FIELDS: Final[tuple[str, ...]] = tuple(OHLCVBar.model_fields)
"""Fields of ``OHLCVBar``, in order: the columns of the ``ohlcv`` table."""

BAR_FLOAT_FIELDS: Final[tuple[str, ...]] = tuple(
    name for name, info in OHLCVBar.model_fields.items() if info.annotation is float
)
"""The bar's prices (quote currency), volume (base units) and quote volume (quote currency):
``open, high, low, close, volume, quote_volume, vwap``."""

INDICATOR_FIELDS: Final[tuple[str, ...]] = (
    "sma_20",
    "sma_50",
    "sma_200",
    "ema_12",
    "ema_26",
    "rsi_14",
    "macd",
    "macd_signal",
    "macd_hist",
    "bb_middle",
    "bb_upper",
    "bb_lower",
    "bb_percent_b",
    "bb_bandwidth",
)
"""Indicator columns of the ``indicators`` table (``infra/db/migrations/0001_tables.sql``; double
precision, NULL until an indicator's look-back is filled), computed by
``streaming_jobs.indicators.formulas.compute_indicators``: SMA/EMA/MACD/Bollinger bands in quote currency,
RSI in 0..100, %B a fraction, bandwidth in percent."""


def json_dumps(obj: Any) -> bytes:
    """Compact JSON used everywhere on the wire (orjson; datetimes as ISO-8601)."""
    return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS)
