"""`tickflow settings` masks every secret: each ``SecretStr`` setting (alone or in a list) and the password
of a store URL; child processes still get the real values (``Settings.to_env``)."""

from __future__ import annotations

import uuid

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from tickflow.cli import app
from tickflow.settings import Settings, get_settings


def secret_fields() -> list[str]:
    """Settings fields typed ``SecretStr`` or ``list[SecretStr]``."""
    return [name for name, field in Settings.model_fields.items() if "SecretStr" in str(field.annotation)]


def test_the_known_secrets_are_secret_fields() -> None:
    expected = {"api_keys", "influx_token", "polygon_api_key", "dashboard_api_key", "alert_webhook_url"}
    assert expected | {"smtp_password"} <= set(secret_fields())


def test_settings_command_masks_every_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = {name: f"s3cret-{name}-{uuid.uuid4().hex}" for name in secret_fields()}
    for name, value in secrets.items():
        monkeypatch.setenv(f"TICKFLOW_{name.upper()}", value)
    second_key = f"s3cret-second-{uuid.uuid4().hex}"
    monkeypatch.setenv("TICKFLOW_API_KEYS", f"{secrets['api_keys']},{second_key}")
    passwords = [f"pw{uuid.uuid4().hex}" for _ in range(2)]
    monkeypatch.setenv(
        "TICKFLOW_POSTGRES_DSN", f"postgresql://tickflow:{passwords[0]}@db.example:5432/tickflow"
    )
    monkeypatch.setenv("TICKFLOW_REDIS_URL", f"redis://:{passwords[1]}@redis.example:6379/0")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["settings"])
        settings = get_settings()
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    for value in [*secrets.values(), second_key, *passwords]:
        assert value not in result.output
    for name in secrets:
        assert f"TICKFLOW_{name.upper()}=**********" in result.output
    assert "TICKFLOW_API_KEYS=**********,**********" in result.output
    assert "TICKFLOW_POSTGRES_DSN=postgresql://tickflow:**********@db.example:5432/tickflow" in result.output
    assert all(isinstance(key, SecretStr) for key in settings.api_keys)
    env = settings.to_env()  # a child process gets the real values
    assert env["TICKFLOW_INFLUX_TOKEN"] == secrets["influx_token"]
    assert Settings(_env_file=None, api_keys=env["TICKFLOW_API_KEYS"]).api_keys == settings.api_keys
