"""`opsbook schedule ...`: systemd timers on the operator machine that run opsbook jobs.

    opsbook schedule cf-refresh --every monthly|weekly|daily [-i INVENTORY] [-e VARS]
    opsbook schedule --list
    opsbook schedule cf-refresh --remove

Each job is a oneshot service plus a timer (`Persistent=true`, so a run missed while the
machine was off happens at the next boot, and a randomized delay). The service runs
`opsbook <job>`; a failed run exits non-zero, so the unit shows in `systemctl --failed` and
the journal (`journalctl -u opsbook-cf-refresh`). The refresh playbook itself posts failures
to `firewall_cloudflare_webhook_url` when that variable is set.

Units go to --unit-dir (default /etc/systemd/system, or $OPSBOOK_SYSTEMD_UNIT_DIR) and are
checked with `systemd-analyze verify` before they are enabled; when systemd is not running
on this machine they are written and verified but not enabled.
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from opsbook.cliparser import Subcommands
from opsbook.exitcodes import ExitCode
from opsbook.paths import project_root

DEFAULT_UNIT_DIR = Path("/etc/systemd/system")
PREFIX = "opsbook-"


@dataclass(frozen=True)
class Job:
    name: str
    description: str
    command: tuple[str, ...]


JOBS = {
    "cf-refresh": Job(
        "cf-refresh",
        "opsbook: refresh the Cloudflare ranges allowed on HTTPS (ufw)",
        ("cf-refresh",),
    ),
}
# OnCalendar value and the randomized delay for each cadence.
EVERY = {
    "monthly": ("monthly", "6h"),
    "weekly": ("weekly", "4h"),
    "daily": ("daily", "1h"),
}


class ScheduleError(RuntimeError):
    """A schedule operation failed; the message says what and why."""


def unit_dir(args: argparse.Namespace) -> Path:
    if args.unit_dir:
        return Path(args.unit_dir)
    return Path(os.environ.get("OPSBOOK_SYSTEMD_UNIT_DIR", str(DEFAULT_UNIT_DIR)))


def opsbook_executable() -> Path:
    """Absolute path of the `opsbook` console script the units run (must exist now)."""
    candidates = [shutil.which("opsbook"), str(Path(sys.executable).parent / "opsbook")]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return Path(candidate).resolve() if Path(candidate).is_symlink() else Path(candidate)
    raise ScheduleError("cannot find the `opsbook` executable to schedule (is the venv active?)")


def run_user() -> str | None:
    """The user the service runs as (whose SSH key reaches the nodes); None for root."""
    user = os.environ.get("SUDO_USER") or getpass.getuser()
    return None if user == "root" else user


def render_service(
    job: Job, executable: Path, args: list[str], root: Path, user: str | None
) -> str:
    # systemd unquotes like a shell (single quotes work) but expands % specifiers and $VARS.
    command = " ".join(
        shlex.quote(a).replace("%", "%%").replace("$", "$$")
        for a in [str(executable), *job.command, *args]
    )
    lines = [
        f"# Written by `opsbook schedule`; remove with `opsbook schedule {job.name} --remove`.",
        "[Unit]",
        f"Description={job.description}",
        "Wants=network-online.target",
        "After=network-online.target",
        "",
        "[Service]",
        "Type=oneshot",
        f"WorkingDirectory={root}",
        f"Environment=OPSBOOK_ROOT={root}",
        "Environment=PYTHONUNBUFFERED=1",
        *([f"User={user}"] if user else []),
        # A failed run exits non-zero: the unit is marked failed (systemctl --failed, journal).
        f"ExecStart={command}",
        "TimeoutStartSec=30min",
        "",
    ]
    return "\n".join(lines)


def render_timer(job: Job, every: str) -> str:
    calendar, delay = EVERY[every]
    return "\n".join(
        [
            f"# Written by `opsbook schedule`; remove with `opsbook schedule {job.name} --remove`.",
            "[Unit]",
            f"Description={job.description} ({every})",
            "",
            "[Timer]",
            f"OnCalendar={calendar}",
            "Persistent=true",
            f"RandomizedDelaySec={delay}",
            f"Unit={PREFIX}{job.name}.service",
            "",
            "[Install]",
            "WantedBy=timers.target",
            "",
        ]
    )


def systemd_running() -> bool:
    return Path("/run/systemd/system").is_dir()


def verify(paths: list[Path]) -> None:
    """`systemd-analyze verify` the unit files; ScheduleError with its output on failure."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        raise ScheduleError("systemd-analyze is not installed: cannot verify the units")
    proc = subprocess.run(
        [analyze, "verify", *map(str, paths)], capture_output=True, text=True, check=False
    )
    # verify also warns about unrelated system units; only lines about ours are fatal.
    ours = [
        line
        for line in (proc.stdout + proc.stderr).splitlines()
        if any(p.name in line or str(p) in line for p in paths)
    ]
    if proc.returncode != 0 or ours:
        raise ScheduleError(
            "systemd-analyze verify refused the units:\n"
            + "\n".join(ours or [(proc.stderr or proc.stdout).strip()])
        )


def _systemctl(*args: str) -> None:
    proc = subprocess.run(["systemctl", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ScheduleError(f"systemctl {' '.join(args)} failed: {proc.stderr.strip()}")


def install(
    job: Job,
    every: str,
    directory: Path,
    extra_args: list[str],
    enable: bool = True,
    log: Callable[[str], object] = print,
) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    service = directory / f"{PREFIX}{job.name}.service"
    timer = directory / f"{PREFIX}{job.name}.timer"
    backup = {p: p.read_text() for p in (service, timer) if p.exists()}
    service.write_text(
        render_service(job, opsbook_executable(), extra_args, project_root(), run_user())
    )
    timer.write_text(render_timer(job, every))
    try:
        verify([service, timer])
    except ScheduleError:
        for path in (service, timer):
            if path in backup:
                path.write_text(backup[path])
            else:
                path.unlink()
        raise
    if enable and systemd_running() and directory == DEFAULT_UNIT_DIR:
        _systemctl("daemon-reload")
        _systemctl("enable", "--now", timer.name)
        log(f"{timer.name}: enabled, runs `opsbook {job.name}` {every}")
    else:
        log(
            f"{timer.name}: written to {directory} and verified"
            + ("" if systemd_running() else " (systemd is not running here: not enabled)")
        )
    return [service, timer]


def remove(job: Job, directory: Path, log: Callable[[str], object] = print) -> bool:
    service = directory / f"{PREFIX}{job.name}.service"
    timer = directory / f"{PREFIX}{job.name}.timer"
    if not timer.exists() and not service.exists():
        log(f"{job.name}: not scheduled (no {timer.name} in {directory})")
        return False
    live = systemd_running() and directory == DEFAULT_UNIT_DIR
    if live:
        _systemctl("disable", "--now", timer.name)
    for path in (timer, service):
        if path.exists():
            path.unlink()
    if live:
        _systemctl("daemon-reload")
    log(f"{job.name}: schedule removed")
    return True


def scheduled(directory: Path) -> list[dict[str, str]]:
    rows = []
    for timer in sorted(directory.glob(f"{PREFIX}*.timer")):
        text = timer.read_text()
        calendar = re.search(r"^OnCalendar=(.*)$", text, re.M)
        service = timer.with_suffix(".service")
        command = (
            re.search(r"^ExecStart=(.*)$", service.read_text(), re.M) if service.exists() else None
        )
        rows.append(
            {
                "job": timer.stem.removeprefix(PREFIX),
                "every": calendar.group(1) if calendar else "?",
                "command": command.group(1) if command else "(service missing)",
                "timer": str(timer),
            }
        )
    return rows


def add_parser(subparsers: Subcommands) -> argparse.ArgumentParser:
    sched = subparsers.add_parser(
        "schedule",
        help="systemd timers on this machine that run opsbook jobs (cf-refresh)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sched.add_argument("job", nargs="?", choices=sorted(JOBS), help="the job to schedule")
    sched.add_argument("--every", choices=sorted(EVERY), help="how often the job runs")
    sched.add_argument("--list", action="store_true", help="list the scheduled jobs")
    sched.add_argument("--remove", action="store_true", help="remove the job's timer and service")
    sched.add_argument(
        "-i", "--inventory", action="append", default=[], help="inventory the job uses (repeatable)"
    )
    sched.add_argument(
        "-e",
        "--extra-vars",
        action="append",
        default=[],
        help="extra vars for the job (repeatable)",
    )
    sched.add_argument("--unit-dir", help=f"where the unit files go (default {DEFAULT_UNIT_DIR})")
    sched.add_argument(
        "--no-enable", action="store_true", help="write and verify the units, do not enable them"
    )
    sched.set_defaults(handler=run)
    return sched


def run(args: argparse.Namespace) -> int:
    directory = unit_dir(args)
    try:
        if args.list:
            rows = scheduled(directory)
            if not rows:
                print(f"no opsbook jobs scheduled in {directory}")
            for row in rows:
                print(f"{row['job']}  every={row['every']}  {row['command']}  ({row['timer']})")
            return ExitCode.OK
        if args.job is None:
            print("opsbook schedule: name a job (cf-refresh) or use --list", file=sys.stderr)
            return ExitCode.INVALID
        job = JOBS[args.job]
        if args.remove:
            remove(job, directory)
            return ExitCode.OK
        if args.every is None:
            print("opsbook schedule: --every monthly|weekly|daily is required", file=sys.stderr)
            return ExitCode.INVALID
        extra: list[str] = []
        for inventory in args.inventory:
            extra += ["-i", str(Path(inventory).resolve())]
        for value in args.extra_vars:
            extra += ["-e", value]
        install(job, args.every, directory, extra, enable=not args.no_enable)
        return ExitCode.OK
    except (ScheduleError, OSError) as exc:
        print(f"opsbook schedule: {exc}", file=sys.stderr)
        return ExitCode.ERROR
