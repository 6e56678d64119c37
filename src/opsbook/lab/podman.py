"""Run podman with the lab's containers.conf."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence

from opsbook.paths import containers_conf


class PodmanError(RuntimeError):
    """A podman command failed; the message carries its stderr."""


def podman_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", str(containers_conf()))
    return env


def available() -> bool:
    return shutil.which("podman") is not None


def podman(
    *args: str,
    check: bool = True,
    input_text: str | None = None,
    timeout: float | None = 300,
) -> subprocess.CompletedProcess[str]:
    """Run `podman ARGS`, returning its output; raise PodmanError on failure when `check`."""
    cmd: Sequence[str] = ("podman", *args)
    proc = subprocess.run(
        cmd,
        env=podman_env(),
        input=input_text,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and proc.returncode != 0:
        raise PodmanError(f"{' '.join(cmd)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc
