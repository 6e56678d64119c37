"""Read the few ansible.cfg settings the driver needs (the file ansible itself will use)."""

from __future__ import annotations

import configparser
import os
from pathlib import Path

from opsbook.paths import project_root


def config_path() -> Path:
    """$ANSIBLE_CONFIG when the user set it, else the project's ansible.cfg."""
    env = os.environ.get("ANSIBLE_CONFIG")
    return Path(env).expanduser().resolve() if env else project_root() / "ansible.cfg"


def read_setting(section: str, key: str, path: Path | None = None) -> str | None:
    cfg_path = path or config_path()
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";",))
    try:
        parser.read(cfg_path, encoding="utf-8")
    except configparser.Error:
        return None
    value = parser.get(section, key, fallback=None)
    return value.strip() if value is not None else None


def default_inventory() -> list[str]:
    """Inventory sources ansible would use without -i: $ANSIBLE_INVENTORY, else ansible.cfg's.

    Relative paths in ansible.cfg are resolved against the file's directory, as ansible does.
    """
    env = os.environ.get("ANSIBLE_INVENTORY")
    if env:
        return [s.strip() for s in env.split(",") if s.strip()]
    cfg = config_path()
    value = read_setting("defaults", "inventory", cfg)
    if not value:
        return []
    sources = []
    for item in (s.strip() for s in value.split(",")):
        if item:
            path = Path(item).expanduser()
            sources.append(str(path if path.is_absolute() else cfg.parent / path))
    return sources
