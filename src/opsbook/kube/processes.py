"""Background processes with pid files, so a later command can find and stop them.

Each process runs in its own session (process group = its pid), logs to `logs/<name>.log` and
is recorded in `run/<name>.pid` as `<pid> <start time> <executable>`. The start time (field 22
of /proc/<pid>/stat) and the executable tell a recorded process from an unrelated one that got
the same pid later, so `stop` never signals a stranger.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Proc:
    name: str
    pid: int
    start_time: str
    executable: str
    log: Path


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name, or None if there is no such pid."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid ..."; comm may contain spaces and parentheses.
    return raw[raw.rindex(")") + 2 :].split()


def _start_time(pid: int) -> str | None:
    fields = _stat(pid)
    return fields[19] if fields else None  # field 22 overall: starttime in clock ticks


def alive(proc: Proc) -> bool:
    """True while the recorded process runs (not reaped, not a zombie, not a reused pid)."""
    fields = _stat(proc.pid)
    if fields is None or fields[0] in ("Z", "X"):
        return False
    return fields[19] == proc.start_time


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def spawn(
    name: str,
    argv: Sequence[str],
    directory: Path,
    *,
    env: Mapping[str, str] | None = None,
    die_with_parent: bool = False,
) -> Proc:
    """Start `argv` detached (new session, stdin from /dev/null, output to its log file).

    die_with_parent: the kernel kills it (SIGKILL) when the calling thread exits, so a test run
    that dies without tearing down leaves nothing behind. Leave it off for `opsbook lab kube up`,
    whose processes must outlive the command.
    """
    logs = directory / "logs"
    run = directory / "run"
    logs.mkdir(parents=True, exist_ok=True)
    run.mkdir(parents=True, exist_ok=True)
    log = logs / f"{name}.log"
    with log.open("ab") as out:
        child = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            start_new_session=True,
            preexec_fn=_die_with_parent if die_with_parent else None,
            close_fds=True,
        )
    start = _start_time(child.pid) or ""
    proc = Proc(name, child.pid, start, os.path.realpath(argv[0]), log)
    (run / f"{name}.pid").write_text(f"{proc.pid} {proc.start_time} {proc.executable}\n")
    return proc


def load(directory: Path) -> list[Proc]:
    """Every process recorded under `directory/run`, in start order."""
    procs = []
    for pidfile in (directory / "run").glob("*.pid"):
        try:
            pid, start, executable = pidfile.read_text().split(maxsplit=2)
            procs.append(
                Proc(
                    pidfile.stem,
                    int(pid),
                    start,
                    executable.strip(),
                    directory / "logs" / f"{pidfile.stem}.log",
                )
            )
        except (OSError, ValueError):
            continue
    return sorted(procs, key=lambda p: int(p.start_time or 0))


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def stop(proc: Proc, timeout: float = 10) -> None:
    """SIGTERM its process group, SIGKILL after `timeout`; remove the pid file."""
    pidfile = proc.log.parent.parent / "run" / f"{proc.name}.pid"
    if alive(proc):
        _signal(proc, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _reap(proc.pid)
            if not alive(proc):
                break
            time.sleep(0.05)
        else:
            _signal(proc, signal.SIGKILL)
            deadline = time.monotonic() + 5
            while alive(proc) and time.monotonic() < deadline:
                _reap(proc.pid)
                time.sleep(0.05)
    _reap(proc.pid)
    if alive(proc):
        raise ProcessLookupError(f"{proc.name} (pid {proc.pid}) survived SIGKILL")
    _wait_gone(proc)
    pidfile.unlink(missing_ok=True)


def _wait_gone(proc: Proc, timeout: float = 10) -> None:
    """Wait until the process is reaped, not just a zombie: a multi-threaded process's leader
    is a zombie before its other threads have exited, and until they have, its sockets stay
    bound (the kernel lets the leader be reaped only once the whole thread group is gone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(proc.pid)
        if _start_time(proc.pid) != proc.start_time:
            return
        time.sleep(0.05)


def _signal(proc: Proc, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        # The process leads its own group (start_new_session); signal the group so nothing it
        # started survives it. Fall back to the pid if the group is gone.
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            os.kill(proc.pid, sig)


def tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])
