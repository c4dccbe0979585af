"""The ``/ws`` protocol against a real API process: welcome, ping, heartbeat, auth, and error replies."""

from __future__ import annotations

import orjson
import pytest

from infra.local.servers import ApiServer
from tests.api.seed import Seeded
from tests.api.wsclient import close_code, open_ws, receive, receive_until, request, subscribe


def test_welcome_ping_and_heartbeat(api_server: ApiServer) -> None:
    with open_ws(api_server) as ws:
        welcome = receive(ws)
        assert welcome["type"] == "welcome"
        assert welcome["max_subscriptions"] == 6
        assert welcome["channels"] == [
            "trades",
            "bars:1m",
            "bars:5m",
            "bars:15m",
            "indicators:1m",
            "indicators:5m",
            "indicators:15m",
            "anomalies",
        ]
        pong = request(ws, {"type": "ping", "id": "p-1"})
        assert pong["type"] == "pong" and pong["id"] == "p-1" and pong["time"]
        heartbeats = receive_until(ws, lambda m: m["type"] == "heartbeat", timeout_s=5)
        assert heartbeats[-1]["time"]


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ("not json {", "BAD_JSON"),
        (b"\xff\xfe binary garbage", "BAD_JSON"),
        ("[1, 2]", "BAD_MESSAGE"),
        ({"type": "dance"}, "UNKNOWN_TYPE"),
        ({"symbols": ["BTC-USD"]}, "UNKNOWN_TYPE"),
        ({"type": "subscribe", "symbols": "BTC-USD", "channels": ["trades"]}, "BAD_MESSAGE"),
        ({"type": "subscribe", "symbols": [], "channels": ["trades"]}, "BAD_MESSAGE"),
        ({"type": "subscribe", "symbols": ["BTC-USD"], "channels": ["trades"], "extra": 1}, "BAD_MESSAGE"),
        ({"type": "subscribe", "symbols": ["NOPE-USD"], "channels": ["trades"]}, "UNKNOWN_SYMBOL"),
        ({"type": "subscribe", "symbols": ["BTC-USD"], "channels": ["bars:2m"]}, "UNKNOWN_CHANNEL"),
        ({"type": "unsubscribe", "symbols": ["BTC-USD"], "channels": ["candles"]}, "UNKNOWN_CHANNEL"),
    ],
)
def test_bad_messages_get_error_replies_and_the_connection_stays_up(
    api_server: ApiServer, seeded: Seeded, payload: object, code: str
) -> None:
    with open_ws(api_server) as ws:
        receive(ws)  # welcome
        text = payload if isinstance(payload, str | bytes) else orjson.dumps(payload).decode()
        error = request(ws, text)
        assert error["type"] == "error"
        assert error["code"] == code
        assert error["message"]
        assert request(ws, {"type": "ping"})["type"] == "pong"


def test_error_replies_echo_the_request_id(api_server: ApiServer) -> None:
    with open_ws(api_server) as ws:
        receive(ws)
        error = request(ws, {"type": "subscribe", "id": 42, "symbols": ["NOPE-USD"], "channels": ["trades"]})
        assert (error["code"], error["id"]) == ("UNKNOWN_SYMBOL", 42)
        assert "NOPE-USD" in error["message"]


def test_subscription_cap_is_enforced_all_or_nothing(api_server: ApiServer) -> None:
    with open_ws(api_server) as ws:
        receive(ws)
        reply = subscribe(ws, ["btc-usd", "ETH-USD"], ["trades", "bars:1m"])
        assert reply["subscriptions"] == {"BTC-USD": ["bars:1m", "trades"], "ETH-USD": ["bars:1m", "trades"]}
        over = request(
            ws, {"type": "subscribe", "symbols": ["SOL-USD"], "channels": ["trades", "bars:1m", "bars:5m"]}
        )
        assert over["code"] == "TOO_MANY_SUBSCRIPTIONS"
        assert "at most 6" in over["message"]
        # Nothing of the rejected request was added; re-subscribing existing pairs is free.
        reply = subscribe(ws, ["SOL-USD", "BTC-USD"], ["trades"])
        assert sum(len(c) for c in reply["subscriptions"].values()) == 5
        reply = request(
            ws, {"type": "unsubscribe", "symbols": ["ETH-USD"], "channels": ["trades", "bars:1m"]}
        )
        assert reply["type"] == "unsubscribed"
        assert reply["subscriptions"] == {"BTC-USD": ["bars:1m", "trades"], "SOL-USD": ["trades"]}


@pytest.mark.parametrize(("key", "via"), [(None, "header"), ("wrong", "header"), ("wrong", "query")])
def test_missing_or_wrong_key_is_closed_with_1008(api_server: ApiServer, key: str | None, via: str) -> None:
    with open_ws(api_server, key=key, via=via) as ws:
        assert close_code(ws) == 1008


@pytest.mark.parametrize("via", ["header", "query"])
def test_a_valid_key_in_header_or_query_is_accepted(api_server: ApiServer, via: str) -> None:
    with open_ws(api_server, via=via) as ws:
        assert receive(ws)["type"] == "welcome"
