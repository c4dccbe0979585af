"""`tickflow ml` commands."""

from __future__ import annotations

import typer

ml_app = typer.Typer(help="Train, evaluate and run price-prediction models.")
