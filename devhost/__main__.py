"""`python -m devhost`: run a Python v2 Functions app with Durable Functions, without Core Tools.

    python -m devhost [--app-dir DIR] [--host 127.0.0.1] [--port 7071] [--data-dir DIR] [--settings FILE] [--verbose]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from aiohttp import web

from .app_loader import load_app
from .durable_api import DurableApi
from .engine import DurableRuntime
from .keys import Keys
from .server import FunctionsServer, describe_routes
from .taskhub import TaskHubInUse
from .worker import IndexedSummary, WorkerRefused


class CannotListen(Exception):
    """The host's address is taken or not ours: said in one line, not a traceback."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devhost", description="Local Azure Functions host for Python v2 apps")
    parser.add_argument("--app-dir", type=Path, default=Path("."), help="folder holding function_app.py and host.json")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7071)
    parser.add_argument("--data-dir", type=Path, help="task hub folder (default: <app-dir>/.devhost)")
    parser.add_argument("--secrets-dir", type=Path,
                        help="function keys in Azure's file format (default: <data-dir>/secrets); absent: no keys")
    parser.add_argument("--settings", type=Path,
                        help="app settings in local.settings.json's format (default: <app-dir>/local.settings.json)")
    parser.add_argument("--verbose", action="store_true", help="also log replay details and the worker's full indexing message")
    args = parser.parse_args(argv)
    if args.settings and not args.settings.is_file():
        parser.error(f"--settings: no such file: {args.settings}")
    return args


def _quiet_logs(verbose: bool) -> None:
    # aiohttp's access log prints query strings, which may carry keys (`code=`): keep it off.
    logging.getLogger("aiohttp.access").disabled = True
    # The storage SDK logs request URLs and headers at INFO; SAS tokens would land in the log.
    logging.getLogger("azure").setLevel(logging.WARNING)
    # The worker's own log (its logger is "azure.functions") reaches the console, as the host shows it.
    logging.getLogger("azure.functions").setLevel(logging.INFO)
    logging.getLogger("azure.functions").addFilter(IndexedSummary())
    if verbose:
        logging.getLogger("devhost.worker").setLevel(logging.DEBUG)


async def serve(args: argparse.Namespace) -> None:
    log = logging.getLogger("devhost")
    app = await load_app(args.app_dir, settings_file=args.settings)
    log.info("Worker: %s (Python %s), app indexed: %d function(s)", app.worker.version,
             ".".join(map(str, sys.version_info[:3])), len(app.functions))
    data_dir = (args.data_dir or app.app_dir / ".devhost").resolve()
    keys = Keys.load(args.secrets_dir or data_dir / "secrets")
    base_url = f"http://{args.host}:{args.port}"
    runtime = DurableRuntime(app, data_dir, logging.getLogger("devhost.durable"), verbose=args.verbose)
    durable_api = DurableApi(runtime, app.config.hub_name, base_url,
                             system_key=keys.system_key() if keys.enabled else None)
    runtime.client_binding = durable_api.client_binding
    server = FunctionsServer(app, durable_api, keys, log)
    runner = web.AppRunner(server.web_app(), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, args.host, args.port).start()
    except OSError as error:
        await runner.cleanup()
        raise CannotListen(f"cannot listen on {args.host}:{args.port}: {error.strerror} "
                           "(another host running? choose another --port)") from None
    await durable_api.start()
    await runtime.start()
    server.running = True
    log.info("Functions:\n\n%s\n", "\n".join(describe_routes(server, base_url)))
    log.info("Task hub %s in %s", app.config.hub_name, data_dir)
    if keys.enabled:
        log.info("Function keys are required (from %s).", args.secrets_dir or data_dir / "secrets")
    else:
        log.info("No function keys configured: every route is open, as under `func start`.")
    log.info("Host started at %s (Ctrl-C to stop)", base_url)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("Stopping host")
    server.running = False
    await runner.shutdown()
    await runtime.stop()
    await durable_api.stop()
    await runner.cleanup()
    app.worker.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(message)s", stream=sys.stderr)
    _quiet_logs(args.verbose)
    try:
        asyncio.run(serve(args))
    except (TaskHubInUse, CannotListen, WorkerRefused) as refused:
        logging.getLogger("devhost").error("Cannot start: %s", refused)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
