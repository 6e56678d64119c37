"""Parse YAML the way ansible's files use it (custom tags such as !vault and !unsafe allowed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

VAULT_HEADER = "$ANSIBLE_VAULT;"

YamlError = yaml.YAMLError


class _Loader(yaml.SafeLoader):
    """SafeLoader that accepts any `!tag` (ansible's !vault, !unsafe...) as its plain value."""


def _any_tag(loader: _Loader, _suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node)
    return None


_Loader.add_multi_constructor("!", _any_tag)


def load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass


def load_yaml_file(path: Path) -> Any:
    """Parse a file; errors name the file, line and column."""
    try:
        with path.open(encoding="utf-8") as handle:
            return yaml.load(handle, Loader=_Loader)  # a SafeLoader subclass
    except (OSError, UnicodeDecodeError) as exc:
        raise yaml.YAMLError(f"cannot read {path}: {exc}") from exc


def is_vault_encrypted(path: Path) -> bool:
    try:
        with path.open("r", encoding="utf-8", errors="replace") as handle:
            return handle.read(len(VAULT_HEADER)) == VAULT_HEADER
    except OSError:
        return False
