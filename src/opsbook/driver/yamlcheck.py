"""YAML and JSON read by ansible's own loader (DataLoader), so opsbook accepts exactly what
ansible accepts: its tags (!unsafe, !vault), its error messages with line and column."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ansible.errors import AnsibleError
from ansible.parsing.dataloader import DataLoader
from ansible.parsing.vault import is_encrypted_file

YamlError = AnsibleError


def load_yaml(text: str) -> Any:
    return DataLoader().load(text)


def load_yaml_file(path: Path) -> Any:
    """Parse a file; errors name the file, line and column."""
    return DataLoader().load_from_file(str(path), cache="none")


def describe(exc: AnsibleError) -> str:
    """ansible's message and where it points (path:line:column), as one line."""
    origin = f" ({exc.obj})" if exc.obj is not None else ""
    return f"{exc.message}{origin}"


def is_vault_encrypted(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return bool(is_encrypted_file(handle))
    except OSError:
        return False
