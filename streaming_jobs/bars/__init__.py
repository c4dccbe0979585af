"""The OHLCV/VWAP bar job: ticks from Kafka -> event-time bars -> PostgreSQL, Redis, InfluxDB, Kafka."""
