"""Spark Structured Streaming jobs: event-time OHLCV/VWAP bars, indicators, anomalies."""
