-- Nothing reads the hourly view `ohlcv_1h` (the API, dashboard and ML read `ohlcv` at the bar job's
-- intervals): drop it.
DROP VIEW IF EXISTS ohlcv_1h;
