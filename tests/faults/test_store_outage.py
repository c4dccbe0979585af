"""PostgreSQL, Redis and the InfluxDB endpoint (VictoriaMetrics) each stopped for 60 s while the bar job runs
on the standalone cluster, in one job run with the outages staggered: PostgreSQL from t = 0 to 60 s, Redis
from 30 to 90 s, VictoriaMetrics from 60 to 120 s. The job waits for each store and goes on when it is back
(it does not exit, and no other process stops); each outage shows in the API's ``/ready``, in the job's
``tickflow_store_up`` gauge and outage counter, and in its log once (one line when it starts, one when it
ends); the bars equal the reference.

A batch writes PostgreSQL, then Redis, then InfluxDB: the batch that waits for PostgreSQL finds Redis down
once PostgreSQL is back, and then VictoriaMetrics, so one waiting batch meets all three outages (two stores
down at once for half of the time, as when a host with two of them goes down). A store is started again only
once the job has found it unreachable, and never before its 60 s are over.

The Coinbase hour is replayed in two parts: the first before any outage, the second while PostgreSQL is down.
PostgreSQL is stopped as soon as the job's queries have started, so its first batch (a cold application on
the cluster, about 30 s) reaches the outage instead of running before it. Recovery is measured for each
store from its restart to the job's next write to it (its gauge back to 1), and for the whole from the last
restart to "bars current": every trade of the hour is in the stored 1-minute bars, and the 1-minute topic
holds the last 1-minute bar as the reference has it (Kafka is the last sink of a batch, so every store has
it too).
"""

from __future__ import annotations

import itertools
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pandas as pd
import pytest
import redis

from infra.local.cluster import cluster_services
from infra.local.sandbox import free_port
from infra.local.services import Postgres, Redis, Service, VictoriaMetrics
from tests.conftest import COINBASE_HOUR_CSV
from tests.faults.support import (
    TICKFLOW,
    Cluster,
    assert_reference_bars,
    bar_job_metric,
    one_minute_trades,
    replay_all,
    running,
    start,
    stop,
    wait_until,
)
from tests.reference_bars import load_trades_csv, reference_bars
from tests.streaming_jobs.bars.support import topic_records
from tickflow.keys import bar_key
from tickflow.settings import Settings

pytestmark = [pytest.mark.faults, pytest.mark.spark]

OUTAGE_S = 60.0
STAGGER_S = 30.0
"""Store n (0-based, in ``STORES`` order) is stopped at t = n * STAGGER_S and started at that + OUTAGE_S."""
STORES: tuple[Service, ...] = (Postgres(), Redis(), VictoriaMetrics())
"""In the order they are stopped (the order a batch writes them); their names (``postgres``, ``redis``,
``influx``) are the ``store`` label of the job's metrics, the ``store`` of its log lines and the names of
``/ready``'s checks."""


@dataclass(frozen=True)
class Part:
    """One consecutive part of the Coinbase hour, as a CSV of its own."""

    csv: Path
    rows: int
    trades_so_far: int
    last_1m: pd.Series
    """The reference 1-minute bar of the last window of the trades so far (maybe not yet complete)."""


PART_CSV = (
    *("--format", "csv", "--exchange", "coinbase", "--columns"),
    "price=price,size=amount,time=timestamp,symbol=symbol,side=side,trade_id=trade_id",
)
"""How to replay a part: as the whole file would be, with the trade id (the row number) in a column."""


def split_hour(csv: Path, into: int, directory: Path) -> list[Part]:
    """``csv`` (sorted by time) cut into ``into`` parts of about equal size, written under ``directory``
    with a ``trade_id`` column: the row number in ``csv``, the trade id of a replay of the whole file."""
    trades = pd.read_csv(csv, dtype=str, keep_default_na=False)  # the rows as they are in the file
    trades["trade_id"] = [str(row) for row in range(1, len(trades) + 1)]
    parsed = load_trades_csv(csv)
    parts, bounds = [], [len(trades) * n // into for n in range(into + 1)]
    for n, (first, end) in enumerate(itertools.pairwise(bounds)):
        path = directory / f"part-{n}.csv"
        trades.iloc[first:end].to_csv(path, index=False)
        last_1m = reference_bars(parsed.iloc[:end], 1).iloc[-1]
        parts.append(Part(path, end - first, end, last_1m))
    return parts


def bars_current(settings: Settings, part: Part) -> bool:
    """Every trade up to the end of ``part`` is in the 1-minute bars, and the 1-minute topic has its last
    bar as the reference has it."""
    if one_minute_trades(settings) != part.trades_so_far:
        return False
    start_iso = part.last_1m["window_start"].isoformat().replace("+00:00", "Z")
    topic = settings.bar_topic(settings.interval_list[0])
    records = [orjson.loads(value) for _, value in topic_records(settings, topic)]
    return any(
        r["window_start"] == start_iso and r["trade_count"] == part.last_1m["trade_count"] for r in records
    )


def outage_lines(log: Path, store: str) -> tuple[int, int]:
    """(lines saying ``store`` became unreachable, lines saying it is back) in the job's log."""
    named = re.compile(rf"\bstore\W+{store}\b")
    lines = [line for line in log.read_text().splitlines() if named.search(line)]
    return (
        sum("store unreachable, waiting for it" in line for line in lines),
        sum("store reachable again" in line for line in lines),
    )


def ready_check(api: Settings, store: str) -> tuple[int, dict]:
    """(``/ready``'s status code, its check of ``store``) of the API serving with ``api``'s settings."""
    answer = httpx.get(f"http://127.0.0.1:{api.api_port}/ready", timeout=15)
    return answer.status_code, answer.json()["checks"][store]


def start_api(settings: Settings, log: Path) -> tuple[subprocess.Popen, Settings]:
    """`tickflow api` on a free port, once ``/live`` answers; the process and its settings."""
    api = settings.model_copy(update={"api_port": free_port()})
    process = start([*TICKFLOW, "api", "--log-level", "warning"], api, log)

    def live() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{api.api_port}/live", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(running(process, log)(live), 60, "the API serving")
    return process, api


def outage_schedule() -> list[tuple[float, str, Service]]:
    """``(t in s, "stop" | "start", store)`` of the staggered outages, in time order (a stop before a start
    at the same t)."""
    events = [(n * STAGGER_S, "stop", store) for n, store in enumerate(STORES)]
    events += [(n * STAGGER_S + OUTAGE_S, "start", store) for n, store in enumerate(STORES)]
    return sorted(events, key=lambda event: (event[0], event[1] == "start"))


def store_up(settings: Settings, store: Service) -> float | None:
    """The bar job's ``tickflow_store_up`` gauge of ``store``."""
    return bar_job_metric(settings, "tickflow_store_up", store=store.name)


def assert_ready_shows(api: Settings, down: set[str]) -> None:
    """``/ready`` reports every store in ``down`` unavailable, and answers 503 exactly when PostgreSQL or
    Redis is among them (the API never reads InfluxDB, so its outage alone keeps the API ready)."""
    for name in down:
        status, check = ready_check(api, name)
        assert not check["ok"] and check["detail"].startswith("unavailable ("), check
    expected = 503 if down & {"postgres", "redis"} else 200
    assert status == expected, f"/ready answered {status} while {sorted(down)} were down"


@pytest.mark.timeout(1200)  # three staggered outages of 60 s (120 s in all) and the recovery in one job run
def test_store_outages_are_waited_out(
    cluster: Cluster, shared_data: Path, coinbase_bars: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    settings = cluster.settings
    before, during = split_hour(shared_data / COINBASE_HOUR_CSV, 2, tmp_path)
    job_log = tmp_path / "bars.log"
    api_process, api = start_api(settings, tmp_path / "api.log")
    job = start([*TICKFLOW, "stream", "bars"], settings, job_log)
    alive = running(job, job_log)
    stopped_at: dict[str, float] = {}
    resumed: dict[str, float] = {}
    try:
        replay_all(settings, before.csv, tmp_path / "replay-0.log", before.rows, PART_CSV)
        wait_until(alive(lambda: "bar job started" in job_log.read_text()), 300, "the job's queries started")
        assert all(store_up(settings, store) == 1 for store in STORES)
        began = time.monotonic()
        for at, action, store in outage_schedule():
            name = store.name
            time.sleep(max(0.0, began + at - time.monotonic()))
            down = set(stopped_at) - set(resumed)
            if action == "stop":
                cluster.stop(store)
                stopped_at[name] = time.monotonic()
                assert_ready_shows(api, down | {name})
                if store is STORES[0]:  # the job has bars to write while the stores are down
                    replay_all(settings, during.csv, tmp_path / "replay-1.log", during.rows, PART_CSV)
                continue
            wait_until(alive(lambda s=store: store_up(settings, s) == 0), 120, f"the job waiting for {name}")
            time.sleep(max(0.0, stopped_at[name] + OUTAGE_S - time.monotonic()))
            assert job.poll() is None, f"the job exited without {name}:\n{job_log.read_text()[-3000:]}"
            for service in cluster_services(settings):
                if service.name not in down:
                    cluster.pid(service)  # every other process of the cluster still runs
            assert outage_lines(job_log, name) == (1, 0), f"{name}: not one log line for the outage so far"
            assert_ready_shows(api, down)
            cluster.restart(store)
            outage_s = time.monotonic() - stopped_at[name]
            resumed[name] = wait_until(alive(lambda s=store: store_up(settings, s) == 1), 120,
                                       f"the job writing to {name} again")  # fmt: skip
            print(f"\n{name} stopped for {outage_s:.0f} s while the bar job ran: the job wrote to it again "
                  f"{resumed[name]:.1f} s after it was started again")  # fmt: skip
        last_restart = time.monotonic() - resumed[STORES[-1].name]
        wait_until(alive(lambda: bars_current(settings, during)), 300, "bars current", poll_s=1)
        print(f"bars current {time.monotonic() - last_restart:.1f} s after the last store was started again, "
              f"{time.monotonic() - began:.0f} s after the first outage began")  # fmt: skip
        for store in STORES:
            name = store.name
            assert bar_job_metric(settings, "tickflow_store_outages_total", store=name) == 1
            assert outage_lines(job_log, name) == (1, 1), f"{name}: not one log line each way for the outage"
            wait_until(lambda s=name: ready_check(api, s)[1]["ok"], 60, f"/ready: {name} ok again")
    finally:
        for store in STORES:
            if store.check(settings) is not None:
                cluster.restart(store)  # the next test's cluster is whole again
        code = stop(job)
        stop(api_process, 15)
    assert code == 0, job_log.read_text()[-3000:]
    assert len(resumed) == len(STORES)
    assert_reference_bars(settings, coinbase_bars)
    latest = orjson.loads(redis.Redis.from_url(settings.redis_url).get(bar_key("BTC-USD", "1m")) or b"{}")
    last = coinbase_bars["1m"].iloc[-1]
    assert (latest.get("close"), latest.get("trade_count")) == (last["close"], last["trade_count"])
