-- Core tables. Timestamps are timestamptz (UTC, microsecond resolution). Prices are NUMERIC so a bar's
-- open/high/low/close equal the traded prices exactly; the `/*@time_partitioned(col)*/` marker becomes
-- `PARTITION BY RANGE (col)` on plain PostgreSQL and is left as a comment where TimescaleDB turns the
-- table into a hypertable (0002).

CREATE TABLE tick_data (
    symbol        text        NOT NULL,
    exchange      text        NOT NULL,
    trade_id      text        NOT NULL,
    event_time    timestamptz NOT NULL,
    receipt_time  timestamptz NOT NULL,
    price         numeric     NOT NULL CHECK (price > 0),
    size          numeric     NOT NULL CHECK (size > 0),
    side          text        NOT NULL CHECK (side IN ('buy', 'sell', 'unknown')),
    source        text        NOT NULL,
    PRIMARY KEY (symbol, event_time, exchange, trade_id)
) /*@time_partitioned(event_time)*/;

CREATE TABLE ohlcv (
    symbol           text        NOT NULL,
    interval         text        NOT NULL,
    window_start     timestamptz NOT NULL,
    window_end       timestamptz NOT NULL,
    open             numeric     NOT NULL,
    high             numeric     NOT NULL,
    low              numeric     NOT NULL,
    close            numeric     NOT NULL,
    volume           numeric     NOT NULL,
    quote_volume     numeric     NOT NULL,
    vwap             numeric     NOT NULL,
    trade_count      bigint      NOT NULL,
    first_trade_time timestamptz NOT NULL,
    last_trade_time  timestamptz NOT NULL,
    is_final         boolean     NOT NULL DEFAULT false,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, interval, window_start),
    CHECK (window_start < window_end),
    CHECK (low <= open AND open <= high AND low <= close AND close <= high)
) /*@time_partitioned(window_start)*/;

CREATE TABLE indicators (
    symbol        text        NOT NULL,
    interval      text        NOT NULL,
    window_start  timestamptz NOT NULL,
    close         numeric,
    sma_20        double precision,
    sma_50        double precision,
    sma_200       double precision,
    ema_12        double precision,
    ema_26        double precision,
    rsi_14        double precision,
    macd          double precision,
    macd_signal   double precision,
    macd_hist     double precision,
    bb_middle     double precision,
    bb_upper      double precision,
    bb_lower      double precision,
    bb_percent_b  double precision,
    bb_bandwidth  double precision,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, interval, window_start)
) /*@time_partitioned(window_start)*/;

CREATE TABLE anomalies (
    anomaly_type  text             NOT NULL,
    symbol        text             NOT NULL,
    interval      text             NOT NULL DEFAULT 'tick',
    event_time    timestamptz      NOT NULL,
    severity      text             NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    value         double precision NOT NULL,
    threshold     double precision NOT NULL,
    details       jsonb            NOT NULL DEFAULT '{}'::jsonb,
    detected_at   timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (anomaly_type, symbol, interval, event_time)
) /*@time_partitioned(event_time)*/;

CREATE TABLE predictions (
    symbol           text             NOT NULL,
    interval         text             NOT NULL,
    window_start     timestamptz      NOT NULL,  -- start of the bar whose close is predicted
    model_version    text             NOT NULL,
    predicted_close  double precision NOT NULL,
    predicted_return double precision NOT NULL,
    lower            double precision NOT NULL,
    upper            double precision NOT NULL,
    base_close       double precision NOT NULL,  -- close of the bar the prediction was made from
    created_at       timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, interval, window_start, model_version)
) /*@time_partitioned(window_start)*/;
