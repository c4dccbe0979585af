"""Live walk-forward score of the served predictions: each prediction was made before its bar closed, so
comparing it with the final close is an out-of-sample test, bar by bar.

For the newest ``limit`` predictions of a series whose bar is final: ``n``, ``rmse_vs_naive`` = RMSE of the
predicted close / RMSE of the naive forecast (the base bar's close; < 1 beats doing nothing) and
``band_coverage`` = share of final closes inside the predicted band (compare with the band's nominal level).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import psycopg2.extensions

LIMIT: Final = 500

_QUERY: Final = """
SELECT count(*),
       sqrt(avg(power(o.close - p.predicted_close, 2))),
       sqrt(avg(power(o.close - p.base_close, 2))),
       avg(CASE WHEN o.close BETWEEN p.lower AND p.upper THEN 1.0 ELSE 0.0 END)
FROM (
    SELECT window_start, predicted_close, base_close, lower, upper
    FROM predictions
    WHERE symbol = %(symbol)s AND interval = %(interval)s
    ORDER BY window_start DESC
    LIMIT %(limit)s
) p
JOIN ohlcv o ON o.symbol = %(symbol)s AND o.interval = %(interval)s AND o.window_start = p.window_start
WHERE o.is_final
"""


@dataclass(frozen=True)
class LiveScore:
    """Out-of-sample score of a series' served predictions (see the module docstring)."""

    n: int
    rmse_vs_naive: float | None
    band_coverage: float | None


def live_score(
    conn: psycopg2.extensions.connection, symbol: str, interval: str, limit: int = LIMIT
) -> LiveScore:
    """The score of the newest ``limit`` predictions of ``symbol``/``interval`` whose bar is final.

    Raises:
        psycopg2.Error: the query failed.
    """
    with conn.cursor() as cur:
        cur.execute(_QUERY, {"symbol": symbol, "interval": interval, "limit": limit})
        n, rmse, naive_rmse, coverage = cur.fetchone()
    if not n:
        return LiveScore(0, None, None)
    ratio = float(rmse) / float(naive_rmse) if naive_rmse and float(naive_rmse) > 0 else None
    return LiveScore(
        int(n),
        None if ratio is None or math.isnan(ratio) else round(ratio, 4),
        round(float(coverage), 4),
    )
