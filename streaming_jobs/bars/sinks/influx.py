"""InfluxDB writer (influxdb-client; locally VictoriaMetrics' InfluxDB endpoint): measurement ``ohlcv``.

One point per bar revision: tags ``symbol`` and ``interval``, fields ``open``/``high``/``low``/``close``/
``vwap`` (quote currency), ``volume`` (base units), ``quote_volume``, ``trade_count`` and ``is_final``,
time = ``window_start`` (ms). A revision overwrites the point of the same series and time, so a replay
is idempotent in InfluxDB.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS

from tickflow.schemas import BAR_FLOAT_FIELDS, OHLCVBar

MEASUREMENT: Final = "ohlcv"


def bar_point(bar: OHLCVBar) -> Point:
    """The InfluxDB point of one bar revision."""
    point = Point(MEASUREMENT).tag("symbol", bar.symbol).tag("interval", bar.interval)
    for name in BAR_FLOAT_FIELDS:
        point = point.field(name, float(getattr(bar, name)))
    point = point.field("trade_count", int(bar.trade_count)).field("is_final", int(bar.is_final))
    return point.time(bar.window_start, WritePrecision.MS)


class InfluxBarSink:
    """Writes bar points synchronously (an error surfaces in the batch that caused it)."""

    def __init__(self, url: str, token: str, org: str, bucket: str, timeout_ms: int = 10_000) -> None:
        self._client = InfluxDBClient(url=url, token=token, org=org, timeout=timeout_ms)
        self._write_api = self._client.write_api(write_options=SYNCHRONOUS)
        self._bucket = bucket

    def write(self, bars: Sequence[OHLCVBar]) -> None:
        """Write one point per bar.

        Raises:
            influxdb_client.rest.ApiException, urllib3.exceptions.HTTPError: the server refused or is down.
        """
        if bars:
            points = [bar_point(bar) for bar in bars]
            self._write_api.write(bucket=self._bucket, record=points, write_precision=WritePrecision.MS)

    def close(self) -> None:
        self._client.close()
