"""`tickflow stack|db|topics` commands."""

from __future__ import annotations

import time

import typer

from tickflow.settings import get_settings

stack_app = typer.Typer(help="Start, stop and check the local stack (broker, PostgreSQL, Redis, InfluxDB).")
db_app = typer.Typer(help="Database schema.")
topics_app = typer.Typer(help="Kafka topics.")


@stack_app.command("up")
def stack_up() -> None:
    """Start every managed service that is not answering yet, and wait until all answer."""
    from infra.local.services import ServiceError
    from infra.local.stack import up

    started = time.monotonic()
    try:
        statuses = up(get_settings())
    except ServiceError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc
    _print_status(statuses)
    typer.echo(f"stack up in {time.monotonic() - started:.1f} s")


@stack_app.command("down")
def stack_down() -> None:
    """Stop the services `stack up` started (services it found running are left alone)."""
    from infra.local.stack import down

    stopped = down(get_settings())
    typer.echo(f"stopped: {', '.join(stopped) if stopped else 'nothing'}")


@stack_app.command("status")
def stack_status() -> None:
    """Report each service's state; exit code 1 when any is not answering."""
    from infra.local.stack import status

    statuses = status(get_settings())
    _print_status(statuses)
    if not all(s.healthy for s in statuses):
        raise typer.Exit(1)


def _print_status(statuses: list) -> None:
    typer.echo(f"{'service':<10} {'address':<22} {'managed':<8} {'state':<9} {'pid':<8} detail")
    for s in statuses:
        typer.echo(
            f"{s.name:<10} {s.address:<22} {'yes' if s.managed else 'no':<8} {s.state.value:<9} "
            f"{s.pid or '-'!s:<8} {s.detail}"
        )


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply pending SQL migrations (TimescaleDB layout when the extension exists, else partitions)."""
    import psycopg2

    from infra.db.migrate import migrate

    try:
        applied = migrate(get_settings().postgres_dsn)
    except psycopg2.OperationalError as exc:
        typer.secho(f"cannot reach PostgreSQL ({exc}); is `tickflow stack up` running?", fg="red", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"applied: {', '.join(applied)}" if applied else "schema is up to date")


@topics_app.command("create")
def topics_create() -> None:
    """Create Tickflow's topics (idempotent) and print their partition counts."""
    from infra.topics import create_topics, describe_partitions

    settings = get_settings()
    result = create_topics(settings)
    partitions = describe_partitions(settings)
    for name, outcome in result.items():
        typer.echo(f"{name:<28} {outcome:<8} partitions={partitions.get(name, '?')}")


settings_app = typer.Typer(help="Show the effective settings.")


@settings_app.callback(invoke_without_command=True)
def settings_show(
    markdown: bool = typer.Option(False, "--markdown", help="Print the README's settings table instead."),
) -> None:
    """Print every setting with its env var and effective value (or the documentation table)."""
    from tickflow.settings import Settings

    settings = get_settings()
    if markdown:
        typer.echo("| env var | default | description |\n|---|---|---|")
    for name, field in Settings.model_fields.items():
        env = f"TICKFLOW_{name.upper()}"
        if markdown:
            default = field.get_default(call_default_factory=True)
            shown = ",".join(default) if isinstance(default, list) else default
            typer.echo(f"| `{env}` | `{shown}` | {field.description or ''} |")
        else:
            typer.echo(f"{env}={getattr(settings, name)}")
