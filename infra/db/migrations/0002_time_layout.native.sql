-- Plain PostgreSQL: yearly range partitions 2015-2035 plus a DEFAULT partition (so no row is ever
-- rejected for its time), BRIN indexes on the time columns, and an hourly roll-up view of 1m bars.

CREATE FUNCTION tickflow_create_yearly_partitions(parent regclass, first_year int, last_year int)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    y int;
BEGIN
    FOR y IN first_year..last_year LOOP
        EXECUTE format(
            'CREATE TABLE IF NOT EXISTS %I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
            parent::text || '_y' || y, parent,
            make_timestamptz(y, 1, 1, 0, 0, 0, 'UTC'), make_timestamptz(y + 1, 1, 1, 0, 0, 0, 'UTC'));
    END LOOP;
    EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF %s DEFAULT', parent::text || '_default', parent);
END $$;

SELECT tickflow_create_yearly_partitions(t, 2015, 2035)
FROM unnest(ARRAY['tick_data', 'ohlcv', 'indicators', 'anomalies', 'predictions']::regclass[]) AS t;

CREATE INDEX tick_data_event_time_brin ON tick_data USING brin (event_time);
CREATE INDEX ohlcv_window_start_brin ON ohlcv USING brin (window_start);
CREATE INDEX indicators_window_start_brin ON indicators USING brin (window_start);
CREATE INDEX anomalies_event_time_brin ON anomalies USING brin (event_time);
CREATE INDEX predictions_window_start_brin ON predictions USING brin (window_start);

CREATE VIEW ohlcv_1h AS
SELECT symbol,
       date_trunc('hour', window_start)                      AS bucket,
       (array_agg(open ORDER BY window_start))[1]            AS open,
       max(high)                                             AS high,
       min(low)                                              AS low,
       (array_agg(close ORDER BY window_start DESC))[1]      AS close,
       sum(volume)                                           AS volume,
       sum(quote_volume)                                     AS quote_volume,
       sum(quote_volume) / NULLIF(sum(volume), 0)            AS vwap,
       sum(trade_count)                                      AS trade_count
FROM ohlcv
WHERE interval = '1m'
GROUP BY symbol, date_trunc('hour', window_start);
