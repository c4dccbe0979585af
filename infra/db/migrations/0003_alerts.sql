-- Alerts: a record of every notification decision of the alerting service (`streaming_jobs.alerting`).
-- One row per (anomaly, channel): `sent` (delivered after `attempts` tries), `failed` (every retry failed;
-- `error` says why) or `suppressed` (the per-(anomaly_type, symbol) cooldown held it back). The primary key
-- makes a redelivered anomaly a no-op, so an alert is never sent twice for one anomaly and channel.

CREATE TABLE alerts (
    anomaly_type  text        NOT NULL,
    symbol        text        NOT NULL,
    interval      text        NOT NULL,
    event_time    timestamptz NOT NULL,
    channel       text        NOT NULL CHECK (channel IN ('webhook', 'email')),
    severity      text        NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    status        text        NOT NULL CHECK (status IN ('sent', 'failed', 'suppressed')),
    attempts      integer     NOT NULL CHECK (attempts >= 0),
    error         text,
    message       text        NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (anomaly_type, symbol, interval, event_time, channel)
);

CREATE INDEX alerts_cooldown_idx ON alerts (anomaly_type, symbol, event_time DESC) WHERE status = 'sent';
