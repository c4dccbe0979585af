"""Redis key and pub/sub channel names shared by the writers (streaming jobs) and readers (API, dashboard)."""

from __future__ import annotations


def bar_key(symbol: str, interval: str) -> str:
    """Latest bar of ``symbol``/``interval`` (JSON ``OHLCVBar``), e.g. ``aggregated:BTC-USD:1m``."""
    return f"aggregated:{symbol}:{interval}"


def latest_price_key(symbol: str) -> str:
    """Latest traded price of ``symbol`` (JSON ``{"price", "time"}``), e.g. ``latest_price:BTC-USD``."""
    return f"latest_price:{symbol}"


def indicators_key(symbol: str, interval: str) -> str:
    """Latest indicator row of ``symbol``/``interval``."""
    return f"indicators:{symbol}:{interval}"


def prediction_key(symbol: str, interval: str) -> str:
    """Latest price prediction of ``symbol``/``interval``."""
    return f"prediction:{symbol}:{interval}"


def bars_channel(symbol: str) -> str:
    """Pub/sub channel of bar updates (every revision) of ``symbol``, all intervals."""
    return f"bars:{symbol}"


def indicators_channel(symbol: str) -> str:
    """Pub/sub channel of indicator updates of ``symbol``."""
    return f"indicators:{symbol}"


ANOMALIES_CHANNEL = "anomalies"

ML_STATUS_KEY = "ml_status"
"""State of `tickflow ml serve` (JSON: ``updated_at`` and per series ``symbol``, ``interval``, ``state``
(``waiting`` / ``training`` / ``predicting``), ``missing_bars``, ``model_version``, ``last_base``), written
by the service every round with a TTL; served by the API at ``/api/v1/ml/status``."""
