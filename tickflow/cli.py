"""The `tickflow` command: the root that every stage's commands register into.

``tickflow/`` is the contracts package and imports no stage, so the commands are found at run time: each
stage names its own in the entry-point group ``tickflow.commands`` (``setup.cfg``): the entry's name is the
command, its value a ``typer.Typer`` of sub-commands (``stream``, ``produce``...) or a command function
(``api``, ``run``...). ``python -m tickflow`` and the ``tickflow`` console script both run :data:`app`.
Sub-commands import their stage's heavy modules lazily, so `tickflow --help` stays fast.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Final

import typer

COMMAND_GROUP: Final = "tickflow.commands"


def build_app() -> typer.Typer:
    """The root command with every registered stage command (in name order).

    Raises:
        RuntimeError: no command is registered (the package is not installed: ``pip install -e .``).
        ImportError: a registered stage module cannot be imported.
    """
    root = typer.Typer(no_args_is_help=True, help="Tickflow: real-time market-data pipeline.")
    commands = entry_points(group=COMMAND_GROUP)
    if not commands:
        raise RuntimeError(f"no {COMMAND_GROUP} entry points: install the package (pip install -e .)")
    for command in commands:
        target = command.load()
        if isinstance(target, typer.Typer):
            root.add_typer(target, name=command.name)
        else:
            root.command(command.name)(target)
    return root


app = build_app()
