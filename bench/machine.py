"""Describe the machine and the versions a benchmark ran with."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from typing import Any

from opsbook.paths import project_root


def _first_line(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=30)
    except OSError:
        return "not found"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else ""


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _memory_gib() -> float:
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return round(pages / 2**30, 1)


def describe() -> dict[str, Any]:
    root = project_root()
    return {
        "machine": {
            "cpu": _cpu_model(),
            "cores": os.cpu_count(),
            "memory_gib": _memory_gib(),
            "kernel": platform.release(),
            "os": _first_line(["sh", "-c", ". /etc/os-release; echo $PRETTY_NAME"]),
        },
        "versions": {
            "python": platform.python_version(),
            "ansible": metadata.version("ansible"),
            "ansible-core": metadata.version("ansible-core"),
            "ansible-runner": metadata.version("ansible-runner"),
            "podman": _first_line(["podman", "--version"]),
            "opsbook": _first_line(["git", "-C", str(root), "rev-parse", "--short", "HEAD"]),
        },
    }
