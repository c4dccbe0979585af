"""A bars checkpoint whose state a previous version of the bar plan wrote (open/close ordered by a struct,
before ``aggregate.ordering_key``) stops the job with the one clear line that names ``tickflow stream reset
bars``; after the reset the job recomputes the bars from the topic."""

from __future__ import annotations

import pytest
from pyspark.errors import StreamingQueryException
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from streaming_jobs.bars import aggregate
from streaming_jobs.bars.job import start_bar_job
from streaming_jobs.checkpoints import mismatch, reset
from tests.streaming_jobs.bars.support import fetch_bars, produce_ticks, tick
from tickflow.settings import Settings

pytestmark = pytest.mark.spark


def test_state_of_the_previous_bar_plan_names_the_reset_and_the_reset_recovers(
    spark: SparkSession, fresh_env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = fresh_env
    produce_ticks(settings, [tick("SCH-USD", "2024-01-01T00:00:10", 100.0)])
    with monkeypatch.context() as previous_version:
        previous_version.setattr(
            aggregate, "ordering_key", lambda: F.struct("event_time", "partition", "offset")
        )
        start_bar_job(spark, settings, available_now=True).wait()
    produce_ticks(
        settings,
        [tick("SCH-USD", "2024-01-01T00:00:20", 101.0), tick("SCH-USD", "2024-01-01T00:00:30", 99.0)],
    )

    with pytest.raises(StreamingQueryException) as failed:
        start_bar_job(spark, settings, available_now=True).wait()
    error = mismatch(failed.value, "bars", settings)
    assert error is not None, str(failed.value)[:2000]
    assert str(error).startswith("query 'bars': its checkpoint ")
    assert "another version of the query" in str(error)
    assert str(error).endswith("run: tickflow stream reset bars")

    assert reset(settings, "bars")
    start_bar_job(spark, settings, available_now=True).wait()
    bars = fetch_bars(settings, "SCH-USD")
    minute = bars[bars["interval"] == "1m"]
    assert minute["trade_count"].tolist() == [3]
    assert (minute["open"].tolist(), minute["high"].tolist()) == ([100.0], [101.0])
    assert (minute["low"].tolist(), minute["close"].tolist()) == ([99.0], [99.0])
