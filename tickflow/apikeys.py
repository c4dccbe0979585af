"""The API key: the header that carries it and the one comparison of a presented key with the accepted
ones (``Settings.api_keys``), shared by the API and the dashboard's login."""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from typing import Final

from pydantic import SecretStr

from tickflow.settings import reveal

API_KEY_HEADER: Final = "X-API-Key"


def key_is_valid(presented: str | None, accepted: Sequence[SecretStr | str]) -> bool:
    """True when ``presented`` equals one of the ``accepted`` keys.

    Every accepted key is compared with ``hmac.compare_digest`` (constant time per key, no early exit),
    so the time taken reveals neither which key matched nor how much of a key was right.
    """
    if not presented:
        return False
    candidate = presented.encode()
    matched = False
    for key in accepted:
        matched |= hmac.compare_digest(candidate, reveal(key).encode())
    return matched
