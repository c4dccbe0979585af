"""Producers: exchange streamers, replay and synthetic sources, validation, the Kafka tick producer."""
