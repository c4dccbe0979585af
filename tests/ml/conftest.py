"""Fixtures of the ML tests: a migrated database seeded with the Coinbase-hour bars (``tests/conftest.py``'s
``coinbase_bars``) and synthetic bars."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from tests.ml.seed import insert_bars, insert_indicators
from tests.ml.synthetic import synthetic_bars
from tests.support.seed import indicator_rows
from tickflow.settings import Settings, get_settings

SYNTHETIC_GBM = "GBM-USD"  # pure random walk: nothing to learn
SYNTHETIC_AR = "AR-USD"  # AR(1) bar returns (phi = 0.3): a learnable signal


@pytest.fixture(scope="session")
def synthetic() -> dict[str, pd.DataFrame]:
    """3,000 seeded 1m bars each of a GBM and of an AR(1)-return series."""
    return {
        SYNTHETIC_GBM: synthetic_bars(SYNTHETIC_GBM, 3000, seed=11),
        SYNTHETIC_AR: synthetic_bars(SYNTHETIC_AR, 3000, phi=0.3, seed=12),
    }


@pytest.fixture
def ml_db(fresh_db: Settings, tmp_path: Path) -> Settings:
    """A fresh database and a model registry of its own."""
    return fresh_db.model_copy(
        update={"model_dir": tmp_path / "models", "ml_report_dir": tmp_path / "reports"}
    )


@pytest.fixture
def seeded_db(
    ml_db: Settings, coinbase_bars: dict[str, pd.DataFrame], synthetic: dict[str, pd.DataFrame]
) -> Settings:
    """``ml_db`` holding the Coinbase bars (1m/5m/15m, 1m with indicators) and both synthetic series."""
    for bars in (*coinbase_bars.values(), *synthetic.values()):
        insert_bars(ml_db.postgres_dsn, bars)
    insert_indicators(ml_db.postgres_dsn, indicator_rows(coinbase_bars["1m"]))
    return ml_db


@pytest.fixture
def cli_env(seeded_db: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """``seeded_db`` exported as ``TICKFLOW_*`` variables, so the CLI and notebooks read it."""
    for name in list(os.environ):
        if name.startswith("TICKFLOW_"):
            monkeypatch.delenv(name)
    for name, value in seeded_db.to_env().items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield seeded_db
    get_settings.cache_clear()
