"""`tickflow stream` commands."""

from __future__ import annotations

import typer

stream_app = typer.Typer(help="Run the Spark Structured Streaming jobs.")
