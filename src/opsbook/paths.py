"""Where opsbook finds its project files and keeps its state."""

from __future__ import annotations

import os
from pathlib import Path

_MARKERS = ("ansible.cfg", "playbooks", "roles")


def _looks_like_root(path: Path) -> bool:
    return all((path / marker).exists() for marker in _MARKERS)


def project_root() -> Path:
    """The opsbook checkout: $OPSBOOK_ROOT, else the checkout this package lives in, else cwd."""
    env = os.environ.get("OPSBOOK_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve()
    for candidate in (*here.parents, *Path.cwd().resolve().parents, Path.cwd().resolve()):
        if _looks_like_root(candidate):
            return candidate
    return Path.cwd().resolve()


def state_dir() -> Path:
    """Gitignored per-checkout state: lab inventories and keys, run artifacts, locks."""
    path = Path(os.environ.get("OPSBOOK_STATE_DIR", project_root() / ".opsbook"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def playbooks_dir() -> Path:
    return project_root() / "playbooks"


def containers_conf() -> Path:
    """The podman configuration the lab needs on hosts without CAP_SYS_RESOURCE (see README)."""
    return Path(__file__).resolve().parent / "lab" / "containers.conf"
