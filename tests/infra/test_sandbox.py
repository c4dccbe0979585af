"""``free_port``: ports the tests' servers bind later, outside the range of outgoing connections' ports."""

from __future__ import annotations

import socket
from pathlib import Path

from infra.local.sandbox import PORT_RANGE, free_port


def test_free_ports_are_distinct_bindable_and_below_the_ephemeral_range() -> None:
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    assert all(port in PORT_RANGE and port < low for port in ports)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports[-1]))
