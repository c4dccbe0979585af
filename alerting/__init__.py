"""Alerting on anomalies: severity routing, cooldown, Slack-compatible webhook and SMTP e-mail channels."""
