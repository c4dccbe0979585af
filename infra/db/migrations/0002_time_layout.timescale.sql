-- TimescaleDB: hypertables, compression after 7 days, retention of 1 year, and a continuous aggregate
-- of 1m bars into hourly bars (same columns as the plain-PostgreSQL view `ohlcv_1h`).

CREATE EXTENSION IF NOT EXISTS timescaledb;

SELECT create_hypertable('tick_data', 'event_time', chunk_time_interval => INTERVAL '1 day');
SELECT create_hypertable('ohlcv', 'window_start', chunk_time_interval => INTERVAL '7 days');
SELECT create_hypertable('indicators', 'window_start', chunk_time_interval => INTERVAL '7 days');
SELECT create_hypertable('anomalies', 'event_time', chunk_time_interval => INTERVAL '30 days');
SELECT create_hypertable('predictions', 'window_start', chunk_time_interval => INTERVAL '7 days');

ALTER TABLE tick_data SET (timescaledb.compress, timescaledb.compress_segmentby = 'symbol',
                           timescaledb.compress_orderby = 'event_time');
ALTER TABLE ohlcv SET (timescaledb.compress, timescaledb.compress_segmentby = 'symbol, interval',
                       timescaledb.compress_orderby = 'window_start');
ALTER TABLE indicators SET (timescaledb.compress, timescaledb.compress_segmentby = 'symbol, interval',
                            timescaledb.compress_orderby = 'window_start');

SELECT add_compression_policy('tick_data', INTERVAL '7 days');
SELECT add_compression_policy('ohlcv', INTERVAL '7 days');
SELECT add_compression_policy('indicators', INTERVAL '7 days');

SELECT add_retention_policy('tick_data', INTERVAL '1 year');
SELECT add_retention_policy('ohlcv', INTERVAL '1 year');
SELECT add_retention_policy('indicators', INTERVAL '1 year');
SELECT add_retention_policy('anomalies', INTERVAL '1 year');
SELECT add_retention_policy('predictions', INTERVAL '1 year');

CREATE MATERIALIZED VIEW ohlcv_1h WITH (timescaledb.continuous) AS
SELECT symbol,
       time_bucket(INTERVAL '1 hour', window_start)          AS bucket,
       first(open, window_start)                             AS open,
       max(high)                                             AS high,
       min(low)                                              AS low,
       last(close, window_start)                             AS close,
       sum(volume)                                           AS volume,
       sum(quote_volume)                                     AS quote_volume,
       sum(quote_volume) / NULLIF(sum(volume), 0)            AS vwap,
       sum(trade_count)                                      AS trade_count
FROM ohlcv
WHERE interval = '1m'
GROUP BY symbol, time_bucket(INTERVAL '1 hour', window_start)
WITH NO DATA;

SELECT add_continuous_aggregate_policy('ohlcv_1h', start_offset => INTERVAL '3 hours',
                                       end_offset => INTERVAL '1 hour',
                                       schedule_interval => INTERVAL '30 minutes');
