"""Check a run's playbook, inventory and vault options in Python, before ansible starts."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from opsbook.driver.ansiblecfg import config_path, default_inventory
from opsbook.driver.errors import InvalidInput
from opsbook.driver.yamlcheck import YamlError, describe, load_yaml_file
from opsbook.paths import playbooks_dir

_YAML_SUFFIXES = (".yml", ".yaml", ".json")


def resolve_playbook(name: str | os.PathLike[str]) -> Path:
    """A playbook given as a path (absolute or relative to cwd) or by name under playbooks/."""
    given = Path(name).expanduser()
    if given.is_file():
        return given.resolve()
    base = playbooks_dir()
    if not given.is_absolute():
        for candidate in (base / given, base / f"{given}.yml", base / f"{given}.yaml"):
            if candidate.is_file():
                return candidate.resolve()
    known = sorted(p.name for p in base.glob("*.yml")) if base.is_dir() else []
    hint = f" (playbooks: {', '.join(known)})" if known else ""
    raise InvalidInput(f"unknown playbook {str(name)!r}: no such file here or in {base}{hint}")


def check_playbook(path: Path) -> Path:
    """The playbook exists, is YAML, and is a list of plays."""
    if not path.is_file():
        raise InvalidInput(f"playbook {path} does not exist")
    try:
        data = load_yaml_file(path)
    except YamlError as exc:
        raise InvalidInput(f"playbook {path} has a YAML syntax error: {describe(exc)}") from exc
    if not isinstance(data, list) or not all(isinstance(play, dict) for play in data):
        raise InvalidInput(f"playbook {path} is not a list of plays")
    return path.resolve()


def _is_host_list(source: str) -> bool:
    return "," in source and not Path(source).exists()


def check_inventory(sources: Sequence[str]) -> list[str]:
    """Absolute inventory sources; defaults to ansible.cfg's. YAML/JSON files must parse.

    ansible only warns about an inventory it cannot parse and then matches no host, so a
    broken or missing inventory is caught here instead.
    """
    chosen = list(sources) or default_inventory()
    if not chosen:
        raise InvalidInput(f"no inventory: pass -i/--inventory or set one in {config_path()}")
    resolved = []
    for source in chosen:
        if _is_host_list(source):
            resolved.append(source)
            continue
        path = Path(source).expanduser()
        if not path.exists():
            raise InvalidInput(f"inventory {source} does not exist")
        if path.is_file() and path.suffix in _YAML_SUFFIXES:
            try:
                load_yaml_file(path)
            except YamlError as exc:
                raise InvalidInput(
                    f"inventory {source} is not valid YAML: {describe(exc)}"
                ) from exc
        resolved.append(str(path.resolve()))
    return resolved


def check_vault_password_file(path: str | os.PathLike[str] | None) -> Path | None:
    """--vault-password-file, else $ANSIBLE_VAULT_PASSWORD_FILE (which ansible reads itself)."""
    if path is not None:
        given = Path(path).expanduser()
        if not given.exists():
            raise InvalidInput(f"vault password file {path} does not exist")
        return given.resolve()
    env = os.environ.get("ANSIBLE_VAULT_PASSWORD_FILE")
    if env and not Path(env).expanduser().exists():
        raise InvalidInput(f"ANSIBLE_VAULT_PASSWORD_FILE={env} does not exist")
    return None
