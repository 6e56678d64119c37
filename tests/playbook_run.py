"""The one way the tests and the benchmarks run ansible-playbook (the driver's own tests go
through the driver).

The checkout's ansible.cfg and the venv's ansible-playbook, no colour, stdin closed, and the
extra vars in a temporary JSON file, never on the command line, where a secret would show in
`ps` and in a failure message. ansible's own output stays on stdout (the tests assert on its
messages); the play recap comes back as data, written by the `recap_file` callback
(tests/callback_plugins/), never parsed from the text.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
CALLBACK_PLUGINS = Path(__file__).resolve().parent / "callback_plugins"
RECAP_CALLBACK = "recap_file"

Recap = dict[str, dict[str, int]]


@dataclass(frozen=True)
class PlaybookResult:
    """One ansible-playbook run: its return code, output, wall time and play recap.

    stats: `{host: {"ok", "changed", "unreachable", "failed", "skipped", "rescued",
    "ignored"}}` as the PLAY RECAP counts them (ok includes changed), None when the run never
    reached the recap (a parse error, a missing file, --syntax-check).
    """

    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    stats: Recap | None

    @property
    def recap(self) -> Recap:
        """The recap; fails the test when the run did not get that far."""
        assert self.stats is not None, (
            f"no play recap (ansible-playbook rc {self.returncode}):\n"
            f"{self.stdout[-3000:]}\n{self.stderr[-2000:]}"
        )
        return self.stats

    def host(self, name: str) -> dict[str, int]:
        """`name`'s recap counters; fails the test when the recap has no such host."""
        recap = self.recap
        assert name in recap, f"no recap for {name} (only {sorted(recap)}):\n{self.stdout[-3000:]}"
        return recap[name]


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


def _with_recap_callback(env: dict[str, str], recap_file: Path) -> dict[str, str]:
    """`env` with the recap_file callback enabled (after any callbacks `env` enables)."""
    plugins = [p for p in env.get("ANSIBLE_CALLBACK_PLUGINS", "").split(os.pathsep) if p]
    enabled = [c for c in env.get("ANSIBLE_CALLBACKS_ENABLED", "").split(",") if c.strip()]
    return {
        **env,
        "ANSIBLE_CALLBACK_PLUGINS": os.pathsep.join([*plugins, str(CALLBACK_PLUGINS)]),
        "ANSIBLE_CALLBACKS_ENABLED": ",".join([*enabled, RECAP_CALLBACK]),
        "OPSBOOK_RECAP_FILE": str(recap_file),
    }


def ansible_playbook(
    playbook: Path,
    extra_vars: Mapping[str, Any] | None = None,
    *args: str,
    inventory: Path | Sequence[Path] = (),
    env: Mapping[str, str] | None = None,
    timeout: float | None = 900,
) -> PlaybookResult:
    """Run `playbook` with `extra_vars` (from a temporary JSON file), each of `inventory` as
    an `-i`, then `args`; the output is captured, the return code not checked."""
    inventories = [inventory] if isinstance(inventory, Path) else list(inventory)
    argv = [str(VENV_BIN / "ansible-playbook"), str(playbook)]
    argv += [arg for inv in inventories for arg in ("-i", str(inv))]
    with tempfile.TemporaryDirectory(prefix="playbook-run-") as tmp:
        extra_file, recap_file = Path(tmp) / "extra-vars.json", Path(tmp) / "recap.json"
        extra_file.write_text(json.dumps(dict(extra_vars or {})))
        argv += ["-e", f"@{extra_file}", *args]
        started = time.perf_counter()
        proc = subprocess.run(
            argv,
            env=_with_recap_callback(ansible_env(env), recap_file),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
        )
        seconds = time.perf_counter() - started
        stats = json.loads(recap_file.read_text()) if recap_file.exists() else None
    return PlaybookResult(argv, proc.returncode, proc.stdout, proc.stderr, seconds, stats)
