"""`tickflow run`'s supervision: ports checked first, who died said last, nothing left behind."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

import pytest

from infra.local.run import run_processes, taken_ports
from infra.local.sandbox import make_state_dir, stack_settings


def test_a_taken_port_is_named_before_anything_starts() -> None:
    settings = stack_settings(make_state_dir())  # every port of Tickflow's processes free
    assert taken_ports(settings) == []
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", settings.dashboard_port))
        sock.listen()
        problems = taken_ports(settings)
    assert len(problems) == 1
    assert str(settings.dashboard_port) in problems[0] and "TICKFLOW_DASHBOARD_PORT" in problems[0]


@pytest.mark.services  # starts a real stack's processes under honcho
def test_the_process_that_died_is_named_with_its_last_lines(tmp_path: Path) -> None:
    stray = f"sleep {300 + uuid.uuid4().int % 10**6 / 10**7:.7f}"  # unique: other runs may sleep too
    procfile = tmp_path / "Procfile"
    procfile.write_text(
        "steady: exec sleep 120\n"
        f"orphaner: sh -c 'setsid {stray} & exec sleep 120'\n"  # a child outside honcho's process group
        "broken: sh -c 'sleep 2; echo cannot reach the store; exit 3'\n"
    )
    lines: list[str] = []
    rc = run_processes(procfile, tmp_path / "run.log", stop_grace_s=2.0, echo=lines.append)
    assert rc == 3
    report = lines[lines.index("tickflow run: broken.1 stopped on its own (rc=3); its last lines:") :]
    assert report[1].strip() == "cannot reach the store"
    left = [line for line in lines if line.startswith("tickflow run: stopped ") and "left behind" in line]
    assert len(left) == 1 and stray in left[0]
    assert not _alive_with(stray)
    assert "broken.1 stopped (rc=3)" in (tmp_path / "run.log").read_text()


def _alive_with(command: str) -> bool:
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes().replace(b"\0", b" ").strip() == (
                command.encode()
            ):
                return "Z" not in (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
    return False
