"""Live prediction on every final bar, with a scheduled retrain (`tickflow ml serve`).

The service keeps the newest registered model of each series (training one when none exists) and loops:

1. when ``retrain_interval_h`` has passed since the last (re)train, retrain every series on the last
   ``train_lookback_days`` of final bars, register the new versions and switch to them; every
   :data:`DISCOVERY_INTERVAL_S` in between, train the series that have no model yet (new series, or
   ones that had too few bars before);
2. poll ``ohlcv`` for final bars newer than the last one predicted from (the primary-key index makes this
   one cheap query per series) and write the predictions (:mod:`ml.predict`);
3. wait for a message on the Redis channels ``bars:{symbol}`` (which the bar job publishes to) or at most
   ``predict_poll_s`` seconds, whichever comes first. The database stays the source of truth for
   finality; the channel only shortens the wait.

After a start-up the first prediction of a series is made from its newest final bar; after an outage
the bars missed in between are predicted too (at most :data:`MAX_CATCHUP_BARS`). Database or Redis errors
are logged and retried on the next round; they never stop the loop.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Final

import pandas as pd
import psycopg2
import psycopg2.extensions
import redis
import structlog

from ml.data import latest_final_window, load_bars, load_indicators
from ml.features import HISTORY_BARS
from ml.model import InsufficientDataError, PriceModel, TrainParams
from ml.predict import predict_rows, write_predictions
from ml.registry import ModelNotFoundError, ModelRegistry
from ml.training import select_series, train_series
from tickflow.intervals import Interval
from tickflow.keys import bars_channel
from tickflow.settings import Settings

MAX_CATCHUP_BARS: Final = 1000
"""Most bars of one series predicted in one round after an outage (the newest ones)."""
DISCOVERY_INTERVAL_S: Final = 300.0
"""How often series without a model (new, or too short to train so far) are looked for and trained."""

log = structlog.get_logger(__name__)
Series = tuple[str, str]


class PredictionService:
    """Predicts the next close of each series on every final bar and retrains on a schedule.

    Args:
        settings: database, Redis, registry dir, lookback, retrain interval, poll interval, TTL.
        symbols, intervals: restrict the series (default: every series with final bars in
            ``settings.intervals``).
        params: training settings (default: defaults with ``settings.prediction_band``).
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        settings: Settings,
        symbols: list[str] | None = None,
        intervals: list[str] | None = None,
        *,
        params: TrainParams | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.registry = ModelRegistry(settings.model_dir)
        self.models: dict[Series, PriceModel] = {}
        self._symbols = symbols
        self._intervals = intervals or list(settings.intervals)
        self._params = params or TrainParams(band=settings.prediction_band)
        self._clock = clock
        self._last_base: dict[Series, pd.Timestamp] = {}
        self._next_retrain: float | None = None
        self._next_discovery = -math.inf

    def _train(self, conn: psycopg2.extensions.connection, series: Series) -> PriceModel | None:
        try:
            model = train_series(*series, self.settings.train_lookback_days, conn=conn, params=self._params)
        except InsufficientDataError as exc:
            log.warning("ml.train_skipped", symbol=series[0], interval=series[1], reason=str(exc))
            return None
        self.registry.save(model)
        log.info("ml.trained", symbol=series[0], interval=series[1], version=model.info.version)
        return model

    def load_models(self, conn: psycopg2.extensions.connection) -> dict[Series, PriceModel]:
        """Load the newest registered model of every series, training the ones that have none."""
        for series in select_series(conn, self._symbols, self._intervals):
            if series in self.models:
                continue
            try:
                self.models[series] = self.registry.load(*series)
            except ModelNotFoundError:
                model = self._train(conn, series)
                if model is not None:
                    self.models[series] = model
        return self.models

    def retrain(self, conn: psycopg2.extensions.connection) -> list[PriceModel]:
        """Retrain every series (new ones included), register and switch to the new models."""
        trained = []
        for series in select_series(conn, self._symbols, self._intervals):
            model = self._train(conn, series)
            if model is not None:
                self.models[series] = model
                trained.append(model)
        return trained

    def poll(self, conn: psycopg2.extensions.connection, client: redis.Redis) -> pd.DataFrame:
        """Predict from every final bar not yet predicted from; write and return the predictions."""
        written = []
        for series, model in self.models.items():
            newest = latest_final_window(*series, conn=conn)
            last = self._last_base.get(series)
            if newest is None or (last is not None and newest <= last):
                continue
            step = pd.Timedelta(minutes=Interval.parse(series[1]).minutes)
            since = newest - step if last is None else max(last, newest - MAX_CATCHUP_BARS * step)
            new_bars = round((newest - since) / step)
            bars = load_bars(*series, end=newest + step, limit=HISTORY_BARS + new_bars, conn=conn)
            indicators = load_indicators(*series, bars["window_start"].iloc[0], newest + step, conn=conn)
            rows = predict_rows(model, bars, indicators, since=since)
            write_predictions(rows, conn, client, self.settings.redis_prediction_ttl_s)
            self._last_base[series] = newest
            written.append(rows)
        return pd.concat(written, ignore_index=True) if written else pd.DataFrame()

    def step(self, conn: psycopg2.extensions.connection, client: redis.Redis) -> pd.DataFrame:
        """One round: retrain when due, else load or train missing models when due, then :meth:`poll`."""
        now = self._clock()
        retrain_s = self.settings.retrain_interval_h * 3600.0
        if self._next_retrain is None:
            self._next_retrain = now + retrain_s
        if now >= self._next_retrain:
            self.retrain(conn)
            self._next_retrain = now + retrain_s
            self._next_discovery = now + DISCOVERY_INTERVAL_S
        elif now >= self._next_discovery:
            self.load_models(conn)
            self._next_discovery = now + DISCOVERY_INTERVAL_S
        return self.poll(conn, client)

    def serve(self, stop: threading.Event | None = None) -> None:
        """Run :meth:`step` until ``stop`` is set, woken by bar messages or every ``predict_poll_s``."""
        stop = stop or threading.Event()
        conn: psycopg2.extensions.connection | None = None
        client = redis.Redis.from_url(self.settings.redis_url)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            while not stop.is_set():
                try:
                    if conn is None or conn.closed:
                        conn = psycopg2.connect(self.settings.postgres_dsn)
                        conn.autocommit = True
                    rows = self.step(conn, client)
                    if len(rows):
                        log.info("ml.predicted", rows=len(rows), newest=str(rows["window_start"].max()))
                    self._wait_for_bars(pubsub, stop)
                except (psycopg2.Error, redis.RedisError, ValueError) as exc:
                    log.warning("ml.serve_retry", error=str(exc))
                    if conn is not None:
                        conn.close()
                    pubsub.close()
                    pubsub = client.pubsub(ignore_subscribe_messages=True)
                    stop.wait(self.settings.predict_poll_s)
        finally:
            if conn is not None:
                conn.close()
            pubsub.close()
            client.close()

    def _wait_for_bars(self, pubsub: redis.client.PubSub, stop: threading.Event) -> None:
        """Block until a bar message arrives on a served symbol's channel, or ``predict_poll_s`` passes."""
        channels = {bars_channel(symbol).encode() for symbol, _ in self.models}
        missing = channels - set(pubsub.channels)
        if missing:
            pubsub.subscribe(*missing)
        if not pubsub.subscribed:
            stop.wait(self.settings.predict_poll_s)
        elif pubsub.get_message(timeout=self.settings.predict_poll_s) is not None:
            while pubsub.get_message(timeout=0.0) is not None:  # one poll serves a burst of messages
                pass
