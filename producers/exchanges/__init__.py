"""Exchange adapters, one module each, all normalising to ``producers.trades.TradeFields``.

``EXCHANGES`` maps an exchange name (the ``exchange`` field of its ticks, the ``--exchange`` option) to its
``ExchangeSpec``.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit

from producers.exchanges import binance, bitfinex, bitstamp, bybit, coinbase, kraken, okx, polygon
from producers.exchanges.spec import ExchangeSpec

EXCHANGES: Final[dict[str, ExchangeSpec]] = {
    spec.name: spec
    for spec in (
        coinbase.SPEC,
        binance.SPOT_SPEC,
        binance.FUTURES_SPEC,
        binance.US_SPEC,
        kraken.SPEC,
        bitstamp.SPEC,
        okx.SPEC,
        bybit.SPOT_SPEC,
        bybit.LINEAR_SPEC,
        bybit.INVERSE_SPEC,
        bitfinex.SPEC,
        polygon.SPEC,
    )
}


def get_exchange(name: str) -> ExchangeSpec:
    """The spec of exchange ``name``.

    Raises:
        ValueError: no such exchange (the message lists the known ones).
    """
    try:
        return EXCHANGES[name]
    except KeyError:
        raise ValueError(f"unknown exchange {name!r}; known: {', '.join(EXCHANGES)}") from None


def exchange_for_url(url: str) -> ExchangeSpec | None:
    """The exchange whose websocket URL ``url`` is (to recognise a capture file by its connection line),
    if any: by host, or by host and path where one host serves several markets (Bybit)."""
    parts = urlsplit(url)
    host, path = parts.hostname or "", parts.path or "/"
    return next((spec for spec in EXCHANGES.values() if spec.matches_url(host, path)), None)
