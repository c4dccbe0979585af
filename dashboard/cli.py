"""`tickflow dashboard`: serve the Dash dashboard."""

from __future__ import annotations


def dashboard() -> None:
    """Start the dashboard on ``dashboard_host:dashboard_port``."""
    raise NotImplementedError("being built (issue 7)")
