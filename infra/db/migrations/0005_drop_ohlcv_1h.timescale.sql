-- Nothing reads the hourly continuous aggregate `ohlcv_1h` (the API, dashboard and ML read `ohlcv` at the
-- bar job's intervals): drop it and, with it, its refresh policy.
DROP MATERIALIZED VIEW IF EXISTS ohlcv_1h;
