"""The app's code runs only through Azure's own Python worker: what it refuses, devhost refuses, in its words."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import requests

from devhost.azurite import free_port
from testkit.host import ROOT, Host

APPS = Path(__file__).parent / "apps"


@pytest.mark.parametrize("app,words", [
    ("unbound_parameter", "the following parameters are declared in Python but not in the function definition"),
    ("wrong_context_name", 'cannot load the orchestrator function: the "context" parameter'),
])
def test_an_app_the_worker_refuses_is_not_served(tmp_path: Path, app: str, words: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "devhost", "--app-dir", str(APPS / app), "--port", str(free_port()),
         "--data-dir", str(tmp_path / "hub")], check=False, cwd=ROOT, capture_output=True, text=True,
        timeout=120)
    assert result.returncode == 1
    assert "Cannot start: the worker could not index the app: FunctionLoadError" in result.stderr
    assert words in result.stderr


def test_the_host_names_the_worker_it_runs(tmp_path: Path) -> None:
    host = Host(APPS / "http_app", tmp_path / "hub").start()
    try:
        from azure_functions_runtime.version import VERSION
        assert requests.get(f"{host.base_url}/admin/host/status", timeout=30).json()["worker"] == \
            f"azure-functions-runtime {VERSION}"
        assert f"Worker: azure-functions-runtime {VERSION}" in host.log()
        # The worker's indexing line (quadratic in the app's size in 1.3.0) is a summary; the JSON is DEBUG only.
        assert "Successfully indexed function app. 7 function(s), azure-functions " in host.log()
        assert '"function_count"' not in host.log()
    finally:
        host.stop()
