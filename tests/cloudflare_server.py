"""The one local stand-in for Cloudflare's range lists, for the firewall tests and the
benchmarks: an HTTP server on 127.0.0.1 with the JSON API document and the two text lists,
any route's status, headers, delay or truncation set by the test, and every POST (the
refresh's failure webhook) recorded."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

JSON_PATH = "/client/v4/ips"


@dataclass
class Route:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    # Content-Length larger than the body: the client sees the connection close early.
    truncate_to: int | None = None


@dataclass
class CfServer:
    """Serves `routes` on 127.0.0.1; records every POST (the webhook)."""

    port: int
    routes: dict[str, Route] = field(default_factory=dict)
    posts: list[tuple[str, bytes]] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def serve_lists(self, v4: list[str], v6: list[str], etag: str = "e1") -> None:
        """Serve these lists from the JSON API and as the two text lists."""
        doc = {
            "success": True,
            "errors": [],
            "messages": [],
            "result": {"ipv4_cidrs": v4, "ipv6_cidrs": v6, "etag": etag},
        }
        self.routes[JSON_PATH] = Route(
            body=json.dumps(doc).encode(), headers={"Content-Type": "application/json"}
        )
        self.routes["/ips-v4"] = Route(body="\n".join(v4).encode(), headers={"ETag": etag + "4"})
        self.routes["/ips-v6"] = Route(body="\n".join(v6).encode(), headers={"ETag": etag + "6"})

    def sources(self, kinds: tuple[str, ...] = ("json", "text")) -> list[dict[str, str]]:
        """`firewall_cloudflare_sources` pointing at this server, in `kinds` order."""
        out = []
        if "json" in kinds:
            out.append({"type": "json", "url": self.url(JSON_PATH)})
        if "text" in kinds:
            out.append(
                {"type": "text", "ipv4_url": self.url("/ips-v4"), "ipv6_url": self.url("/ips-v6")}
            )
        return out


def _handler(server: CfServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            server.posts.append((self.path, self.rfile.read(length)))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def do_GET(self) -> None:
            route = server.routes.get(self.path)
            if route is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if route.delay:
                time.sleep(route.delay)
            self.send_response(route.status)
            for key, value in route.headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(route.body)))
            self.end_headers()
            body = route.body
            if route.truncate_to is not None:
                body = body[: route.truncate_to]
            with contextlib.suppress(OSError):
                self.wfile.write(body)
            if route.truncate_to is not None:
                self.close_connection = True

    return Handler


@contextlib.contextmanager
def cloudflare_server() -> Iterator[CfServer]:
    """A running server (no routes yet) for the `with` block; shut down and closed after it."""
    state = CfServer(port=0)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.port = httpd.server_address[1]
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
