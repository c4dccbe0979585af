"""Redis key and pub/sub channel names shared by the writers (streaming jobs) and readers (API, dashboard).

One bar vocabulary (issue 17): a bar is ``bars`` in Kafka topic names (``bars_1m``), Redis keys
(``bars:BTC-USD:1m``), pub/sub channels (``bars:BTC-USD``) and the REST endpoint (``/api/v1/bars/{symbol}``),
``ohlcv`` as a table; intervals are spelt ``1m``, ``5m``, ``15m``, ``1h``, ``1d`` everywhere. Names used
before (``aggregated:{symbol}:{interval}`` keys, ``aggregated_data_{N}min`` topics) are renamed by
``tickflow topics migrate`` (``infra/migrate_names.py``).
"""

from __future__ import annotations

from typing import Final

BAR_KEY_PREFIX: Final = "bars:"
"""Prefix of the latest-bar keys ``bars:{symbol}:{interval}`` (a key space apart from the channels)."""
BAR_KEY_PATTERN: Final = f"{BAR_KEY_PREFIX}*:*"
"""``SCAN`` pattern of every latest-bar key."""
LEGACY_BAR_KEY_PREFIX: Final = "aggregated:"
"""Prefix of the latest-bar keys before the one bar vocabulary; renamed by ``tickflow topics migrate``."""


def bar_key(symbol: str, interval: str) -> str:
    """Latest bar of ``symbol``/``interval`` (JSON ``OHLCVBar``), e.g. ``bars:BTC-USD:1m``."""
    return f"{BAR_KEY_PREFIX}{symbol}:{interval}"


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
