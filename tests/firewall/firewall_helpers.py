"""Helpers for the firewall tests: the role's modules as importable Python, a local HTTP server
on 127.0.0.1 that serves Cloudflare-style range lists (and receives webhook posts), and a
playbook runner."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType

from opsbook.paths import project_root

ROOT = project_root()
LIBRARY = ROOT / "roles" / "firewall" / "library"

CF_V4 = [
    "173.245.48.0/20", "103.21.244.0/22", "103.22.200.0/22", "103.31.4.0/22",
    "141.101.64.0/18", "108.162.192.0/18", "190.93.240.0/20", "188.114.96.0/20",
    "197.234.240.0/22", "198.41.128.0/17", "162.158.0.0/15", "104.16.0.0/13",
    "104.24.0.0/14", "172.64.0.0/13", "131.0.72.0/22",
]  # fmt: skip
CF_V6 = [
    "2400:cb00::/32", "2606:4700::/32", "2803:f800::/32", "2405:b500::/32",
    "2405:8100::/32", "2a06:98c0::/29", "2c0f:f248::/32",
]  # fmt: skip


def load_module(name: str) -> ModuleType:
    """Import roles/firewall/library/<name>.py (the logic is plain Python)."""
    spec = importlib.util.spec_from_file_location(f"fw_{name}", LIBRARY / f"{name}.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


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
        doc = {
            "success": True,
            "errors": [],
            "messages": [],
            "result": {"ipv4_cidrs": v4, "ipv6_cidrs": v6, "etag": etag},
        }
        self.routes["/client/v4/ips"] = Route(
            body=json.dumps(doc).encode(), headers={"Content-Type": "application/json"}
        )
        self.routes["/ips-v4"] = Route(body="\n".join(v4).encode(), headers={"ETag": etag + "4"})
        self.routes["/ips-v6"] = Route(body="\n".join(v6).encode(), headers={"ETag": etag + "6"})

    def sources(self, kinds: tuple[str, ...] = ("json", "text")) -> list[dict[str, str]]:
        out = []
        if "json" in kinds:
            out.append({"type": "json", "url": self.url("/client/v4/ips")})
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


def start_server() -> tuple[CfServer, ThreadingHTTPServer]:
    state = CfServer(port=0)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.port = httpd.server_address[1]
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    return state, httpd


REFRESH = ROOT / "playbooks" / "ufw-cf-refresh.yml"
FIREWALL = Path(__file__).resolve().parent / "playbooks" / "firewall.yml"


@dataclass(frozen=True)
class NodeState:
    """A node's ufw state, byte for byte."""

    user_rules: str
    user6_rules: str
    state_file: str
    status: str

    def cloudflare_sources(self) -> list[str]:
        out = []
        for line in self.status.splitlines():
            if line.rstrip().endswith("# opsbook:firewall:cloudflare"):
                words = line.split()
                out.append(words[words.index("#") - 1])
        return out

    def rule_lines(self) -> list[str]:
        """`ufw status` rule lines, whitespace-normalized."""
        lines = self.status.splitlines()
        start = next(i for i, line in enumerate(lines) if line.startswith("--"))
        return [" ".join(line.split()) for line in lines[start + 1 :] if line.strip()]


SEP = "=====opsbook-fw====="


def node_state(lab: object, node: str) -> NodeState:
    from opsbook.lab import lab as labmod

    script = (
        f"cat /etc/ufw/user.rules; echo {SEP}; cat /etc/ufw/user6.rules; echo {SEP}; "
        f"cat /var/lib/opsbook/firewall-cloudflare.json 2>/dev/null; echo {SEP}; ufw status"
    )
    proc = labmod.run(lab, node, script, sudo=True, timeout=60)  # type: ignore[arg-type]
    parts = proc.stdout.split(SEP + "\n")
    assert len(parts) == 4, proc.stdout
    return NodeState(*parts)


def lab_states(lab: object) -> dict[str, NodeState]:
    """Every node's state, read over SSH from all nodes at once."""
    names = [n.name for n in lab.nodes]  # type: ignore[attr-defined]
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        return dict(zip(names, pool.map(lambda name: node_state(lab, name), names), strict=True))
