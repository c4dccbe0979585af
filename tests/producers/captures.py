"""Reading the recorded websocket captures of ``shared/data`` (format in its README)."""

from __future__ import annotations

import json
from pathlib import Path

COINBASE = "capture_COINBASE.ws.28.0"
BINANCE_FUTURES = "capture_BINANCE_FUTURES.ws.1.0"
BITSTAMP = "capture_BITSTAMP.ws.1.0"
KRAKEN = "capture_KRAKEN.ws.48.0"
OKX = "capture_OKX.ws.1.0"
BYBIT = "capture_BYBIT.ws.26.0"
BITFINEX = "capture_BITFINEX.ws.11.0"
COINBASE_HOUR = "coinbase_btcusd_trades_2023-09-05T16.csv"


def received_messages(path: Path) -> list[str]:
    """The raw text of every received message, in capture order (connection and sent lines skipped)."""
    messages = []
    for line in path.read_text().splitlines():
        if not line.strip() or " <-" in line:
            continue
        messages.append(line.split(": ", 1)[1])
    return messages


def coinbase_trades(path: Path) -> list[dict]:
    """The ``match``/``last_match`` messages of the Coinbase capture, decoded by the standard library."""
    return [m for m in map(json.loads, received_messages(path)) if m["type"] in ("match", "last_match")]


def binance_agg_trades(path: Path) -> list[dict]:
    """The ``aggTrade`` events of the Binance futures capture, decoded by the standard library."""
    events = [json.loads(m)["data"] for m in received_messages(path)]
    return [e for e in events if e["e"] == "aggTrade"]
