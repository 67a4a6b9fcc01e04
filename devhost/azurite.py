"""Start and stop the Azurite storage emulator (npm `azurite`, pinned in package.json).

Used by `make run`, `make test`, `make demo` and by tests that need an emulator of their own
(for example to stop storage in the middle of an export). Always loopback-only, always with
telemetry off, always with its data in a folder the caller names.

    python -m devhost.azurite --data-dir DIR [--ports auto|default] -- COMMAND ...

runs COMMAND with `AZURITE_CONNECTION_STRING` (and `AzureWebJobsStorage`) set, then stops
Azurite whatever COMMAND's outcome, and exits with COMMAND's status.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ACCOUNT = "devstoreaccount1"
# The emulator's well-known, public development key (documented by Microsoft; not a secret).
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
DEFAULT_PORTS = (10000, 10001, 10002)
ROOT = Path(__file__).resolve().parent.parent


def connection_string(blob_port: int, host: str = "127.0.0.1") -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint=http://{host}:{blob_port}/{ACCOUNT};"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _executable() -> str:
    local = ROOT / "node_modules" / ".bin" / "azurite-blob"
    if local.exists():
        return str(local)
    found = shutil.which("azurite-blob")
    if not found:
        raise RuntimeError("azurite is not installed: run `npm ci` in the project folder")
    return found


@dataclass
class Azurite:
    """A running Azurite blob service; `stop()` ends it, `start()` brings it back on the same data.

    With `cert` and `key` (PEM files) it serves HTTPS; with `oauth` also, it accepts Entra bearer tokens
    (`--oauth basic`: it checks a token's issuer, audience and lifetime, not its signature).
    """

    data_dir: Path
    blob_port: int
    log_path: Path | None = None
    process: subprocess.Popen | None = None
    cert: Path | None = None
    key: Path | None = None
    oauth: bool = False

    @property
    def connection_string(self) -> str:
        return connection_string(self.blob_port)

    @property
    def blob_endpoint(self) -> str:
        """The account's blob endpoint, http or https as started."""
        return f"{'https' if self.cert else 'http'}://127.0.0.1:{self.blob_port}/{ACCOUNT}"

    def start(self, timeout: float = 30.0) -> Azurite:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path or os.devnull, "ab")  # noqa: SIM115 - handed to the child process
        self.process = subprocess.Popen(
            [
                _executable(),
                "--disableTelemetry",
                "--blobHost", "127.0.0.1",
                "--blobPort", str(self.blob_port),
                "--location", str(self.data_dir),
                "--skipApiVersionCheck",
                "--silent",
                *(["--cert", str(self.cert), "--key", str(self.key)] if self.cert and self.key else []),
                *(["--oauth", "basic"] if self.oauth else []),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while not answers(self.blob_port):
            if self.process.poll() is not None:
                raise RuntimeError(f"azurite exited with status {self.process.returncode}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("azurite did not start listening in time")
            time.sleep(0.1)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devhost.azurite", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--ports", choices=("auto", "default"), default="auto",
                        help="auto: free ports; default: 10000 (reused if an emulator already answers)")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("a command to run is required after --")

    port = DEFAULT_PORTS[0] if args.ports == "default" else free_port()
    azurite = None
    if not (args.ports == "default" and answers(port)):
        azurite = Azurite(args.data_dir, port, log_path=args.data_dir.parent / "azurite.log").start()
        print(f"azurite: blob service on http://127.0.0.1:{port}, data in {args.data_dir}", file=sys.stderr)
    else:
        print(f"azurite: using the emulator already answering on port {port}", file=sys.stderr)
    env = dict(os.environ)
    env["AZURITE_CONNECTION_STRING"] = connection_string(port)
    env.setdefault("AzureWebJobsStorage", connection_string(port))
    child = subprocess.Popen(command, env=env)
    # Ctrl-C reaches the whole foreground process group; let the child wind down, then stop Azurite.
    signal.signal(signal.SIGINT, lambda *_: None)
    signal.signal(signal.SIGTERM, lambda *_: child.send_signal(signal.SIGTERM))
    try:
        return child.wait()
    finally:
        if azurite:
            azurite.stop()


if __name__ == "__main__":
    sys.exit(main())
