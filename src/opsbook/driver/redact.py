"""Keep secret values out of the terminal, the JSON output and the run's artifacts.

Layers (see runner.py for where each one is applied):
- ansible censors `no_log` results itself; ansible-runner's callback keeps that censoring.
- the run's environment never leaves memory: `redact_env` replaces every value but a few
  harmless ones in the `command` artifact, and the status handler drops `env`.
- `Redactor` replaces known secret values (vault password, extra vars and environment variables
  whose names look secret, values the caller names) with a mask in every event before
  ansible-runner writes it, and in the artifact files after the run (last line of defence).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

MASK = "<redacted>"
MIN_SECRET_LENGTH = 6
SECRET_NAME = re.compile(
    r"pass(word|wd|phrase)?|secret|token|api_?key|private_?key|credential|vault", re.IGNORECASE
)
# Paths, ids and ansible's own vault settings (ANSIBLE_VAULT_IDENTITY=default...) are not secrets.
NOT_SECRET_NAME = re.compile(
    r"(_file|_path|_dir|_id|_identity|_identity_list|_id_match)$|^ansible_ask_", re.IGNORECASE
)

# Environment variables whose values the `command` artifact keeps (useful, never secret).
ENV_KEEP = frozenset(
    {
        "PATH",
        "HOME",
        "PWD",
        "LANG",
        "USER",
        "ANSIBLE_CONFIG",
        "ANSIBLE_CALLBACK_PLUGINS",
        "ANSIBLE_STDOUT_CALLBACK",
        "ORIGINAL_STDOUT_CALLBACK",
        "ANSIBLE_RETRY_FILES_ENABLED",
        "ANSIBLE_HOST_KEY_CHECKING",
        "AWX_ISOLATED_DATA_DIR",
        "RUNNER_OMIT_EVENTS",
        "RUNNER_ONLY_FAILED_EVENTS",
        "CONTAINERS_CONF",
        "OPSBOOK_ROOT",
        "OPSBOOK_RUN_ID",
    }
)


def looks_secret(name: str) -> bool:
    return bool(SECRET_NAME.search(name)) and not NOT_SECRET_NAME.search(name)


def secrets_in_env(env: Mapping[str, str]) -> set[str]:
    return {value for name, value in env.items() if looks_secret(name)}


def secrets_in_vars(data: Any, inherited: bool = False) -> set[str]:
    """Scalar values under secret-looking keys, at any depth of a vars mapping."""
    found: set[str] = set()
    if isinstance(data, Mapping):
        for key, value in data.items():
            found |= secrets_in_vars(value, inherited or looks_secret(str(key)))
    elif isinstance(data, list | tuple):
        for value in data:
            found |= secrets_in_vars(value, inherited)
    elif inherited and isinstance(data, str | int | float) and not isinstance(data, bool):
        found.add(str(data))
    return found


def redact_env(env: Mapping[str, Any]) -> dict[str, str]:
    return {k: (str(v) if k in ENV_KEEP else MASK) for k, v in env.items()}


class Redactor:
    """Replaces known secret values (at least MIN_SECRET_LENGTH long) with MASK."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values = {s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_LENGTH}
        # JSON files escape some characters: look for the escaped spelling too.
        values |= {json.dumps(s)[1:-1] for s in list(values)}
        self._secrets = sorted(values, key=len, reverse=True)

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def text(self, value: str) -> str:
        for secret in self._secrets:
            if secret in value:
                value = value.replace(secret, MASK)
        return value

    def scrub(self, obj: Any) -> Any:
        """Scrub strings in place inside dicts/lists (so callers' references see the change)."""
        if not self._secrets:
            return obj
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            for key, value in list(obj.items()):
                new_key = self.text(key) if isinstance(key, str) else key
                if new_key != key:
                    del obj[key]
                obj[new_key] = self.scrub(value)
        elif isinstance(obj, list):
            obj[:] = [self.scrub(v) for v in obj]
        return obj

    def scrub_file(self, path: Path) -> bool:
        """Rewrite `path` without secrets; True when it contained any."""
        if not self._secrets:
            return False
        try:
            data = path.read_text(encoding="utf-8", errors="surrogateescape")
        except OSError:
            return False
        clean = self.text(data)
        if clean == data:
            return False
        _atomic_write(path, clean)
        return True

    def scrub_tree(self, root: Path) -> list[Path]:
        """Scrub every regular file under `root`; returns the files that had to change."""
        if not self._secrets:
            return []
        return [p for p in sorted(root.rglob("*")) if p.is_file() and self.scrub_file(p)]


def rewrite_command_artifact(path: Path, redactor: Redactor) -> None:
    """ansible-runner dumps the full environment into artifacts/<ident>/command: redact it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    data["env"] = redact_env(data.get("env") or {})
    data["command"] = [redactor.text(str(arg)) for arg in data.get("command") or []]
    _atomic_write(path, json.dumps(data, ensure_ascii=False))


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.opsbook-tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as handle:
        handle.write(text)
    tmp.replace(path)
