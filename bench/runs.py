"""Time one playbook run, either with plain ansible-playbook or through the opsbook CLI.

Both report per-host recap counts without reading ansible's text output: ansible-playbook
runs through the tests' runner (tests/playbook_run.py, whose callback hands back the recap),
opsbook with `--json` (its summary line).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import playbook_run
from bench.cpu import busy_seconds
from opsbook.paths import playbooks_dir, project_root


@dataclass(frozen=True)
class Run:
    seconds: float
    returncode: int
    changed: dict[str, int]
    failed: dict[str, int]
    # machine-wide busy CPU seconds during the run (controller and lab nodes; see cpu.py)
    cpu_seconds: float = 0.0

    @property
    def total_changed(self) -> int:
        return sum(self.changed.values())

    def check(self, what: str, *, expect_changed: int | None = None) -> Run:
        if self.returncode != 0 or any(self.failed.values()):
            raise BenchError(f"{what}: run failed (rc {self.returncode}, failed {self.failed})")
        if expect_changed is not None and self.total_changed != expect_changed:
            raise BenchError(f"{what}: expected changed={expect_changed}, got {self.changed}")
        return self


class BenchError(RuntimeError):
    """A benchmark run did not do what it measures."""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("ANSIBLE_CONFIG", str(project_root() / "ansible.cfg"))
    return env


def _bin(name: str) -> str:
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else (shutil.which(name) or name)


def _extra_args(extra_vars: Mapping[str, object] | None) -> list[str]:
    return ["-e", json.dumps(dict(extra_vars))] if extra_vars else []


def _timed(
    cmd: list[str], env: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], float, float]:
    """Run `cmd`; return it with its wall seconds and the machine's busy CPU-seconds meanwhile."""
    started, cpu = time.perf_counter(), busy_seconds()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    return proc, time.perf_counter() - started, busy_seconds() - cpu


def ansible_playbook(
    playbook: str,
    inventory: Path,
    extra_vars: Mapping[str, object] | None = None,
    args: Sequence[str] = (),
) -> Run:
    """`playbook` with plain ansible-playbook; seconds are the ansible-playbook process's."""
    cpu = busy_seconds()
    result = playbook_run.ansible_playbook(
        playbooks_dir() / playbook,
        extra_vars,
        *args,
        inventory=inventory,
        # the stdout callback every committed figure was measured with (its output is unused)
        env={"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"},
        timeout=None,
    )
    cpu = busy_seconds() - cpu
    if result.stats is None:
        message = f"ansible-playbook {playbook}: no recap (rc {result.returncode})"
        raise BenchError(f"{message}\n{result.stderr[-2000:]}")
    return Run(
        result.seconds,
        result.returncode,
        {h: c["changed"] for h, c in result.stats.items()},
        {h: c["failed"] + c["unreachable"] for h, c in result.stats.items()},
        cpu,
    )


def opsbook_cli(
    command: str,
    inventory: Path,
    extra_vars: Mapping[str, object] | None = None,
    args: Sequence[str] = (),
) -> Run:
    cmd = [_bin("opsbook"), command, "-i", str(inventory), "--json", *_extra_args(extra_vars)]
    cmd += list(args)
    proc, seconds, cpu = _timed(cmd, _env())
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    summary = next((e for e in reversed(lines) if e.get("event") == "summary"), None)
    if summary is None:
        raise BenchError(f"opsbook {command}: no summary\n{proc.stderr[-2000:]}")
    hosts = summary["hosts"]
    return Run(
        seconds,
        proc.returncode,
        {h: c["changed"] for h, c in hosts.items()},
        {h: c["failed"] + c["unreachable"] for h, c in hosts.items()},
        cpu,
    )
