"""Tickflow settings, read from ``TICKFLOW_*`` environment variables and an optional ``.env`` file.

Every URL, port, topic name, partition count, symbol universe, interval list, watermark and directory the
pipeline uses lives here. Defaults point at the local stack that ``tickflow stack up`` starts on loopback;
pointing a URL at another host (a real Kafka cluster, TimescaleDB, InfluxDB 2) is all it takes to run the
same code against the production stack.

Lists are given as JSON (``'["BTC-USD","ETH-USD"]'``) or comma-separated (``BTC-USD,ETH-USD``).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from tickflow.bar_spec import (
    BAR_TIMESTAMPS,
    DEFAULT_EMPTY_INTERVAL,
    WINDOW_CLOSURES,
    BarTimestamp,
    EmptyIntervalPolicy,
    WindowClosure,
    check_supported,
)
from tickflow.intervals import Interval
from tickflow.profile import ProfileSettingsSource

ServiceName = Literal["kafka", "postgres", "redis", "influx"]
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def _split_csv(value: object) -> object:
    """Accept ``a,b,c`` as well as a JSON list for list-valued settings."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


CsvList = Annotated[list[str], NoDecode]
PortList = Annotated[list[int], NoDecode]


class Settings(BaseSettings):
    """All Tickflow settings; the env var of field ``x`` is ``TICKFLOW_X`` (case-insensitive)."""

    model_config = SettingsConfigDict(
        env_prefix="TICKFLOW_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Explicit values and env vars win; the active profile (``tickflow.profile``) gives defaults."""
        profile = ProfileSettingsSource(settings_cls, init_settings, env_settings, dotenv_settings)
        return init_settings, env_settings, dotenv_settings, file_secret_settings, profile

    # --- local stack -------------------------------------------------------------------------------
    state_dir: Path = Field(Path(".tickflow"), description="Logs, PID files and data of the local stack.")
    managed_services: CsvList = Field(
        ["kafka", "postgres", "redis", "influx"],
        description="Services `tickflow stack up` may start locally; others are only checked. A service "
        "whose URL is not on loopback is never started.",
    )
    service_start_timeout_s: float = Field(30.0, description="How long `stack up` waits for each service.")
    run_stop_grace_s: float = Field(
        75.0,
        gt=0,
        description="How long `tickflow run` lets each process stop after SIGTERM before SIGKILL (s); the "
        "Spark jobs finish their running micro-batch first (up to 60 s; a batch waiting for an unreachable "
        "store gives up at once and is re-run on the next start).",
    )

    # --- Kafka ---------------------------------------------------------------------------------------
    kafka_bootstrap_servers: str = Field("127.0.0.1:19092", description="Kafka bootstrap servers.")
    kafka_controller_port: int = Field(
        19093, description="KRaft controller port of the local Apache Kafka broker (loopback)."
    )
    kafka_heap: str = Field("512m", description="JVM heap (-Xms/-Xmx) of the local Apache Kafka broker.")
    kafka_partitions: int = Field(6, ge=1, description="Partitions of every Tickflow topic.")
    kafka_replication_factor: int = Field(1, ge=1, description="Replication factor of created topics.")
    kafka_min_insync_replicas: int = Field(
        1, ge=1, description="min.insync.replicas of created topics (writes with acks=all need this many)."
    )
    kafka_retention_ms: int = Field(7 * 24 * 3600 * 1000, description="Topic retention (ms); 7 days.")
    kafka_compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = Field(
        "lz4", description="Producer and topic compression codec."
    )
    kafka_session_timeout_ms: int = Field(
        6000, description="Consumer group session timeout (ms); ~6000 keeps group joins fast."
    )
    topic_ticks: str = Field("tick_data", description="Topic of validated ticks (key = symbol).")
    topic_dlq: str = Field("tick_data.dlq", description="Dead-letter topic for rejected input.")
    topic_bars_prefix: str = Field(
        "bars_", description="Bar topics are this prefix + the interval: `bars_1m`, `bars_5m`, `bars_15m`."
    )
    topic_anomalies: str = Field("anomalies", description="Topic of detected anomalies.")

    # --- cluster profile (`tickflow stack up --cluster`) ----------------------------------------------------
    cluster_kafka_ports: PortList = Field(
        [29092, 29094, 29096],
        description="Client ports of the three local Kafka brokers of the cluster profile (loopback).",
    )
    cluster_controller_ports: PortList = Field(
        [29093, 29095, 29097],
        description="KRaft controller ports of the three brokers of the cluster profile (static quorum).",
    )
    spark_master_port: int = Field(17077, description="Port of the cluster profile's Spark master.")
    spark_master_ui_port: int = Field(18080, description="Web UI port of the cluster profile's Spark master.")
    spark_worker_ui_ports: PortList = Field(
        [18081, 18082],
        description="Web UI ports of the cluster profile's Spark workers, one per worker (1 core each).",
    )
    spark_worker_memory: str = Field("1g", description="Memory a cluster profile's Spark worker offers.")
    spark_daemon_memory: str = Field("256m", description="JVM heap of the Spark master and worker daemons.")
    spark_executor_memory: str = Field(
        "512m", description="spark.executor.memory of jobs on a `spark://` master."
    )
    spark_executor_cores: int = Field(1, ge=1, description="spark.executor.cores on a `spark://` master.")

    # --- PostgreSQL / TimescaleDB -------------------------------------------------------------------------
    postgres_dsn: str = Field(
        "postgresql://postgres@127.0.0.1:15432/tickflow", description="libpq URL of the bar store."
    )

    store_connect_timeout_s: float = Field(
        5.0,
        gt=0,
        description="Connect timeout of every PostgreSQL, Redis, Kafka admin and HTTP client (s).",
    )
    store_read_timeout_s: float = Field(
        30.0,
        gt=0,
        description="Read timeout of every PostgreSQL statement (statement_timeout), Redis command, Kafka "
        "admin request and HTTP request (s); a store that drops packets fails a call instead of hanging it.",
    )

    # --- Redis ---------------------------------------------------------------------------------------
    redis_url: str = Field("redis://127.0.0.1:16379/0", description="Redis URL (latest values, pub/sub).")
    redis_bar_ttl_s: int = Field(300, description="TTL of `bars:{symbol}:{interval}` keys (s).")
    redis_price_ttl_s: int = Field(60, description="TTL of `latest_price:{symbol}` keys (s).")

    # --- InfluxDB (local: VictoriaMetrics' InfluxDB write endpoint) --------------------------------------
    influx_url: str = Field("http://127.0.0.1:18428", description="InfluxDB 2 URL (or VictoriaMetrics).")
    influx_org: str = Field("tickflow", description="InfluxDB organisation.")
    influx_bucket: str = Field("market_data", description="InfluxDB bucket.")
    influx_token: SecretStr = Field(
        SecretStr(""), description="InfluxDB API token (empty for VictoriaMetrics); secret, shown masked."
    )
    influx_retention: str = Field("100y", description="Retention of the local VictoriaMetrics store.")

    # --- market universe -----------------------------------------------------------------------------
    symbols: CsvList = Field(
        ["BTC-USD", "ETH-USD", "SOL-USD", "XRP-USD", "ADA-USD", "DOGE-USD"],
        description="Symbol universe (normalised). Ticks of other symbols go to the DLQ unless they "
        "match `symbol_pattern`.",
    )
    symbol_pattern: str = Field(
        r"^[A-Z0-9]{1,12}(-[A-Z0-9]{2,12}){0,2}$",
        description="Regex a normalised symbol must match when it is outside `symbols` and "
        "`accept_unlisted_symbols` is on (`BTC-USD`, or with a contract `BTC-USD-SWAP`, `BTC-USD-220527`).",
    )
    accept_unlisted_symbols: bool = Field(
        True, description="Accept symbols outside `symbols` when they match `symbol_pattern`."
    )
    intervals: CsvList = Field(["1m", "5m", "15m"], description="Bar intervals computed and served.")

    # --- bar semantics (tickflow/bar_spec.py; as nautilus_trader's bar specification) ------------------
    bar_window_closure: WindowClosure = Field(
        "left",
        description="Closed end of a bar's interval: `left` = `[window_start, window_end)`, a tick at the "
        "boundary starts the next bar (Spark tumbling windows; nautilus_trader's default is the opposite, "
        "`(start, end]`). Only `left` is supported.",
    )
    bar_timestamp: BarTimestamp = Field(
        "window_start",
        description="Instant that names a bar: `window_start` (the `ohlcv` key, REST cursor, JSON; the bar "
        "also carries `window_end`). Only `window_start` is supported.",
    )
    bar_empty_interval: EmptyIntervalPolicy = Field(
        DEFAULT_EMPTY_INTERVAL,
        description="What indicators, anomaly features and ML do with an interval without trades (the bar "
        "job stores no bar for it): `fill_forward` computes over a gap-free grid, an empty interval a flat "
        "bar at the previous close with zero volume; `skip` computes over the bars that exist.",
    )

    # --- Spark streaming --------------------------------------------------------------------------------
    spark_master: str = Field("local[2]", description="Spark master URL.")
    spark_shuffle_partitions: int = Field(
        2, ge=1, description="spark.sql.shuffle.partitions; stored in the checkpoint at first run."
    )
    spark_min_partitions: int = Field(
        0,
        ge=0,
        description="minPartitions of the Kafka source: Spark tasks per micro-batch (0: one per topic "
        "partition).",
    )
    watermark: str = Field("2 minutes", description="Event-time watermark delay of the bar job.")
    trigger_interval: str = Field("1 second", description="Micro-batch trigger interval.")
    checkpoint_dir: Path = Field(Path(".tickflow/checkpoints"), description="Spark checkpoint root.")
    max_ticks_per_batch: int = Field(500_000, description="Upper bound of ticks read per micro-batch.")
    spark_starting_offsets: Literal["earliest", "latest"] = Field(
        "earliest", description="Where a streaming query without a checkpoint starts reading its topic."
    )
    spark_driver_memory: str = Field("1g", description="spark.driver.memory in local mode.")
    spark_ui_enabled: bool = Field(False, description="Serve the Spark web UI (port 4040) in local mode.")
    spark_java_options: str = Field(
        "",
        description="Extra JVM options of the jobs' Spark driver, and of its executors on a `spark://` "
        "cluster (e.g. `-XX:TieredStopAtLevel=1`: less start-up CPU for short runs, less peak speed).",
    )
    stream_store_ticks: bool = Field(
        True, description="`tickflow stream bars` also stores every valid tick in the `tick_data` table."
    )
    ticks_trigger_interval: str = Field(
        "5 seconds",
        description="Micro-batch trigger of the raw-tick query of `tickflow stream bars` (tick_data and the "
        "dead-letter topic); longer than `trigger_interval` to leave the cores to the bars.",
    )
    sink_retry_attempts: int = Field(
        5,
        ge=1,
        description="Tries of a streaming sink write that fails with its store reachable before the "
        "micro-batch fails (and is re-run); an unreachable store is waited for (`sink_outage_max_s`).",
    )
    sink_retry_backoff_s: float = Field(
        0.5, gt=0, description="First back-off between sink tries (s); doubles each try, at most 10 s."
    )
    sink_outage_max_s: float = Field(
        3600.0,
        gt=0,
        description="How long a streaming sink write waits for an unreachable store (PostgreSQL, Redis, "
        "InfluxDB: connection refused or lost) before the micro-batch fails and the query stops (s); "
        "meanwhile it retries with back-off and the job keeps running; each outage is logged once.",
    )

    # --- serving ------------------------------------------------------------------------------------
    api_host: str = Field("127.0.0.1", description="Bind address of the REST/WebSocket API.")
    api_port: int = Field(8000, description="Port of the REST/WebSocket API.")
    api_url: str = Field("http://127.0.0.1:8000", description="Where the dashboard finds the API.")
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        [], description="Accepted API keys; auth is on when `api_auth` is true; secret, shown masked."
    )
    api_auth: bool = Field(False, description="Require an API key on REST and WebSocket.")
    cors_origins: CsvList = Field(["*"], description="Allowed CORS origins.")
    dashboard_host: str = Field("127.0.0.1", description="Bind address of the dashboard.")
    dashboard_port: int = Field(8050, description="Port of the Dash dashboard.")

    # --- dashboard (dashboard/) -------------------------------------------------------------------------
    dashboard_refresh_s: float = Field(2.0, gt=0, description="Live refresh interval of the dashboard (s).")
    dashboard_api_key: SecretStr = Field(
        SecretStr(""),
        description="API key the dashboard sends when `api_auth` is on; empty: the first of `api_keys`; "
        "secret, shown masked.",
    )
    dashboard_api_timeout_s: float = Field(
        2.0, gt=0, description="Timeout of one dashboard HTTP request (s)."
    )
    dashboard_cache_ttl_s: float = Field(
        1.0, ge=0, description="How long an API response is reused by every dashboard session (s)."
    )
    dashboard_metrics_urls: CsvList = Field(
        [],
        description="Prometheus endpoints the health panel reads; empty: the API's `/metrics` and the "
        "producer, bars and indicators metrics ports on 127.0.0.1.",
    )

    @field_validator("dashboard_metrics_urls", mode="before")
    @classmethod
    def _csv_metrics_urls(cls, value: object) -> object:
        return _split_csv(value)

    # --- API internals (api/) -----------------------------------------------------------------------
    api_db_pool_size: int = Field(8, ge=1, description="Most PostgreSQL connections one API process opens.")
    api_db_statement_timeout_ms: int = Field(5000, ge=1, description="Statement timeout of API queries (ms).")
    api_kafka_fetch_wait_ms: int = Field(
        10, ge=0, description="fetch.wait.max.ms of the API's tick consumer (the WebSocket fast path)."
    )
    api_ws_queue_size: int = Field(
        1000, ge=1, description="Messages buffered per WebSocket client; more are dropped with a warning."
    )
    api_ws_slow_grace_s: float = Field(
        5.0,
        gt=0,
        description="A client still over half its queue this long after its SLOW_CONSUMER "
        "warning is closed with 1008 (s).",
    )
    api_ws_heartbeat_s: float = Field(30.0, gt=0, description="Server heartbeat message interval (s).")
    api_ws_max_subscriptions: int = Field(
        100, ge=1, description="Most (symbol, channel) subscriptions one WebSocket client may hold."
    )
    api_ws_max_message_bytes: int = Field(65536, ge=256, description="Largest accepted client message.")
    api_socket_send_buffer: int = Field(
        262144,
        ge=0,
        description="SO_SNDBUF of client connections (bytes, doubled by Linux; 0: kernel "
        "autotuning up to 4 MB). Bounds the data in flight to a slow client before its queue fills.",
    )
    api_ws_compression: bool = Field(
        False, description="Offer permessage-deflate (saves bandwidth, costs CPU per client and message)."
    )
    api_ws_max_connections: int = Field(
        2000, ge=1, description="Most WebSocket connections one API process holds; more are closed with 1008."
    )
    api_ws_max_connections_per_client: int = Field(
        50,
        ge=1,
        description="Most WebSocket connections from one client address per API process; more are closed "
        "with 1008.",
    )
    api_ws_max_messages_per_s: float = Field(
        50.0,
        gt=0,
        description="Client messages one WebSocket connection may send per second (bursts up to twice "
        "that); a flooder is closed with 1008.",
    )
    api_ws_refuse_delay_s: float = Field(
        1.0,
        ge=0,
        description="A WebSocket connection past a connection limit, or over its message rate (then no "
        "longer read), is closed (1008) after this delay (s): a client reconnecting at once is slowed down.",
    )
    api_unknown_symbol_ttl_s: float = Field(
        60.0,
        ge=0,
        description="How long a symbol found unknown is remembered (no database look-up for it) (s).",
    )

    # --- producers ------------------------------------------------------------------------------------
    max_clock_skew_s: float = Field(
        30.0, description="Live ticks whose event time is further than this from receipt time are rejected."
    )
    dedup_window: int = Field(100_000, description="Trade ids remembered per exchange for de-duplication.")
    polygon_api_key: SecretStr = Field(
        SecretStr(""), description="Polygon.io API key for the stocks streamer; secret, shown masked."
    )
    producer_linger_ms: int = Field(20, ge=0, description="librdkafka linger.ms of the tick producer.")
    producer_batch_bytes: int = Field(
        1_048_576, ge=1, description="librdkafka batch.size (bytes) of the tick producer."
    )
    ws_idle_timeout_s: float = Field(
        30.0, gt=0, description="Watchdog: reconnect a websocket that received nothing for this long."
    )
    ws_reconnect_max_delay_s: float = Field(
        30.0, gt=0, description="Cap of the exponential back-off (with full jitter) between reconnects."
    )
    ws_subscribe_interval_s: float = Field(
        0.25, ge=0, description="Pause between subscribe messages (exchanges rate-limit them)."
    )
    max_backfill_trades: int = Field(
        10_000, ge=0, description="Largest trade-id gap filled over REST; larger gaps are counted only."
    )
    quality_window_s: float = Field(
        300.0, gt=0, description="Rolling window of the source quality figures per (exchange, symbol) (s)."
    )
    quality_publish_interval_s: float = Field(
        5.0, gt=0, description="How often live producers publish source quality to Redis and metrics (s)."
    )
    quality_ttl_s: int = Field(60, ge=1, description="TTL of `source_quality:{exchange}:{symbol}` keys (s).")
    quality_stale_after_s: float = Field(
        60.0, gt=0, description="Quality score: silence (s) that costs the whole staleness weight."
    )
    failover_down_after_s: float = Field(
        10.0,
        gt=0,
        description="Failover: a provider disconnected this long, or silent this long on a symbol while "
        "another provider trades it, is down (s).",
    )
    failover_hysteresis_s: float = Field(
        60.0,
        ge=0,
        description="Failover: a better-ranked provider healthy this long takes a symbol back (s).",
    )
    failover_min_score: float = Field(
        0.0, ge=0, le=1, description="Failover: a provider whose quality score is below this is unhealthy."
    )
    quality_latency_budget_ms: float = Field(
        2000.0, gt=0, description="Quality score: mean ingest latency (ms) costing the whole latency weight."
    )

    # --- metrics (Prometheus) -------------------------------------------------------------------------
    metrics_bind_host: str = Field(
        "127.0.0.1",
        description="Bind address of the Prometheus metrics servers of the producers and stream jobs "
        "(`0.0.0.0`: every interface).",
    )
    producer_metrics_port: int = Field(9101, description="Prometheus metrics port of `tickflow produce`.")
    bars_metrics_port: int = Field(9102, description="Prometheus metrics port of `tickflow stream bars`.")
    indicators_metrics_port: int = Field(
        9103, description="Prometheus metrics port of `tickflow stream indicators`."
    )

    # --- indicators, anomalies, alerting (streaming_jobs.indicators / .anomalies / .alerting) -------------
    redis_indicators_ttl_s: int = Field(300, description="TTL of `indicators:{symbol}:{interval}` keys (s).")
    anomaly_price_spike_pct: float = Field(
        5.0, gt=0, description="Price spike: a bar's high or low this many percent from the previous close."
    )
    anomaly_volume_spike_ratio: float = Field(
        3.0, gt=0, description="Volume spike: bar volume above this multiple of the rolling mean volume."
    )
    anomaly_volume_window: int = Field(20, ge=2, description="Bars in the rolling mean of volume spikes.")
    anomaly_rsi_high: float = Field(70.0, description="RSI 14 above this is an overbought anomaly.")
    anomaly_rsi_low: float = Field(30.0, description="RSI 14 below this is an oversold anomaly.")
    anomaly_ingest_latency_ms: float = Field(
        100.0,
        gt=0,
        description="Ingest latency anomaly: p99 of exchange event time to receipt above this (ms).",
    )
    anomaly_broker_latency_ms: float = Field(
        250.0,
        gt=0,
        description="Broker latency anomaly: p99 of tick receipt to Kafka append time above this (ms); the "
        "producer's `producer_linger_ms` batching is part of it.",
    )
    anomaly_fast_path_latency_ms: float = Field(
        100.0,
        gt=0,
        description="Fast-path latency anomaly: p99 of Kafka append time to the WebSocket send above this "
        "(ms).",
    )
    anomaly_latency_window_s: float = Field(
        10.0,
        gt=0,
        description="Window of the ingest, broker and fast-path latency rules: one p99 per stage and symbol "
        "per window, written to InfluxDB `latency` (s).",
    )
    anomaly_latency_breach_windows: int = Field(
        3,
        ge=1,
        description="Windows in a row with the p99 past its threshold that raise a latency anomaly (one per "
        "episode); as many healthy windows in a row clear it.",
    )
    anomaly_latency_warmup_s: float = Field(
        120.0,
        ge=0,
        description="Warm-up of the ingest, broker and fast-path latency rules: a (stage, symbol) is judged "
        "after its first healthy window or after this long (s), whichever comes first.",
    )
    anomaly_latency_min_samples: int = Field(
        5, ge=1, description="Latencies a window needs to be judged by the latency rules (fewer: ignored)."
    )
    anomaly_bar_freshness_margin_s: float = Field(
        6.0,
        gt=0,
        description="Bar freshness anomaly: the newest tick ahead of the newest visible bar revision by "
        "more than `trigger_interval` plus this (s); watched by the indicator job.",
    )
    anomaly_watchdog_interval_s: float = Field(
        1.0, gt=0, description="How often the indicator job's bar-freshness watchdog checks (s)."
    )
    anomaly_zscore_threshold: float = Field(
        4.0, gt=0, description="Return z-score anomaly: |z| of a bar's return above this."
    )
    anomaly_zscore_window: int = Field(50, ge=3, description="Bars of returns in the rolling z-score.")
    anomaly_critical_ratio: float = Field(
        2.0, gt=1, description="An anomaly this many times past its threshold gets the higher severity."
    )
    alert_cooldown_s: float = Field(
        300.0, ge=0, description="At most one alert per (anomaly type, symbol) per this much event time (s)."
    )
    alert_webhook_url: SecretStr = Field(
        SecretStr(""), description="Slack-compatible incoming webhook URL (empty: off); secret, shown masked."
    )
    alert_webhook_min_severity: Literal["info", "warning", "critical"] = Field(
        "warning", description="Lowest anomaly severity posted to the webhook."
    )
    alert_email_to: CsvList = Field([], description="Alert e-mail recipients (empty: e-mail off).")
    alert_email_min_severity: Literal["info", "warning", "critical"] = Field(
        "critical", description="Lowest anomaly severity sent by e-mail."
    )
    alert_email_from: str = Field("tickflow@localhost", description="Sender address of alert e-mails.")
    smtp_host: str = Field("127.0.0.1", description="SMTP server host of alert e-mails.")
    smtp_port: int = Field(25, description="SMTP server port.")
    smtp_starttls: bool = Field(False, description="Upgrade the SMTP connection with STARTTLS.")
    smtp_username: str = Field("", description="SMTP login user (empty: no login).")
    smtp_password: SecretStr = Field(SecretStr(""), description="SMTP login password; secret, shown masked.")
    alert_timeout_s: float = Field(
        10.0, gt=0, description="Connect and read timeout of one webhook or SMTP attempt (s)."
    )
    alert_retry_backoff_s: float = Field(
        0.5, ge=0, description="Alert outbox: first retry delay of an undelivered alert (s); doubles per try."
    )
    alert_retry_max_backoff_s: float = Field(
        30.0, gt=0, description="Alert outbox: longest delay between two attempts of one alert (s)."
    )
    alert_max_age_s: float = Field(
        3600.0,
        gt=0,
        description="Alert outbox: an alert still undelivered this long after it was raised is given up "
        "(recorded `failed`) (s).",
    )
    alert_consumer_group: str = Field("tickflow-alerts", description="Consumer group of the alert service.")

    @field_validator("alert_email_to", mode="before")
    @classmethod
    def _csv_recipients(cls, value: object) -> object:
        return _split_csv(value)

    # --- ML (price prediction) ------------------------------------------------------------------------
    model_dir: Path = Field(Path(".tickflow/models"), description="Model registry root (versioned dirs).")
    ml_report_dir: Path = Field(Path(".tickflow/ml-reports"), description="Where `ml evaluate` writes.")
    train_lookback_days: float = Field(30.0, gt=0, description="Days of final bars a (re)train uses.")
    retrain_interval_h: float = Field(24.0, gt=0, description="Hours between retrains in `ml serve`.")
    predict_poll_s: float = Field(1.0, gt=0, description="Max seconds `ml serve` waits between polls.")
    prediction_band: float = Field(0.9, gt=0, lt=1, description="Central coverage of the predicted band.")
    redis_prediction_ttl_s: int = Field(1800, description="TTL of `prediction:{symbol}:{interval}` (s).")

    @field_validator(
        "cluster_kafka_ports", "cluster_controller_ports", "spark_worker_ui_ports", mode="before"
    )
    @classmethod
    def _csv_ports(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("managed_services", "symbols", "intervals", "api_keys", "cors_origins", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("intervals")
    @classmethod
    def _known_intervals(cls, value: list[str]) -> list[str]:
        for name in value:
            Interval.parse(name)
        return value

    @field_validator("bar_window_closure", mode="before")
    @classmethod
    def _supported_closure(cls, value: object) -> object:
        reason = "the bar job computes Spark tumbling windows [start, end)"
        return check_supported("bar_window_closure", str(value), WINDOW_CLOSURES, reason)

    @field_validator("bar_timestamp", mode="before")
    @classmethod
    def _supported_timestamp(cls, value: object) -> object:
        reason = "bars are keyed by (symbol, interval, window_start) in ohlcv, Redis and the REST cursors"
        return check_supported("bar_timestamp", str(value), BAR_TIMESTAMPS, reason)

    # --- derived -----------------------------------------------------------------------------------
    @property
    def interval_list(self) -> list[Interval]:
        """The configured intervals, parsed."""
        return [Interval.parse(name) for name in self.intervals]

    def bar_topic(self, interval: Interval) -> str:
        """Kafka topic of the bars of ``interval``, e.g. ``bars_1m``."""
        return f"{self.topic_bars_prefix}{interval.topic_suffix}"

    def all_topics(self) -> list[str]:
        """Every topic Tickflow creates."""
        bars = [self.bar_topic(i) for i in self.interval_list]
        return [self.topic_ticks, self.topic_dlq, *bars, self.topic_anomalies]

    def to_env(self) -> dict[str, str]:
        """These settings as ``TICKFLOW_*`` environment variables (to hand them to a child process)."""
        env = {}
        secrets = {name for name, f in type(self).model_fields.items() if "SecretStr" in str(f.annotation)}
        dumped = self.model_dump(mode="json", exclude=secrets)  # a secret would be dumped masked
        for name in type(self).model_fields:
            value = getattr(self, name)  # a model_copy may hold a secret as a plain str
            if name in secrets:
                value = [reveal(item) for item in value] if isinstance(value, list) else reveal(value)
            else:
                value = dumped[name]
            text = json.dumps(value) if isinstance(value, list | bool) else str(value)
            env[f"TICKFLOW_{name.upper()}"] = text
        return env

    def is_managed(self, service: ServiceName) -> bool:
        """True when `stack up` should start ``service`` here: listed and pointing at loopback."""
        return service in self.managed_services and service_host(self, service) in LOOPBACK_HOSTS


def reveal(value: SecretStr | str) -> str:
    """The plain text of a secret setting (a ``model_copy`` may hold it as a plain ``str``)."""
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def revealed(values: list[SecretStr] | list[str]) -> list[str]:
    """The plain texts of a list of secrets, e.g. ``api_keys``."""
    return [reveal(value) for value in values]


def service_host(settings: Settings, service: ServiceName) -> str:
    """Host name the settings point ``service`` at."""
    return service_address(settings, service)[0]


def service_address(settings: Settings, service: ServiceName) -> tuple[str, int]:
    """(host, port) the settings point ``service`` at; the first bootstrap server for Kafka."""
    if service == "kafka":
        first = settings.kafka_bootstrap_servers.split(",")[0].strip()
        parts = urlsplit(f"//{first}")
        return parts.hostname or "127.0.0.1", parts.port or 9092
    url = {"postgres": settings.postgres_dsn, "redis": settings.redis_url, "influx": settings.influx_url}[
        service
    ]
    parts = urlsplit(url)
    default_port = {"postgres": 5432, "redis": 6379, "influx": 8086}[service]
    return parts.hostname or "127.0.0.1", parts.port or default_port


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return Settings()
