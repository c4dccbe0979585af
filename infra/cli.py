"""`tickflow stack|db|topics` commands."""

from __future__ import annotations

import re
import time
from pathlib import Path

import typer
from pydantic import SecretStr

from tickflow.settings import get_settings

stack_app = typer.Typer(
    help="Start, stop and check the local stack (broker, PostgreSQL, Redis, InfluxDB; or, with --cluster, "
    "three brokers and a Spark standalone cluster)."
)
db_app = typer.Typer(help="Database schema.")
topics_app = typer.Typer(help="Kafka topics.")


@stack_app.command("up")
def stack_up(
    cluster: bool = typer.Option(
        False,
        "--cluster",
        help="Three Kafka brokers (RF 3, min ISR 2) and a Spark standalone master with two workers; every "
        "`tickflow` command of this checkout uses them until `stack down`.",
    ),
) -> None:
    """Start every managed service that is not answering yet, and wait until all answer."""
    from confluent_kafka import KafkaException

    from infra.local.services import ServiceError
    from infra.local.stack import up
    from infra.topics import create_topics
    from tickflow.settings import Settings

    started = time.monotonic()
    try:
        statuses = up(get_settings(), cluster=cluster)
        if cluster:
            created = create_topics(Settings())  # the recorded profile's defaults: RF 3, min ISR 2
            typer.echo(f"topics: {', '.join(f'{name} {outcome}' for name, outcome in created.items())}")
    except (ServiceError, KafkaException) as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc
    _print_status(statuses)
    typer.echo(f"stack up in {time.monotonic() - started:.1f} s")


def run(
    procfile: Path = typer.Option(Path("Procfile"), help="The Procfile of the pipeline's processes."),
) -> None:
    """Run the whole pipeline locally (what `make run` does): stack up, migrations, topics (and the bar
    name migration of `tickflow topics migrate`), every Procfile process under honcho; Ctrl-C stops them all
    and the stack. Says which process died, if any."""
    from infra.db.migrate import migrate
    from infra.local.run import run_processes, taken_ports
    from infra.local.services import ServiceError
    from infra.local.stack import down, up
    from infra.migrate_names import migrate_bar_names
    from tickflow.clients import postgres_dsn

    settings = get_settings()
    taken = taken_ports(settings)
    if taken:
        for line in taken:
            typer.secho(f"tickflow run: {line}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    try:
        _print_status(up(settings))
        applied = migrate(postgres_dsn(settings, statement_timeout=False))
        typer.echo(f"migrations applied: {', '.join(applied) or 'none (up to date)'}")
        names = migrate_bar_names(settings)  # creates the topics; renames legacy `aggregated:*` Redis keys
        if names.renamed_keys or names.legacy_topics:
            typer.echo(
                f"bar names migrated: {len(names.renamed_keys)} Redis keys renamed; legacy topics "
                f"{', '.join(names.legacy_topics) or 'none'} left in place (`tickflow topics migrate "
                "--delete-legacy` deletes them; run `tickflow stream reset indicators` once)"
            )
        typer.echo("Starting the pipeline (Ctrl-C stops it and the local stack)...")
        rc = run_processes(procfile, settings.state_dir / "logs" / "run.log", settings.run_stop_grace_s)
    except ServiceError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        rc = 1
    finally:
        stopped = down(settings)
        typer.echo(f"stack down: {', '.join(stopped) if stopped else 'nothing to stop'}")
    raise typer.Exit(rc)


@stack_app.command("jars")
def stack_jars() -> None:
    """Fetch the JVM jars once (Apache Kafka broker, Spark's Kafka connector) and check the Spark pin."""
    import pyspark

    from tickflow import jvm

    try:
        jvm.check_spark_pin(pyspark.__version__)
        for name in ("kafka-broker", "spark-kafka"):
            started = time.monotonic()
            jars = jvm.classpath(name)
            typer.echo(f"{name}: {len(jars)} jars ({time.monotonic() - started:.1f} s)")
    except jvm.ClasspathError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc


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
    typer.echo(f"{'service':<14} {'address':<22} {'managed':<8} {'state':<9} {'pid':<8} detail")
    for s in statuses:
        typer.echo(
            f"{s.name:<14} {s.address:<22} {'yes' if s.managed else 'no':<8} {s.state.value:<9} "
            f"{s.pid or '-'!s:<8} {s.detail}"
        )


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply pending SQL migrations (TimescaleDB layout when the extension exists, else partitions)."""
    import psycopg2

    from infra.db.migrate import migrate
    from tickflow.clients import postgres_dsn

    try:
        applied = migrate(postgres_dsn(get_settings(), statement_timeout=False))
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


@topics_app.command("migrate")
def topics_migrate(
    delete_legacy: bool = typer.Option(
        False, "--delete-legacy", help="Also delete the legacy `aggregated_data_*min` bar topics."
    ),
) -> None:
    """Move bar names from before the one bar vocabulary: rename Redis `aggregated:{symbol}:{interval}` keys
    to `bars:{symbol}:{interval}`, create the `bars_{interval}` topics, report (or delete) the legacy
    `aggregated_data_{N}min` topics. Idempotent. Then run `tickflow stream reset indicators` once."""
    from confluent_kafka import KafkaException
    from redis import RedisError

    from infra.migrate_names import migrate_bar_names

    try:
        result = migrate_bar_names(get_settings(), delete_legacy=delete_legacy)
    except (KafkaException, RedisError) as exc:
        typer.secho(f"migration failed: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"redis: {len(result.renamed_keys)} bar keys renamed, {len(result.dropped_keys)} superseded")
    for name, outcome in result.created_topics.items():
        typer.echo(f"topic {name:<28} {outcome}")
    for old, new in result.legacy_topics.items():
        state = "deleted" if old in result.deleted_topics else "left in place (--delete-legacy deletes it)"
        typer.echo(f"legacy topic {old} -> {new}: {state}")
    if result.legacy_topics:
        typer.echo("next: `tickflow stream reset indicators` (its checkpoint names the legacy topics)")


settings_app = typer.Typer(help="Show the effective settings.")


@settings_app.callback(invoke_without_command=True)
def settings_show(
    markdown: bool = typer.Option(False, "--markdown", help="Print the README's settings table instead."),
) -> None:
    """Print every setting with its env var and effective value (or the documentation table); secrets
    (``SecretStr`` settings, passwords in URLs and DSNs) are masked."""
    from tickflow.settings import Settings

    settings = get_settings()
    if markdown:
        typer.echo("| env var | default | description |\n|---|---|---|")
    for name, field in Settings.model_fields.items():
        env = f"TICKFLOW_{name.upper()}"
        if markdown:
            default = field.get_default(call_default_factory=True)
            shown = ",".join(map(str, default)) if isinstance(default, list) else default
            typer.echo(f"| `{env}` | `{shown}` | {field.description or ''} |")
        else:
            typer.echo(f"{env}={_masked(getattr(settings, name))}")


MASK = "**********"
_URL_PASSWORD = re.compile(r"(://[^:/?#@\s]*:)[^@/\s]*(@)")
_DSN_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def _masked(value: object) -> str:
    """``value`` as `tickflow settings` prints it: a non-empty secret as ``**********``, a list item by
    item, and the password of a URL (``scheme://user:password@host``) or libpq DSN (``password=...``)
    masked."""
    if isinstance(value, SecretStr):
        return MASK if value.get_secret_value() else ""
    if isinstance(value, list):
        return ",".join(_masked(item) for item in value)
    text = str(value)
    return _DSN_PASSWORD.sub(rf"\g<1>{MASK}", _URL_PASSWORD.sub(rf"\g<1>{MASK}\g<2>", text))
