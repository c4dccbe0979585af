"""`tickflow run` (what `make run` calls): the whole pipeline locally, supervised by honcho.

Order: (1) every port the pipeline's processes will listen on is checked free, and a taken one is named
before anything starts; (2) ``stack up``, migrations, topics; (3) ``honcho start -f Procfile`` (each
Procfile line ``exec``s its command, so honcho's SIGTERM reaches the process itself); its output is shown
and kept in ``<state_dir>/logs/run.log``. When honcho returns (Ctrl-C, or one process died and honcho
stopped the others): (4) any process of this run still alive — found by the ``TICKFLOW_RUN_ID`` every child
inherits, so even when honcho itself was killed — is sent SIGTERM, then SIGKILL after a grace period;
(5) the last lines say which process died on its own, with its exit code and last output lines;
(6) ``stack down``.
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Final

from tickflow.settings import Settings

RUN_ID_ENV: Final = "TICKFLOW_RUN_ID"
"""Environment variable that marks every process of one `tickflow run`."""
SWEEP_GRACE_S: Final = 20.0
LAST_LINES: Final = 8
_LINE = re.compile(r"^\d\d:\d\d:\d\d (?P<name>\S+)\s+\| (?P<text>.*)$")
_STOPPED = re.compile(r"^(?P<name>\S+) stopped \(rc=(?P<rc>-?\d+)\)$")
_SIGNAL_RECEIVED = re.compile(r"^SIG(INT|TERM) received$")
_HONCHO: Final = (
    "import sys, honcho.command, honcho.manager; honcho.manager.KILL_WAIT = float(sys.argv[1]); "
    "sys.argv = ['honcho', *sys.argv[2:]]; honcho.command.main()"
)
"""honcho's command line with its grace period between SIGTERM and SIGKILL set (it has no option)."""
_STOPPED_BY_SIGNAL: Final = frozenset({0, 130, 143})
"""honcho's exit codes after a clean stop, SIGINT and SIGTERM."""


def listening_ports(settings: Settings) -> dict[int, str]:
    """Ports the Procfile's processes listen on -> the setting that names each."""
    return {
        settings.api_port: "TICKFLOW_API_PORT (REST/WebSocket API)",
        settings.dashboard_port: "TICKFLOW_DASHBOARD_PORT (dashboard)",
        settings.producer_metrics_port: "TICKFLOW_PRODUCER_METRICS_PORT (producer metrics)",
        settings.bars_metrics_port: "TICKFLOW_BARS_METRICS_PORT (bar job metrics)",
        settings.indicators_metrics_port: "TICKFLOW_INDICATORS_METRICS_PORT (indicator job metrics)",
    }


def taken_ports(settings: Settings, host: str = "127.0.0.1") -> list[str]:
    """One line per pipeline port that another process already listens on (empty when all are free)."""
    problems = []
    for port, what in sorted(listening_ports(settings).items()):
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                problems.append(
                    f"port {port} ({what}) is already taken: stop that process or set the variable"
                )
    return problems


def run_processes(
    procfile: Path, log_file: Path, stop_grace_s: float = 75.0, echo: Callable[[str], None] = print
) -> int:
    """Run ``honcho start -f procfile`` until it returns; sweep what is left; report who died.

    ``stop_grace_s``: how long honcho waits after its SIGTERM before it SIGKILLs a process (honcho's own
    ``KILL_WAIT``, 5 s, would cut a Spark job's running micro-batch).

    Returns:
        0 after a clean Ctrl-C; else the exit code of the process that stopped on its own (1 when that was
        0), or honcho's.
    """
    run_id = uuid.uuid4().hex
    env = {**os.environ, RUN_ID_ENV: run_id, "PYTHONUNBUFFERED": "1"}
    honcho = [sys.executable, "-c", _HONCHO, str(stop_grace_s), "--no-colour", "start", "-f", str(procfile)]
    tails: dict[str, collections.deque[str]] = collections.defaultdict(lambda: collections.deque(maxlen=20))
    died: list[tuple[str, int]] = []
    stopping = threading.Event()
    left: list[str] = []
    log_file.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(honcho, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signum)

    def watchdog() -> None:
        """A child that keeps honcho's output pipe open (one it forked into another session) would keep
        honcho waiting for ever: once stopping, give honcho its grace period and ``SWEEP_GRACE_S``, then
        sweep."""
        stopping.wait()
        try:
            proc.wait(timeout=stop_grace_s + SWEEP_GRACE_S)
        except subprocess.TimeoutExpired:
            left.extend(sweep(run_id))

    guard = threading.Thread(target=watchdog, name="run-watchdog", daemon=True)
    guard.start()
    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with open(log_file, "a", encoding="utf-8") as log:
            assert proc.stdout is not None
            for line in proc.stdout:
                echo(line.rstrip("\n"))
                log.write(line)
                log.flush()
                match = _LINE.match(line.rstrip("\n"))
                if match is None:
                    continue
                name, text = match.group("name"), match.group("text")
                if name != "system":
                    tails[name].append(text)
                    continue
                if _SIGNAL_RECEIVED.match(text):
                    stopping.set()
                stopped = _STOPPED.match(text)
                if stopped and not stopping.is_set():  # an exit nobody asked for: honcho stops the rest
                    died.append((stopped.group("name"), int(stopped.group("rc"))))
                    stopping.set()
        rc = proc.wait()
        stopping.set()
        guard.join()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    left.extend(sweep(run_id))
    if left:
        echo(f"tickflow run: stopped {len(left)} process(es) honcho left behind: {', '.join(left)}")
    for name, code in died:
        echo(f"tickflow run: {name} stopped on its own (rc={code}); its last lines:")
        for text in list(tails[name])[-LAST_LINES:]:
            echo(f"    {text}")
    if died:
        return died[0][1] or 1
    return 0 if rc in _STOPPED_BY_SIGNAL else rc


def sweep(run_id: str, grace_s: float = SWEEP_GRACE_S) -> list[str]:
    """SIGTERM every process marked with ``run_id`` (SIGKILL after ``grace_s``); their command lines."""
    found = _marked(run_id)
    for pid in found:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(_alive(pid) for pid in found):
        time.sleep(0.2)
    for pid in found:
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return list(found.values())


def _marked(run_id: str) -> dict[int, str]:
    marker = f"{RUN_ID_ENV}={run_id}".encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:120]
        except OSError:
            continue
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"
