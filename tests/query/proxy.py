"""A DICOMweb server that silently ignores one filter: a small HTTP proxy in front of a real one that drops a
query parameter before passing each GET on (servers do this with filters they do not support)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import requests


def relay(handler: BaseHTTPRequestHandler, reply: requests.Response) -> None:
    """Answer `handler`'s request with the upstream `reply`: its status, Content-Type and body."""
    handler.send_response(reply.status_code)
    if "Content-Type" in reply.headers:
        handler.send_header("Content-Type", reply.headers["Content-Type"])
    handler.send_header("Content-Length", str(len(reply.content)))
    handler.end_headers()
    handler.wfile.write(reply.content)


class FilterDroppingProxy:
    """Forwards GETs on 127.0.0.1:<port> to `upstream`, without the query parameter `dropped`."""

    def __init__(self, upstream: str, dropped: str):
        self.upstream, self.dropped, self.forwarded = upstream.rstrip("/"), dropped, 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                kept = [(k, v) for k, v in parse_qsl(parts.query) if k.upper() != proxy.dropped.upper()]
                proxy.forwarded += len(kept) != len(parse_qsl(parts.query))
                reply = requests.get(f"{proxy.upstream}{parts.path.removeprefix('/dicom-web')}",
                                     params=urlencode(kept, safe="*?", quote_via=quote), timeout=60,
                                     headers={k: v for k, v in self.headers.items() if k.lower() != "host"})
                relay(self, reply)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/dicom-web"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
