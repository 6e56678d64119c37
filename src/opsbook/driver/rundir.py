"""Per-run private data dirs under the gitignored state dir, and their rotation."""

from __future__ import annotations

import re
import secrets
import shutil
from datetime import UTC, datetime
from pathlib import Path

from opsbook.paths import state_dir

KEEP_RUNS = 20
RUN_ID = re.compile(r"^\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{6}$")


def runs_dir() -> Path:
    return state_dir() / "runs"


def new_run_id() -> str:
    """Sortable by start time: 20260127T063624.123456Z-1a2b3c."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S.%fZ}-{secrets.token_hex(3)}"


def create_run_dir(keep: int = KEEP_RUNS) -> tuple[Path, str]:
    """A fresh private data dir (0700) for one run, after rotating old ones: (path, run id)."""
    root = runs_dir()
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    run_id = new_run_id()
    path = root / run_id
    path.mkdir(mode=0o700)
    rotate(keep, root)
    return path, run_id


def rotate(keep: int = KEEP_RUNS, root: Path | None = None) -> list[Path]:
    """Remove all but the newest `keep` run dirs (by run id); returns the removed ones."""
    base = root or runs_dir()
    if keep < 1 or not base.is_dir():
        return []
    runs = sorted(p for p in base.iterdir() if p.is_dir() and RUN_ID.match(p.name))
    old = runs[:-keep]
    for path in old:
        shutil.rmtree(path, ignore_errors=True)
    return old
