"""Serve Cloudflare-style range lists on 127.0.0.1 for the refresh benchmark."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ListServer:
    """The JSON API document (`/client/v4/ips`) for whatever lists were set last."""

    def __init__(self) -> None:
        self.body = b"{}"
        self.port = 0

    def serve(self, v4: list[str], v6: list[str], etag: str) -> None:
        doc = {"success": True, "result": {"ipv4_cidrs": v4, "ipv6_cidrs": v6, "etag": etag}}
        self.body = json.dumps(doc).encode()

    def sources(self) -> list[dict[str, str]]:
        return [{"type": "json", "url": f"http://127.0.0.1:{self.port}/client/v4/ips"}]


@contextmanager
def list_server() -> Iterator[ListServer]:
    state = ListServer()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            return None

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(state.body)))
            self.end_headers()
            self.wfile.write(state.body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
