"""Helpers for the ssh role's lab tests: the playbook, fresh SSH logins, listening ports."""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opsbook.lab import lab as labmod
from opsbook.lab import sshkeys
from opsbook.lab.image import LAB_USER
from playbook_run import PlaybookResult, ansible_playbook

PLAYBOOK = Path(__file__).resolve().parent / "ssh.yml"


@dataclass(frozen=True)
class Run:
    rc: int
    out: str  # stdout and stderr
    result: PlaybookResult

    def recap(self, host: str) -> dict[str, int]:
        """`host`'s play recap counters (the test fails if the run has none for it)."""
        return self.result.host(host)


def playbook(lab: labmod.Lab, node: str, *args: str) -> Run:
    """tests/ssh/ssh.yml (discovery + the ssh role) against one node of the lab inventory."""
    proc = ansible_playbook(
        PLAYBOOK,
        None,
        "--limit",
        node,
        *args,
        inventory=lab.inventory,
        # Facts are cached by host name; lab node names repeat across labs.
        env={"ANSIBLE_CACHE_PLUGIN": "memory"},
    )
    return Run(proc.returncode, proc.stdout + proc.stderr, proc)


def ssh(lab: labmod.Lab, node: str, port: int, command: str) -> subprocess.CompletedProcess[str]:
    """A fresh SSH login (no multiplexing) as the lab user on `port`, running `command`."""
    return subprocess.run(
        [
            "ssh",
            *sshkeys.ssh_base_args(port),
            "-o",
            "ControlPath=none",
            f"{LAB_USER}@{lab.node(node).ip}",
            command,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def root(lab: labmod.Lab, node: str, port: int, command: str) -> str:
    """Run `command` as root over a fresh login on `port`; fail the test if it fails."""
    proc = ssh(lab, node, port, f"sudo -n sh -c {_quote(command)}")
    assert proc.returncode == 0, f"{command!r} on {node}:{port}: {proc.stderr}"
    return proc.stdout


def tcp_open(ip: str, port: int, timeout: float = 3) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=timeout):
            return True
    except OSError:
        return False


def sshd_ports(lab: labmod.Lab, node: str, port: int) -> set[int]:
    """Ports sshd (or systemd for a socket-activated sshd) listens on, read on the node."""
    out = root(lab, node, port, "ss -Htlnp")
    return {int(line.split()[3].rsplit(":", 1)[1]) for line in out.splitlines() if '"sshd"' in line}


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


class Chain:
    """Steps that run one after the other in a background thread, so that one node's sequence
    of playbook runs overlaps with the tests of another node. step(i) waits for step i's result
    (or re-raises its exception); after a failed step the later ones fail too."""

    def __init__(self, steps: Sequence[Callable[[], Any]]) -> None:
        self._steps = list(steps)
        self._futures: list[Future[Any]] = [Future() for _ in self._steps]
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for index, (step, future) in enumerate(zip(self._steps, self._futures, strict=True)):
            try:
                future.set_result(step())
            except BaseException as exc:  # handed to the test that waits for this step
                future.set_exception(exc)
                for later in self._futures[index + 1 :]:
                    later.set_exception(RuntimeError(f"not run: step {index} failed: {exc!r}"))
                return

    def step(self, index: int, timeout: float = 1200) -> Any:
        return self._futures[index].result(timeout)

    def join(self) -> None:
        self._thread.join()
