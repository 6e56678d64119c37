"""The one way the tests run ansible-playbook (the driver's own tests go through the driver).

The checkout's ansible.cfg and the venv's ansible-playbook, no colour, stdin closed, and the
extra vars in a temporary JSON file, never on the command line, where a secret would show in
`ps` and in a failure message.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def ansible_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a test's ansible run: this checkout's settings, then `extra`."""
    env = dict(os.environ)
    env.update(
        {
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
            "OPSBOOK_ROOT": str(ROOT),
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_NOCOLOR": "1",
            "PATH": f"{VENV_BIN}:{env.get('PATH', '')}",
        }
    )
    env.pop("AWS_CA_BUNDLE", None)
    env.update(extra or {})
    return env


def ansible_playbook(
    playbook: Path,
    extra_vars: Mapping[str, Any] | None = None,
    *args: str,
    inventory: Path | Sequence[Path] = (),
    env: Mapping[str, str] | None = None,
    timeout: float = 900,
) -> subprocess.CompletedProcess[str]:
    """Run `playbook` with `extra_vars` (from a temporary JSON file), each of `inventory` as
    an `-i`, then `args`; the output is captured, the return code not checked."""
    inventories = [inventory] if isinstance(inventory, Path) else list(inventory)
    argv = [str(VENV_BIN / "ansible-playbook"), str(playbook)]
    argv += [arg for inv in inventories for arg in ("-i", str(inv))]
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="extra-vars-") as f:
        json.dump(dict(extra_vars or {}), f)
        f.flush()
        return subprocess.run(
            [*argv, "-e", f"@{f.name}", *args],
            env=ansible_env(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
        )
