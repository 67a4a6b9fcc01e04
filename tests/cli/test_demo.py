"""`make demo`'s script: it ends with a completed export and leaves no process behind, even when interrupted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from testkit.host import ROOT, wait_for

pytestmark = pytest.mark.host  # the demo starts its own host, which the conftest cannot see


def start_demo(work: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    return subprocess.Popen([sys.executable, "-m", "scripts.demo", "--work-dir", str(work)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def processes_using(folder: Path) -> list[str]:
    """Command lines of running processes that mention `folder` (the demo's Azurite and host do)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(folder) in args and "scripts.demo" not in args:
            found.append(args)
    return found


def test_demo_exports_everything_loaded_and_stops_all_it_started(tmp_path: Path) -> None:
    work = tmp_path / "demo"
    demo = start_demo(work)
    output, _ = demo.communicate(timeout=120)
    assert demo.returncode == 0, output
    for expected in ("files found", "stored", "completed · 129 exported · 1 skipped",
                     "42 studies, 129 files", "1.2.3.4.5.6.7.8.9", "(1 line)", "host and Azurite stopped"):
        assert expected in output
    assert processes_using(work) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_demo_stops_all_it_started(tmp_path: Path, sig: signal.Signals) -> None:
    work = tmp_path / "demo"
    demo = start_demo(work)
    lines: list[str] = []
    wait_for(lambda: (lines.append(demo.stdout.readline()) or "Load pydicom's files" in lines[-1]),
             timeout=60, message="the demo to start loading")
    assert processes_using(work)  # Azurite and the host are running
    demo.send_signal(sig)
    output, _ = demo.communicate(timeout=60)
    assert demo.returncode == 130, "".join(lines) + output
    assert "host and Azurite stopped" in output and "interrupted" in output
    assert processes_using(work) == []
