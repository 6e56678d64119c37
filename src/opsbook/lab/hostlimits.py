"""Kernel limits on the controller that many systemd node containers need.

systemd, journald, logind and the other daemons in every node container hold inotify instances
(about 7 per node here), all counted against root's `fs.inotify.max_user_instances`, which is
128 on Debian. Past that, a new container's systemd exits at start (podman shows "Exited (255)")
and nothing says why. kind documents the same limit for its node containers:
https://kind.sigs.k8s.io/docs/user/known-issues/#pod-errors-due-to-too-many-open-files
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

INOTIFY = Path("/proc/sys/fs/inotify")
# What kind recommends; enough for the largest lab here (the 12-node benchmark beside a
# 3- and a 6-node lab, plus two molecule scenarios).
WANTED = {"max_user_instances": 1024, "max_user_watches": 524288}


class HostLimitError(RuntimeError):
    """A limit is too low and cannot be raised from here."""


def ensure_inotify(log: Callable[[str], None], root: Path = INOTIFY) -> None:
    """Raise the inotify limits to WANTED where they are lower (the lab runs as root)."""
    for name, wanted in WANTED.items():
        path = root / name
        try:
            current = int(path.read_text())
        except (OSError, ValueError):
            continue  # not Linux, or not readable: nothing to check
        if current >= wanted:
            continue
        try:
            path.write_text(f"{wanted}\n")
        except OSError as exc:
            raise HostLimitError(
                f"fs.inotify.{name} is {current}: too low for the lab's systemd containers "
                f"(about 7 inotify instances each); run `sysctl -w fs.inotify.{name}={wanted}` "
                f"as root ({exc.strerror})"
            ) from exc
        log(f"raised fs.inotify.{name} from {current} to {wanted} for the lab's systemd nodes")
