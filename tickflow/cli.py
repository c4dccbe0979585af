"""The `tickflow` command: the single entry point of every stage.

Sub-commands import their stage's heavy modules lazily, so `tickflow --help` stays fast.
"""

from __future__ import annotations

import typer

from api.cli import api
from dashboard.cli import dashboard
from infra.cli import db_app, run, settings_app, stack_app, topics_app
from ml.cli import ml_app
from producers.cli import produce_app
from streaming_jobs.cli import stream_app

app = typer.Typer(no_args_is_help=True, help="Tickflow: real-time market-data pipeline.")
app.add_typer(stack_app, name="stack")
app.add_typer(db_app, name="db")
app.add_typer(topics_app, name="topics")
app.add_typer(settings_app, name="settings")
app.add_typer(produce_app, name="produce")
app.add_typer(stream_app, name="stream")
app.add_typer(ml_app, name="ml")
app.command("run")(run)
app.command("api")(api)
app.command("dashboard")(dashboard)
