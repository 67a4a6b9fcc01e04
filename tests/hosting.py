"""Run the local host as a real subprocess for tests: start, wait until Running, kill, restart.

Tests talk to it over real HTTP, exactly as a client would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from devhost.azurite import free_port

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Host:
    """A `python -m devhost` process serving `app_dir` with its task hub in `data_dir`."""

    app_dir: Path
    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    log_path: Path | None = None
    process: subprocess.Popen | None = None
    extra_args: list[str] = field(default_factory=list)
    cwd: Path = ROOT  # where `python -m devhost` is imported from

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> Host:
        self.port = self.port or free_port()
        self.log_path = self.log_path or self.data_dir.parent / f"{self.data_dir.name}.host.log"
        env = {**os.environ, **self.env}
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child process
        self.process = subprocess.Popen(
            [sys.executable, "-m", "devhost", "--app-dir", str(self.app_dir), "--port", str(self.port),
             "--data-dir", str(self.data_dir), *self.extra_args],
            cwd=self.cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"host exited with {self.process.returncode}:\n{self.log()}")
            try:
                r = requests.get(f"{self.base_url}/admin/host/status", timeout=2)
                if r.status_code == 200 and r.json().get("state") == "Running":
                    return self
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"host did not reach Running in {timeout}s:\n{self.log()}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no clean-up, as a crash or a pulled plug."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.1, message: str = "condition"):
    """Poll `predicate` until it returns something truthy; fail with `message` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def write_keys(data_dir: Path, master: str, function: str, system: str) -> None:
    """Function keys for a host on `data_dir`, in Azure's file format (see devhost/keys.py)."""
    (data_dir / "secrets").mkdir(parents=True, exist_ok=True)
    (data_dir / "secrets" / "host.json").write_text(json.dumps({
        "masterKey": {"name": "master", "value": master},
        "functionKeys": [{"name": "default", "value": function}],
        "systemKeys": [{"name": "durabletask_extension", "value": system}],
    }))
