"""Local alert receivers for tests: a Slack-style webhook (HTTP) and an SMTP server (aiosmtpd)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller

from infra.local.sandbox import free_port


@dataclass
class Webhook:
    """Records JSON bodies; answers ``fail_with`` for the next ``failures`` requests, and for every request
    within ``outage_s`` seconds of the first one; otherwise 200."""

    url: str
    bodies: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0
    failures: int = 0
    fail_with: int = 500
    outage_s: float = 0.0
    first_request_at: float | None = None
    """``time.monotonic()`` of the first request."""

    def _failing(self) -> bool:
        now = time.monotonic()
        if self.first_request_at is None:
            self.first_request_at = now
        if now - self.first_request_at < self.outage_s:
            return True
        if self.failures > 0:
            self.failures -= 1
            return True
        return False


@contextmanager
def webhook(path: str = "/hooks/alerts", outage_s: float = 0.0) -> Iterator[Webhook]:
    """A webhook at ``http://127.0.0.1:<free port><path>`` that is down (answers ``fail_with``, default
    500) for ``outage_s`` seconds from its first request."""
    port = free_port()
    hook = Webhook(url=f"http://127.0.0.1:{port}{path}", outage_s=outage_s)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            hook.requests += 1
            if hook._failing():
                self.send_response(hook.fail_with)
            else:
                hook.bodies.append(json.loads(body))
                self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@contextmanager
def smtp_server() -> Iterator[tuple[int, list[Message]]]:
    """An SMTP server on a free port; yields (port, received messages)."""
    inbox = _Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, inbox.messages
    finally:
        controller.stop()
