"""Streaming technical indicators per (symbol, interval) on the bar stream: formulas, per-key state, job."""
