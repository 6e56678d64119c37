"""Find and kill what is left of a cancelled run (Linux /proc; by an environment marker).

ansible-runner kills ansible-playbook's process group on cancel. Processes that left that group
(ssh ControlPersist masters, daemonised module children) still carry the run's environment, so
they are found by the `OPSBOOK_RUN_ID=<id>` variable the driver sets for every run.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

MARKER = "OPSBOOK_RUN_ID"


def processes_with_env(name: str, value: str) -> list[int]:
    needle = f"{name}={value}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def kill_run_processes(run_id: str, timeout: float = 3.0) -> list[int]:
    """SIGKILL every process of the run until none is left (or `timeout`); the killed pids."""
    killed: list[int] = []
    deadline = time.monotonic() + timeout
    while True:
        pids = processes_with_env(MARKER, run_id)
        if not pids or time.monotonic() > deadline:
            return killed
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
