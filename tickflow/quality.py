"""Source quality per (exchange, symbol): the record producers publish and the API serves, its Redis key and
the one definition of the score.

Producers keep rolling counts over the last ``Settings.quality_window_s`` seconds and publish a
``SourceQuality`` every ``Settings.quality_publish_interval_s`` to the Redis string
``source_quality:{exchange}:{symbol}`` (JSON, TTL ``Settings.quality_ttl_s``, so a producer that died leaves
no stale record behind); ``GET /api/v1/sources`` lists them, failover ranks healthy providers by ``score``.

Rates are fractions of the trades a source delivered in the window (``trades`` = accepted + duplicates +
dead letters), except gaps, which are fractions of the trades that should have arrived (``trades`` + the
gap's missing trades)::

    penalty(x, tolerance) = min(1, x / tolerance)
    score = 1 - ( 0.30 * penalty(staleness_s,          stale_after_s)
                + 0.20 * penalty(gap_unfilled_rate,    0.01)
                + 0.20 * penalty(dead_letter_rate,     0.05)
                + 0.15 * penalty(ingest_latency_ms,    latency_budget_ms)
                + 0.10 * penalty(gap_filled_rate,      0.10)
                + 0.05 * penalty(duplicate_rate,       0.50) )

so 1 is a fresh, complete, clean and fast source and 0 one that fails every criterion; a source silent for
``stale_after_s`` loses 0.3 whatever else it does. Ingest latency is the mean of receipt time - exchange
event time of accepted live ticks (clock skew included). Duplicates weigh little: re-sent snapshots after a
reconnect are expected and harmless.
"""

from __future__ import annotations

from typing import Final

from pydantic import BaseModel, ConfigDict, Field

WEIGHTS: Final = {
    "staleness": 0.30,
    "gap_unfilled": 0.20,
    "dead_letter": 0.20,
    "latency": 0.15,
    "gap_filled": 0.10,
    "duplicate": 0.05,
}
"""Weight of each criterion in the score (they sum to 1)."""
TOLERANCES: Final = {"gap_unfilled": 0.01, "dead_letter": 0.05, "gap_filled": 0.10, "duplicate": 0.50}
"""The rate at which a criterion costs its whole weight."""


def source_quality_key(exchange: str, symbol: str) -> str:
    """Redis key of the quality record of ``symbol`` on ``exchange``: ``source_quality:okx:BTC-USDT``."""
    return f"source_quality:{exchange}:{symbol}"


SOURCE_QUALITY_PATTERN: Final = "source_quality:*"
"""``SCAN`` pattern of every quality record."""


def _penalty(value: float, tolerance: float) -> float:
    return min(1.0, max(0.0, value) / tolerance) if tolerance > 0 else 0.0


def quality_score(
    *,
    staleness_s: float,
    gap_unfilled_rate: float,
    dead_letter_rate: float,
    ingest_latency_ms: float,
    gap_filled_rate: float,
    duplicate_rate: float,
    stale_after_s: float,
    latency_budget_ms: float,
) -> float:
    """The score in [0, 1] of the module docstring."""
    lost = (
        WEIGHTS["staleness"] * _penalty(staleness_s, stale_after_s)
        + WEIGHTS["gap_unfilled"] * _penalty(gap_unfilled_rate, TOLERANCES["gap_unfilled"])
        + WEIGHTS["dead_letter"] * _penalty(dead_letter_rate, TOLERANCES["dead_letter"])
        + WEIGHTS["latency"] * _penalty(ingest_latency_ms, latency_budget_ms)
        + WEIGHTS["gap_filled"] * _penalty(gap_filled_rate, TOLERANCES["gap_filled"])
        + WEIGHTS["duplicate"] * _penalty(duplicate_rate, TOLERANCES["duplicate"])
    )
    return round(min(1.0, max(0.0, 1.0 - lost)), 6)


class SourceQuality(BaseModel):
    """Quality of one (exchange, symbol) over the last ``window_s`` seconds (see the module docstring).

    Counts are trades in the window; rates are fractions (0..1); ``staleness_s`` is the time since the last
    accepted trade (``None``: none yet, the source counts as stale); ``ingest_latency_ms`` the mean
    receipt - event time of accepted ticks (``None``: none); ``updated_at`` µs since the epoch, UTC.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    exchange: str
    symbol: str
    window_s: float = Field(gt=0)
    trades: int = Field(ge=0)
    accepted: int = Field(ge=0)
    duplicates: int = Field(ge=0)
    dead_letters: int = Field(ge=0)
    gaps_filled: int = Field(ge=0)
    gaps_unfilled: int = Field(ge=0)
    dead_letter_rate: float = Field(ge=0, le=1)
    duplicate_rate: float = Field(ge=0, le=1)
    gap_filled_rate: float = Field(ge=0, le=1)
    gap_unfilled_rate: float = Field(ge=0, le=1)
    staleness_s: float | None = Field(ge=0)
    ingest_latency_ms: float | None
    score: float = Field(ge=0, le=1)
    updated_at: int

    def to_wire(self) -> bytes:
        """The Redis value (UTF-8 JSON)."""
        return self.model_dump_json().encode()

    @classmethod
    def from_wire(cls, value: bytes | str) -> SourceQuality:
        """Parse a Redis value. Raises ``pydantic.ValidationError`` when it is not a quality record."""
        return cls.model_validate_json(value)
