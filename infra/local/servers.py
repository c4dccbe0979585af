"""Real Tickflow processes for tests and benchmarks: ``tickflow api`` and ``tickflow dashboard`` in a
subprocess on a free port, with their settings passed as ``TICKFLOW_*`` variables and their output in a log
file."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import ClassVar, Self

import httpx

from infra.local.sandbox import free_port
from tickflow.settings import Settings, reveal

TICKFLOW = Path(sys.executable).parent / "tickflow"
LOGIN_USER = "tester"


def basic_authorization(key: str, user: str = LOGIN_USER) -> str:
    """The ``Authorization`` header value of an HTTP Basic login with ``key`` as the password."""
    return "Basic " + base64.b64encode(f"{user}:{key}".encode()).decode()


class ServerProcess:
    """``tickflow <ARGS>`` with ``settings`` (its ``PORT_FIELD`` set to a free port); output goes to ``log``.

    Subclasses name the command (``ARGS``), the settings field of its port (``PORT_FIELD``), the path that
    answers 200 once it serves (``READY_PATH``), how long a clean stop may take (``STOP_TIMEOUT_S``) and
    what the errors call it (``NAME``).
    """

    NAME: ClassVar[str]
    ARGS: ClassVar[tuple[str, ...]]
    PORT_FIELD: ClassVar[str]
    READY_PATH: ClassVar[str]
    STOP_TIMEOUT_S: ClassVar[float]

    def __init__(self, settings: Settings, log: Path) -> None:
        self.port = free_port()
        self.settings = settings.model_copy(update={self.PORT_FIELD: self.port})
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 30.0) -> Self:
        """Start the process and wait until ``READY_PATH`` answers 200.

        Raises:
            RuntimeError: the process exited or did not answer in time (with its log tail).
        """
        env = {k: v for k, v in os.environ.items() if not k.startswith("TICKFLOW_")}
        env.update(self.settings.to_env())
        with open(self.log, "ab") as out:
            self._process = subprocess.Popen(
                [str(TICKFLOW), *self.ARGS], env=env, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self._process.poll() is None:
            try:
                if httpx.get(f"{self.url}{self.READY_PATH}", timeout=1, auth=self.auth).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.NAME} did not start; log tail:\n{self.log.read_text()[-3000:]}")

    @property
    def auth(self) -> httpx.BasicAuth | None:
        """The login of the process's pages when ``api_auth`` is on: any user, the first API key."""
        if not (self.settings.api_auth and self.settings.api_keys):
            return None
        return httpx.BasicAuth(LOGIN_USER, reveal(self.settings.api_keys[0]))

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def stop(self) -> None:
        """Terminate the process (killed after ``STOP_TIMEOUT_S``); a no-op when it is not running."""
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(self.STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None


class ApiServer(ServerProcess):
    """``tickflow api``; ready once ``/live`` answers (the lifespan, feeds included, is done)."""

    NAME = "API"
    ARGS = ("api", "--log-level", "warning")
    PORT_FIELD = "api_port"
    READY_PATH = "/live"
    STOP_TIMEOUT_S = 15.0

    def __init__(self, settings: Settings, log: Path) -> None:
        super().__init__(settings, log)
        self.ws_url = f"ws://127.0.0.1:{self.port}/ws"


class DashboardServer(ServerProcess):
    """``tickflow dashboard``; ready once the page's layout is served."""

    NAME = "dashboard"
    ARGS = ("dashboard",)
    PORT_FIELD = "dashboard_port"
    READY_PATH = "/_dash-layout"
    STOP_TIMEOUT_S = 10.0
