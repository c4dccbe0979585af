"""Machine learning: XGBoost next-close prediction on stored bars.

- :mod:`ml.data`: bars and indicators from PostgreSQL/TimescaleDB into pandas.
- :mod:`ml.features`: the one feature/target definition (training, evaluation, live).
- :mod:`ml.model`: training with early stopping and a residual-quantile band.
- :mod:`ml.registry`: versioned models on disk.
- :mod:`ml.evaluate` / :mod:`ml.report`: walk-forward evaluation against naive baselines, table and plots.
- :mod:`ml.training`: load-and-train step shared by the CLI and the live service.
- :mod:`ml.predict` / :mod:`ml.live`: predictions to PostgreSQL and Redis, on every final bar.
- :mod:`ml.cli`: ``tickflow ml train|evaluate|predict|serve|models``.
- ``ml/notebooks/01_quickstart.ipynb``: start here.
"""
