"""The lab's SSH key pair (generated once per checkout, never committed)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from opsbook.paths import state_dir


def key_path() -> Path:
    return state_dir() / "ssh" / "id_ed25519"


def ensure_key() -> Path:
    """Return the private key path, generating an ed25519 pair on first use."""
    key = key_path()
    if not key.exists():
        key.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "opsbook-lab", "-f", str(key)],
            check=True,
        )
    return key


def public_key() -> str:
    return Path(str(ensure_key()) + ".pub").read_text().strip()


def ssh_base_args(port: int = 22) -> list[str]:
    """ssh options for lab nodes: the lab key only, host keys not pinned (nodes are rebuilt)."""
    return [
        "-i",
        str(ensure_key()),
        "-p",
        str(port),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "ConnectTimeout=3",
    ]
