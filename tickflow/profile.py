"""The stack's active profile: settings defaults `tickflow stack up` records in ``<state_dir>/profile.json``.

``tickflow stack up --cluster`` records the addresses of its three Kafka brokers, its Spark master and the
replication settings there; every later `tickflow` command of that checkout (same state dir) reads them as
its defaults, so ``tickflow produce replay`` and ``tickflow stream bars`` run on the cluster unchanged.
Priority: init arguments > ``TICKFLOW_*`` environment > ``.env`` > profile > field defaults.
``tickflow stack down`` removes the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

PROFILE_FILE: Final = "profile.json"
DEFAULT_STATE_DIR: Final = Path(".tickflow")


def profile_path(state_dir: Path) -> Path:
    """Where the active profile of the stack under ``state_dir`` is recorded."""
    return Path(state_dir) / PROFILE_FILE


def read_profile(state_dir: Path) -> dict[str, Any]:
    """The recorded profile: ``{"name": ..., "settings": {field: value}}``, or ``{}`` when none is active."""
    try:
        data = json.loads(profile_path(state_dir).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_profile(state_dir: Path, name: str, settings: dict[str, Any]) -> Path:
    """Record profile ``name`` with the settings defaults ``settings`` (field name -> JSON value)."""
    path = profile_path(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps({"name": name, "settings": settings}, indent=2) + "\n")
    partial.replace(path)
    return path


def clear_profile(state_dir: Path) -> bool:
    """Forget the active profile; True when one was recorded."""
    path = profile_path(state_dir)
    existed = path.exists()
    path.unlink(missing_ok=True)
    return existed


class ProfileSettingsSource(PydanticBaseSettingsSource):
    """Settings defaults of the active profile of the state dir the other sources name (or ``.tickflow``)."""

    def __init__(self, settings_cls: type[BaseSettings], *state_dir_sources: PydanticBaseSettingsSource):
        super().__init__(settings_cls)
        self._state_dir_sources = state_dir_sources

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ answers for every field at once

    def __call__(self) -> dict[str, Any]:
        state_dir: Any = None
        for source in self._state_dir_sources:
            state_dir = source().get("state_dir")
            if state_dir is not None:
                break
        recorded = read_profile(Path(state_dir) if state_dir is not None else DEFAULT_STATE_DIR)
        values = recorded.get("settings", {})
        known = self.settings_cls.model_fields
        return {name: value for name, value in values.items() if name in known}
