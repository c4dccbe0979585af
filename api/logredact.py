"""Keeps API keys out of the API's logs: uvicorn writes request paths with their query string (the access
log, and the ``WebSocket /ws?... [accepted]`` lines), and a client may still send ``?api_key=``.

``uvicorn_log_config()`` is uvicorn's own logging config with ``RedactKeys`` on every handler.
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

from uvicorn.config import LOGGING_CONFIG

from api.auth import API_KEY_QUERY

REDACTED = "[redacted]"
_KEY_IN_QUERY = re.compile(rf"((?:^|[?&\s\"']){re.escape(API_KEY_QUERY)}=)[^&\s\"']*", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with the value of every ``api_key=`` query parameter replaced by ``[redacted]``."""
    return _KEY_IN_QUERY.sub(rf"\g<1>{REDACTED}", text)


class RedactKeys(logging.Filter):
    """A handler filter that redacts ``api_key=`` values in a record's message and its string arguments
    (uvicorn's access formatter reads the path from the arguments, so they keep their shape)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()}
        return True


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's default logging config with ``RedactKeys`` on each of its handlers."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact_keys"] = {"()": f"{__name__}.RedactKeys"}
    for handler in config["handlers"].values():
        handler.setdefault("filters", []).append("redact_keys")
    return config
