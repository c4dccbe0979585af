"""What the shared live client, the gap backfill and the capture replay need to know about an exchange."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from producers.trades import ParseResult, TradeFields
from tickflow.settings import Settings

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
    ``rest_min_interval_s``; ``hosts`` are websocket host names that identify a capture file's exchange.
    """

    name: str
    ws_url: str
    parse: Callable[[str | bytes], ParseResult]
    subscribe: Callable[[Sequence[str], Settings], list[str]]
    hosts: tuple[str, ...]
    sequential_ids: bool = False
    rest_url: str | None = None
    fetch_trades: FetchTrades | None = None
    rest_min_interval_s: float = 0.2
