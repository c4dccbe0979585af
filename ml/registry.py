"""A model registry on disk: one versioned directory per trained model.

Layout under the root (``Settings.model_dir``)::

    {symbol}/{interval}/{version}/model.ubj   XGBoost booster (UBJSON, loadable by any XGBoost >= 2)
                                  model.json  ModelInfo: feature list, metrics, data range, band,
                                              params, library versions, created-at

Versions are UTC creation times (``20250101T120000123456Z``), so their lexical order is their age order
and the newest is "latest". A version directory is written under a temporary name and renamed into
place, so readers never see half a model.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Final
from urllib.parse import quote

import xgboost as xgb

from ml.model import ModelInfo, PriceModel
from tickflow.intervals import Interval

MODEL_FILE: Final = "model.ubj"
INFO_FILE: Final = "model.json"


class ModelNotFoundError(LookupError):
    """No (such) model version is registered for a symbol/interval."""


class ModelRegistry:
    """Models of every symbol/interval under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _series_dir(self, symbol: str, interval: str) -> Path:
        return self.root / quote(symbol, safe="-_.") / Interval.parse(interval).name

    def versions(self, symbol: str, interval: str) -> list[str]:
        """Registered versions of ``symbol``/``interval``, oldest first (empty when none)."""
        return _versions_in(self._series_dir(symbol, interval))

    def save(self, model: PriceModel) -> Path:
        """Store ``model`` under its symbol/interval/version and return the version directory.

        Raises:
            FileExistsError: that version is already registered.
        """
        info = model.info
        target = self._series_dir(info.symbol, info.interval) / info.version
        if target.exists():
            raise FileExistsError(f"model version already registered: {target}")
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{info.version}-", dir=target.parent))
        try:
            model.booster.save_model(str(staging / MODEL_FILE))
            (staging / INFO_FILE).write_text(json.dumps(info.to_dict(), indent=2), encoding="utf-8")
            staging.rename(target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return target

    def load(self, symbol: str, interval: str, version: str | None = None) -> PriceModel:
        """The model ``version`` of ``symbol``/``interval`` (the newest when ``None``).

        Raises:
            ModelNotFoundError: nothing registered for the series, or no such version.
        """
        versions = self.versions(symbol, interval)
        if not versions:
            raise ModelNotFoundError(f"no model registered for {symbol} {interval} under {self.root}")
        chosen = versions[-1] if version is None else version
        if chosen not in versions:
            raise ModelNotFoundError(f"{symbol} {interval} has no model version {chosen!r}; have {versions}")
        directory = self._series_dir(symbol, interval) / chosen
        info = _read_info(directory)
        booster = xgb.Booster()
        booster.load_model(str(directory / MODEL_FILE))
        booster.set_param("nthread", info.params.get("threads", 1))
        return PriceModel(booster, info)

    def latest(self) -> list[ModelInfo]:
        """Info of the newest model of every registered symbol/interval, sorted by path."""
        infos = []
        for series_dir in sorted(self.root.glob("*/*")):
            versions = _versions_in(series_dir)
            if versions:
                infos.append(_read_info(series_dir / versions[-1]))
        return infos


def _versions_in(series_dir: Path) -> list[str]:
    """Complete version directories in ``series_dir``, oldest first (staging dirs start with a dot)."""
    if not series_dir.is_dir():
        return []
    return sorted(
        p.name for p in series_dir.iterdir() if not p.name.startswith(".") and (p / INFO_FILE).is_file()
    )


def _read_info(version_dir: Path) -> ModelInfo:
    return ModelInfo(**json.loads((version_dir / INFO_FILE).read_text(encoding="utf-8")))
