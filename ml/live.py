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

The service logs what it does per series (``ml.waiting`` for N more final bars, ``ml.training``,
``ml.predicting`` with the model version) when that changes, and writes the same state to the Redis key
``tickflow.keys.ML_STATUS_KEY`` every round (TTL ``ML_STATUS_TTL_S``), which the API serves and the
dashboard shows.

After a start-up the first prediction of a series is made from its newest final bar; after an outage
the bars missed in between are predicted too (at most :data:`MAX_CATCHUP_BARS`). Database or Redis errors
are logged and retried on the next round; they never stop the loop.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Final, Literal

import orjson
import pandas as pd
import psycopg2
import psycopg2.extensions
import redis
import structlog

from ml.data import latest_final_window, load_bars, load_indicators
from ml.features import HISTORY_BARS
from ml.live_score import live_score
from ml.model import InsufficientDataError, PriceModel, TrainParams
from ml.predict import predict_rows, write_predictions
from ml.registry import ModelNotFoundError, ModelRegistry
from ml.training import select_series, train_series
from tickflow.clients import postgres_dsn, redis_kwargs
from tickflow.intervals import Interval
from tickflow.keys import ML_STATUS_KEY, bars_channel
from tickflow.settings import Settings

MAX_CATCHUP_BARS: Final = 1000
"""Most bars of one series predicted in one round after an outage (the newest ones)."""
DISCOVERY_INTERVAL_S: Final = 300.0
"""How often series without a model (new, or too short to train so far) are looked for and trained."""

ML_STATUS_TTL_S: Final = 300
"""TTL of the status key (s): a stopped service's state disappears."""

log = structlog.get_logger(__name__)
Series = tuple[str, str]


@dataclass
class SeriesStatus:
    """What the service does for one series: ``waiting`` for ``missing_bars`` more final bars (as of the
    last training attempt), ``training``, or ``predicting`` every final bar with ``model_version``;
    ``last_base`` is the newest bar predicted from (ISO-8601 UTC); ``scored_bars``, ``rmse_vs_naive`` and
    ``band_coverage`` score the served predictions whose bar is final (:mod:`ml.live_score`) against the
    band's nominal level ``band``."""

    symbol: str
    interval: str
    state: Literal["waiting", "training", "predicting"]
    missing_bars: int | None = None
    model_version: str | None = None
    last_base: str | None = None
    band: float | None = None
    scored_bars: int = 0
    rmse_vs_naive: float | None = None
    band_coverage: float | None = None


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
        self.status: dict[Series, SeriesStatus] = {}

    def _set_status(self, series: Series, **changes: object) -> None:
        """Update a series' status; logs what the service now does when that changed."""
        old = self.status.get(series)
        base = (
            asdict(old)
            if old is not None
            else {"symbol": series[0], "interval": series[1], "state": "waiting"}
        )
        new = SeriesStatus(**{**base, **changes})  # type: ignore[arg-type]
        self.status[series] = new
        if old is not None and (old.state, old.missing_bars, old.model_version) == (
            new.state,
            new.missing_bars,
            new.model_version,
        ):
            return
        fields = {"symbol": series[0], "interval": series[1]}
        if new.state == "waiting":
            log.info("ml.waiting", **fields, more_final_bars=new.missing_bars)
        elif new.state == "training":
            log.info("ml.training", **fields)
        else:
            log.info("ml.predicting", **fields, model_version=new.model_version, every="final bar")

    def publish_status(self, client: redis.Redis) -> dict[str, object]:
        """Write the status of every series to ``ML_STATUS_KEY`` (TTL ``ML_STATUS_TTL_S``); returns it."""
        status: dict[str, object] = {
            "updated_at": datetime.now(UTC).isoformat(),
            "series": [asdict(s) for _, s in sorted(self.status.items())],
        }
        client.set(ML_STATUS_KEY, orjson.dumps(status), ex=ML_STATUS_TTL_S)
        return status

    def _train(self, conn: psycopg2.extensions.connection, series: Series) -> PriceModel | None:
        self._set_status(series, state="training", missing_bars=None)
        try:
            model = train_series(*series, self.settings.train_lookback_days, conn=conn, params=self._params)
        except InsufficientDataError as exc:
            log.warning("ml.train_skipped", symbol=series[0], interval=series[1], reason=str(exc))
            previous = self.models.get(series)
            if previous is not None:
                self._set_status(series, state="predicting", model_version=previous.info.version)
            else:
                self._set_status(series, state="waiting", missing_bars=exc.missing_bars)
            return None
        self.registry.save(model)
        log.info("ml.trained", symbol=series[0], interval=series[1], version=model.info.version)
        self._set_status(series, state="predicting", model_version=model.info.version)
        return model

    def load_models(self, conn: psycopg2.extensions.connection) -> dict[Series, PriceModel]:
        """Load the newest registered model of every series, training the ones that have none."""
        for series in select_series(conn, self._symbols, self._intervals):
            if series in self.models:
                continue
            try:
                self.models[series] = self.registry.load(*series)
                self._set_status(series, state="predicting", model_version=self.models[series].info.version)
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
            score = live_score(conn, *series)
            self._set_status(
                series,
                last_base=newest.isoformat(),
                band=model.info.band,
                scored_bars=score.n,
                rmse_vs_naive=score.rmse_vs_naive,
                band_coverage=score.band_coverage,
            )
            written.append(rows)
        return pd.concat(written, ignore_index=True) if written else pd.DataFrame()

    def step(self, conn: psycopg2.extensions.connection, client: redis.Redis) -> pd.DataFrame:
        """One round: retrain when due, else load or train missing models when due, then :meth:`poll`,
        then :meth:`publish_status`."""
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
            if not self.status:
                log.info(
                    "ml.waiting", reason="no series has final bars yet", recheck_in_s=DISCOVERY_INTERVAL_S
                )
        rows = self.poll(conn, client)
        self.publish_status(client)
        return rows

    def serve(self, stop: threading.Event | None = None) -> None:
        """Run :meth:`step` until ``stop`` is set, woken by bar messages or every ``predict_poll_s``."""
        stop = stop or threading.Event()
        conn: psycopg2.extensions.connection | None = None
        client = redis.Redis.from_url(self.settings.redis_url, **redis_kwargs(self.settings))
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            while not stop.is_set():
                try:
                    if conn is None or conn.closed:
                        conn = psycopg2.connect(postgres_dsn(self.settings))
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
