"""Helpers for the firewall tests: the role's modules as importable Python, Cloudflare's
ranges, and the nodes' ufw state. (The local Cloudflare list server is tests/cloudflare_server.py,
the playbook runner tests/playbook_run.py.)"""

from __future__ import annotations

import importlib.util
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
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
