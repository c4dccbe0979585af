"""`python -m tickflow` = the `tickflow` command."""

from tickflow.cli import app

app()
