"""`tickflow produce` commands."""

from __future__ import annotations

import typer

produce_app = typer.Typer(help="Produce ticks to Kafka (live, replay, synthetic).")
