"""What the shared live client, the gap backfill and the capture replay need to know about an exchange."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from producers.trades import ParseResult, TradeFields
from tickflow.settings import Settings

Parser = Callable[[str | bytes], ParseResult]
"""A raw websocket message -> ``ParseResult``; never raises."""

GetJson = Callable[[str, Mapping[str, Any]], Awaitable[Any]]
"""``await get_json(path, params)``: a rate-limited, retried GET of ``<rest_url><path>`` returning JSON."""

FetchTrades = Callable[[GetJson, str, int, int], Awaitable[list[TradeFields]]]
"""``await fetch(get_json, symbol, first_id, last_id)``: the trades with ids in ``[first_id, last_id]``
(normalised, unvalidated) from the exchange's REST API."""


@dataclass(frozen=True)
class ExchangeSpec:
    """One exchange (or market) Tickflow can stream from.

    ``parse`` is the pure raw-message parser used by the live client and the capture replay alike;
    ``subscribe(symbols, settings)`` gives the text messages sent after each (re)connect, paced;
    ``sequential_ids`` says trade ids count up by one per symbol, so a jump is a gap; ``fetch_trades``
    backfills a gap over REST (``None``: gaps are counted, not filled) at most once per
    ``rest_min_interval_s``; ``hosts`` identify a capture file's exchange by its connection URL: a host name
    (``ws.kraken.com``) matches any path, ``host/path`` (``stream.bybit.com/realtime``) that path and below.

    Exchanges whose messages only make sense with connection state (Bitfinex numbers its channels on
    subscribing) give ``new_parser``, which makes a fresh stateful parser for one connection or capture;
    ``parser()`` is what every caller uses, ``parse`` alone then handles only self-describing messages.
    """

    name: str
    ws_url: str
    parse: Parser
    subscribe: Callable[[Sequence[str], Settings], list[str]]
    hosts: tuple[str, ...]
    sequential_ids: bool = False
    rest_url: str | None = None
    fetch_trades: FetchTrades | None = None
    rest_min_interval_s: float = 0.2
    new_parser: Callable[[], Parser] | None = None

    def parser(self) -> Parser:
        """A parser for one stream (live connection or capture file): fresh state when the exchange needs
        it, else ``parse`` itself."""
        return self.new_parser() if self.new_parser is not None else self.parse

    def matches_url(self, host: str, path: str) -> bool:
        """Whether a websocket URL with this ``host`` and ``path`` is this exchange's (see ``hosts``)."""
        for entry in self.hosts:
            name, slash, prefix = entry.partition("/")
            if host != name:
                continue
            if not slash:
                return True
            wanted = "/" + prefix.rstrip("/")
            if path == wanted or path.startswith(wanted + "/"):
                return True
        return False
