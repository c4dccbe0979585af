-- Alerts as an outbox (`streaming_jobs.alerting.outbox`): an alert is first recorded `pending`, then
-- delivered by the alert service. An attempt claims the row (`sending`, `claimed_at`) before it sends, so
-- an alert is delivered at most once per channel, also with several alert services or after a crash. A
-- failed attempt puts the row back to `pending` with `next_attempt_at` (exponential back-off); once the
-- alert is older than `TICKFLOW_ALERT_MAX_AGE_S` it is given up (`failed`). `recorded_at` is when the
-- alert was raised (enqueued); `error` is the last attempt's error, free of secrets.

ALTER TABLE alerts DROP CONSTRAINT alerts_status_check;
ALTER TABLE alerts ADD CONSTRAINT alerts_status_check
    CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'suppressed'));
ALTER TABLE alerts ADD COLUMN next_attempt_at timestamptz;
ALTER TABLE alerts ADD COLUMN claimed_at timestamptz;

CREATE INDEX alerts_outbox_idx ON alerts (next_attempt_at) WHERE status = 'pending';

-- The cooldown counts alerts on their way (pending, sending) as well as sent ones.
DROP INDEX alerts_cooldown_idx;
CREATE INDEX alerts_cooldown_idx ON alerts (anomaly_type, symbol, event_time DESC)
    WHERE status IN ('pending', 'sending', 'sent');
