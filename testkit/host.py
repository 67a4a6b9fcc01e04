"""Run the local host as a real subprocess for tests: start, wait until Running, kill, restart.

Tests talk to it over real HTTP, exactly as a client would.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from devhost.azurite import free_port

ROOT = Path(__file__).resolve().parent.parent
# What a developer's shell may hold that would change the app or the CLI under test: app settings
# (`Section__Key`, `Section:Key`, the host's own), the CLI's defaults, azure-identity's credentials.
_APP_SETTING = re.compile(r"^([A-Za-z][A-Za-z0-9]*(__|:)|AzureWebJobs|FUNCTIONS_|WEBSITE_|DICOM_EXPORT_|AZURE_|"
                          r"IDENTITY_|MSI_)")


def hermetic_environ(environ: dict[str, str] | os._Environ[str]) -> dict[str, str]:
    """`environ` without the developer's settings: tests pass every setting they depend on themselves."""
    return {k: v for k, v in environ.items() if not _APP_SETTING.match(k)}
NO_SERVERS = "TESTKIT_NO_SERVERS"  # set by `make test-fast`: the tests it runs start no host and no Orthanc


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
    # None: no settings file at all (never the developer's local.settings.json); the settings are `env`.
    settings_file: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> Host:
        refuse_under_test_fast("the local host")
        self.port = self.port or free_port()
        self.log_path = self.log_path or self.data_dir.parent / f"{self.data_dir.name}.host.log"
        env = {**hermetic_environ(os.environ), **self.env}
        settings = self.settings_file
        if settings is None:
            settings = self.data_dir.parent / f"{self.data_dir.name}.settings.json"
            settings.write_text('{"IsEncrypted": false, "Values": {}}')
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child process
        self.process = subprocess.Popen(
            [sys.executable, "-m", "devhost", "--app-dir", str(self.app_dir), "--port", str(self.port),
             "--data-dir", str(self.data_dir), "--settings", str(settings), *self.extra_args],
            cwd=self.cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        wait_ready(self.process, self._running, "host", "reach Running", timeout, self.log, self.stop)
        return self

    def _running(self) -> bool:
        r = requests.get(f"{self.base_url}/admin/host/status", timeout=2)
        return r.status_code == 200 and r.json().get("state") == "Running"

    def kill(self) -> None:
        """SIGKILL: no clean-up, as a crash or a pulled plug."""
        kill_group(self.process)

    def stop(self) -> None:
        stop_group(self.process, signal.SIGINT, 15)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""


def refuse_under_test_fast(what: str) -> None:
    """RuntimeError if `make test-fast` runs: a test that starts `what` is missing its marker."""
    if os.environ.get(NO_SERVERS):
        raise RuntimeError(f"{what} is not started under make test-fast ({NO_SERVERS} is set): this test "
                           f"needs a `host` or `orthanc` marker (tests/conftest.py gives them)")


def wait_ready(process: subprocess.Popen, ready, name: str, state: str, timeout: float, log, stop) -> None:
    """Poll `ready()` (requests errors count as not yet) while `process` lives; RuntimeError with the tail of
    `log()` if it exits or the `timeout` passes (then `stop()` first)."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{log()[-5000:]}")
        try:
            if ready():
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            stop()
            raise RuntimeError(f"{name} did not {state} in {timeout}s:\n{log()[-5000:]}")
        time.sleep(0.1)


def kill_group(process: subprocess.Popen | None) -> None:
    """SIGKILL to the process group started with `start_new_session`, and wait for it."""
    if process and process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def stop_group(process: subprocess.Popen | None, sig: int, timeout: float) -> None:
    """`sig` to the process group; SIGKILL if it has not ended after `timeout` seconds."""
    if process and process.poll() is None:
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(process)


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
