"""Exchange adapters, one module each, all normalising to ``producers.trades.TradeFields``.

``EXCHANGES`` maps an exchange name (the ``exchange`` field of its ticks, the ``--exchange`` option) to its
``ExchangeSpec``.
"""

from __future__ import annotations

from typing import Final

from producers.exchanges import binance, bitstamp, coinbase, kraken, polygon
from producers.exchanges.spec import ExchangeSpec

EXCHANGES: Final[dict[str, ExchangeSpec]] = {
    spec.name: spec
    for spec in (
        coinbase.SPEC,
        binance.SPOT_SPEC,
        binance.FUTURES_SPEC,
        kraken.SPEC,
        bitstamp.SPEC,
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


def exchange_for_host(host: str) -> ExchangeSpec | None:
    """The exchange whose websocket host is ``host`` (to recognise a capture file), if any."""
    return next((spec for spec in EXCHANGES.values() if host in spec.hosts), None)
