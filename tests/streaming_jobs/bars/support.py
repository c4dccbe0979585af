"""Helpers of the streaming tests: produce ticks, read back bars, topics, Redis and VictoriaMetrics."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

import httpx
import orjson
import pandas as pd
import psycopg2
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from tests.reference_bars import BAR_COLUMNS
from tickflow.schemas import BAR_FLOAT_FIELDS, Tick
from tickflow.settings import Settings


def us(text: str) -> int:
    """µs since the epoch of an ISO-8601 UTC time."""
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1_000_000)


def tick(symbol: str, at: str, price: float, size: float = 1.0) -> Tick:
    """A valid tick at ISO time ``at`` (UTC)."""
    return Tick(
        exchange="test",
        symbol=symbol,
        raw_symbol=symbol,
        price=price,
        size=size,
        side="buy",
        trade_id=uuid.uuid4().hex,
        event_time=us(at),
        receipt_time=us(at) + 1000,
        source="replay",
    )


def produce(settings: Settings, records: Iterable[tuple[bytes | None, bytes | None]]) -> None:
    """Produce (key, value) records to the tick topic in order and wait for them."""
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers, "enable.idempotence": True})
    for key, value in records:
        producer.produce(settings.topic_ticks, key=key, value=value)
    assert producer.flush(30) == 0


def produce_ticks(settings: Settings, ticks: Sequence[Tick]) -> None:
    produce(settings, [(t.symbol.encode(), t.to_wire()) for t in ticks])


def fetch_bars(settings: Settings, symbol: str | None = None) -> pd.DataFrame:
    """Rows of ``ohlcv`` (numerics as floats), ordered by interval and window start."""
    with psycopg2.connect(settings.postgres_dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT * FROM ohlcv WHERE %(s)s::text IS NULL OR symbol = %(s)s ORDER BY interval, window_start",
            {"s": symbol},
        )
        columns = [d.name for d in cur.description]
        frame = pd.DataFrame(cur.fetchall(), columns=columns)
    conn.close()
    for name in BAR_FLOAT_FIELDS:
        frame[name] = frame[name].astype(float)
    for name in ("window_start", "window_end", "first_trade_time", "last_trade_time"):
        frame[name] = pd.to_datetime(frame[name], utc=True).astype("datetime64[us, UTC]")
    return frame


def bar(frame: pd.DataFrame, interval: str, start: str) -> pd.Series | None:
    """The row of ``frame`` for ``interval`` and window start ``start`` (ISO, UTC), or None."""
    rows = frame[(frame["interval"] == interval) & (frame["window_start"] == pd.Timestamp(start, tz="UTC"))]
    assert len(rows) <= 1
    return None if rows.empty else rows.iloc[0]


def assert_equal_to_reference(stored: pd.DataFrame, reference: pd.DataFrame) -> None:
    """OHLC, counts and times exact; volume, quote volume and VWAP within 1e-9 relative; same windows."""
    keys = ["symbol", "interval", "window_start"]
    merged = stored[BAR_COLUMNS].merge(reference, on=keys, how="outer", suffixes=("", "_ref"), indicator=True)
    unmatched = merged[merged["_merge"] != "both"]
    assert unmatched.empty, f"extra or missing bars:\n{unmatched[[*keys, '_merge']]}"
    for name in ("window_end", "open", "high", "low", "close", "trade_count", "first_trade_time",
                 "last_trade_time"):  # fmt: skip
        different = merged[merged[name] != merged[f"{name}_ref"]]
        assert different.empty, f"{name} differs:\n{different[[*keys, name, f'{name}_ref']]}"
    for name in ("volume", "quote_volume", "vwap"):
        relative = ((merged[name] - merged[f"{name}_ref"]) / merged[f"{name}_ref"]).abs()
        assert relative.max() <= 1e-9, f"{name} differs by {relative.max()} relative"


def topic_records(settings: Settings, topic: str, timeout_s: float = 15.0) -> list[tuple[bytes, bytes]]:
    """Every (key, value) of ``topic``, partition by partition, read up to the end."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "group.id": f"test-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=timeout_s).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        records, pending = [], set(partitions)
        while pending:
            message = consumer.poll(timeout_s)
            assert message is not None, f"no end of partitions {pending} of {topic}"
            error = message.error()
            if error is not None:
                assert error.code() == KafkaError._PARTITION_EOF, error
                pending.discard(message.partition())
                continue
            records.append((message.key(), message.value()))
        return records
    finally:
        consumer.close()


def export_series(settings: Settings, metric_regex: str) -> list[dict]:
    """VictoriaMetrics ``/api/v1/export`` JSON lines of the series whose name matches ``metric_regex``."""
    httpx.get(f"{settings.influx_url}/internal/force_flush", timeout=10).raise_for_status()
    response = httpx.get(
        f"{settings.influx_url}/api/v1/export",
        params={"match[]": f'{{__name__=~"{metric_regex}"}}'},
        timeout=10,
    )
    response.raise_for_status()
    return [orjson.loads(line) for line in response.text.splitlines() if line.strip()]
