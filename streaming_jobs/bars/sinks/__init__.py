"""The bar job's sinks: PostgreSQL, Redis, InfluxDB and Kafka writers, and their retry policy."""
