"""The probe's clock check (plugins/module_utils/opsbook_probe.py clock_state), the one time-sync
check of os_baseline and k3s, against stand-in timedatectl and systemd-detect-virt programs (the
lab's containers share the host's clock, so there the real answer is never acted on)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load_probe() -> ModuleType:
    path = ROOT / "plugins" / "module_utils" / "opsbook_probe.py"
    spec = importlib.util.spec_from_file_location("opsbook_probe", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def programs(tmp: Path, virt: str, timedatectl: str | None) -> dict[str, str]:
    found = {}
    for name, body in (("systemd-detect-virt", virt), ("timedatectl", timedatectl)):
        if body is not None:
            prog = tmp / name
            prog.write_text(f"#!/bin/sh\n{body}\n")
            prog.chmod(0o755)
            found[name] = str(prog)
    return found


@pytest.mark.parametrize(
    ("virt", "timedatectl", "want"),
    [
        ("echo none; exit 1", "echo yes", {"container": False, "synchronized": True}),
        ("echo none; exit 1", "echo no", {"container": False, "synchronized": False}),
        ("echo podman", "echo no", {"container": True, "synchronized": False}),
        (
            "echo none; exit 1",
            "echo 'Failed to connect to bus' >&2; exit 1",
            {"container": False, "synchronized": None, "detail": "Failed to connect to bus"},
        ),
        (
            "echo none; exit 1",
            None,
            {"container": False, "synchronized": None, "detail": "timedatectl: not found"},
        ),
    ],
)
def test_clock_state(tmp_path: Path, virt: str, timedatectl: str | None, want: dict) -> None:
    found = programs(tmp_path, virt, timedatectl)
    state = load_probe().clock_state(found.get)
    assert {k: state[k] for k in want} == want
    if want["synchronized"] is not None:
        assert state["detail"] == ""
