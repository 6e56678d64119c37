"""The typed outcome of one playbook run, its exit code, and the error raised before a run.

How a finished run maps to an exit code (`exit_code_for`; the codes: opsbook.exitcodes), in
order:

1. runner status ``canceled`` -> 130.
2. the run produced a recap (the ``playbook_on_stats`` event): any unreachable host -> 3,
   else any failed host -> 2, else rc 0 -> 0, else 1.
3. no recap: rc 0 -> 0; rc 4 or 5 (ansible's parser and option errors), rc 127 (no
   ansible-playbook), or any non-zero rc before a task started -> 4; else -> 1.

ansible-playbook itself uses rc 4 both for "parser error" and "unreachable hosts", which
is why the recap, not rc, decides between 3 and 4.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from opsbook.exitcodes import ExitCode

RECAP_FIELDS = ("ok", "changed", "failed", "unreachable", "skipped", "rescued", "ignored")


class InvalidInput(ValueError):
    """Bad input or configuration (exit code 4); the message is meant for the user as is."""


_ANSIBLE_INPUT_ERRORS = frozenset({4, 5, 127})


def exit_code_for(
    *,
    status: str,
    rc: int | None,
    have_recap: bool,
    failed_hosts: int,
    unreachable_hosts: int,
    tasks_started: bool,
) -> ExitCode:
    """The exit code of a finished run (see the module docstring for the rules)."""
    if status == "canceled":
        return ExitCode.CANCELLED
    if have_recap:
        if unreachable_hosts:
            return ExitCode.UNREACHABLE
        if failed_hosts:
            return ExitCode.FAILED
        return ExitCode.OK if rc == 0 else ExitCode.ERROR
    if rc == 0 and status == "successful":
        return ExitCode.OK
    if rc in _ANSIBLE_INPUT_ERRORS or (status == "failed" and not tasks_started):
        return ExitCode.INVALID
    return ExitCode.ERROR


@dataclass(frozen=True)
class HostRecap:
    """One host's line of the play recap (counts as ansible reports them; ok includes changed)."""

    host: str
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    rescued: int = 0
    ignored: int = 0

    def counts(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in RECAP_FIELDS}


@dataclass(frozen=True)
class Failure:
    """A task that failed on a host (not ignored), or a host that could not be reached."""

    host: str
    task: str
    message: str
    play: str = ""
    unreachable: bool = False
    task_path: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "play": self.play,
            "task": self.task,
            "msg": self.message,
            "unreachable": self.unreachable,
            "task_path": self.task_path,
        }


@dataclass(frozen=True)
class RunResult:
    """What `run_playbook` returns.

    status: ansible-runner's final status: successful, failed, canceled or timeout.
    rc: ansible-playbook's return code (254 when runner killed it, None if it never ran).
    hosts: the recap from the playbook_on_stats event, by host name (empty without a recap).
    failures: failed tasks (ignore_errors excluded) and unreachable hosts, in event order.
    error: ansible's own error text when it stopped before or outside any task.
    run_dir: the run's directory, runner's private data dir; artifacts: runner's artifact
        dir, the same directory (see opsbook.driver.run).
    """

    status: str
    rc: int | None
    hosts: dict[str, HostRecap]
    failures: list[Failure]
    duration: float
    run_dir: Path
    artifacts: Path
    have_recap: bool = False
    tasks_started: bool = False
    error: str | None = None
    command: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> ExitCode:
        return exit_code_for(
            status=self.status,
            rc=self.rc,
            have_recap=self.have_recap,
            failed_hosts=sum(1 for h in self.hosts.values() if h.failed),
            unreachable_hosts=sum(1 for h in self.hosts.values() if h.unreachable),
            tasks_started=self.tasks_started,
        )

    @property
    def unreachable_hosts(self) -> list[str]:
        return sorted(name for name, h in self.hosts.items() if h.unreachable)

    @property
    def failed_hosts(self) -> list[str]:
        return sorted(name for name, h in self.hosts.items() if h.failed)

    def summary(self) -> dict[str, Any]:
        """The final `{"event": "summary", ...}` object of `opsbook --json`."""
        return {
            "event": "summary",
            "status": self.status,
            "rc": self.rc,
            "exit_code": int(self.exit_code),
            "hosts": {name: recap.counts() for name, recap in sorted(self.hosts.items())},
            "failures": [f.to_json() for f in self.failures],
            "duration": round(self.duration, 3),
            "artifacts": str(self.artifacts),
            "run_dir": str(self.run_dir),
            "error": self.error,
        }

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["run_dir"] = str(self.run_dir)
        data["artifacts"] = str(self.artifacts)
        data["exit_code"] = int(self.exit_code)
        return data
