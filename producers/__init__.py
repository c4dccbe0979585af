"""Producers: exchange streamers, replay and synthetic sources, validation, the Kafka tick producer.

Every source ends in ``pipeline.TickPipeline``: ``validation.TickValidator`` (the one definition of a valid
tick, with de-duplication) accepts trades onto ``Settings.topic_ticks`` as ``tickflow.schemas.Tick`` wire
records (key = symbol) and writes everything else to ``Settings.topic_dlq``
(``tickflow.dead_letter.DeadLetter``, reason codes in ``tickflow.validity.DlqReason``), through
``kafka_producer.TickProducer``.

Entry points:

- ``replay.replay_file(settings, path, fmt="auto", speed=None, ...) -> IngestStats`` — CSV and captures;
- ``synthetic.run_synthetic(settings, SyntheticConfig(...), paced=True, ...) -> IngestStats``;
- ``live.LiveStreamer(settings, exchange, symbols, ...).run(stop) -> LiveReport`` — websocket feeds with
  reconnects, gap detection and REST backfill (``exchanges/``: one module per exchange);
- ``tickflow produce live|replay|synthetic|auto`` (``cli.py``).
"""
