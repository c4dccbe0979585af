"""Anomaly detection on bars and their indicators: the anomaly record, detector rules and sinks."""
