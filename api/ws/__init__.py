"""WebSocket fan-out: protocol, per-client queues, the hub and its Kafka and Redis feeds."""
