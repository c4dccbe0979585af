"""API-key check shared by REST (``X-API-Key`` header) and WebSocket (header or ``?api_key=``)."""

from __future__ import annotations

import hmac
from collections.abc import Sequence

API_KEY_HEADER = "X-API-Key"
API_KEY_QUERY = "api_key"


def key_is_valid(presented: str | None, accepted: Sequence[str]) -> bool:
    """True when ``presented`` equals one of the ``accepted`` keys.

    Every accepted key is compared with ``hmac.compare_digest`` (constant time per key, no early exit),
    so the time taken reveals neither which key matched nor how much of a key was right.
    """
    if not presented:
        return False
    candidate = presented.encode()
    matched = False
    for key in accepted:
        matched |= hmac.compare_digest(candidate, key.encode())
    return matched
