"""requirements.yml lists every collection the content uses, and the installed ones satisfy it."""

from __future__ import annotations

import functools
import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from opsbook.paths import project_root

ROOT = project_root()
CONTENT_DIRS = ("roles", "playbooks", "molecule")
# Plugins named in Python code or settings (callbacks such as ansible.posix.json).
PLUGIN_REFERENCE = re.compile(r"\b([a-z_]+\.[a-z_]+)\.[a-z_0-9]+\b")
FQCN = re.compile(r"^\s*-?\s*(?:name:\s*)?([a-z_]+\.[a-z_]+)\.[a-z_0-9]+:", re.MULTILINE)
BUILTIN = {"ansible.builtin", "ansible.legacy"}


def _requirements() -> dict[str, SpecifierSet]:
    data = yaml.safe_load((ROOT / "requirements.yml").read_text())
    return {c["name"]: SpecifierSet(c["version"]) for c in data["collections"]}


@functools.cache
def _installed() -> dict[str, Version]:
    out = subprocess.run(
        ["ansible-galaxy", "collection", "list", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found: dict[str, Version] = {}
    for collections in json.loads(out).values():
        for name, info in collections.items():
            found.setdefault(name, Version(info["version"]))
    return found


@functools.cache
def _used_collections() -> set[str]:
    used: set[str] = set()
    for directory in CONTENT_DIRS:
        for path in (ROOT / directory).rglob("*.yml"):
            # variables, never modules: a sysctl key such as kernel.yama.ptrace_scope looks like one
            if {"defaults", "vars"} & set(path.relative_to(ROOT).parts):
                continue
            used.update(FQCN.findall(path.read_text()))
    installed = set(_installed())
    python = [*(ROOT / "src").rglob("*.py"), *(ROOT / "bench").rglob("*.py")]
    for path in [*python, *(ROOT / "molecule").rglob("*.yml")]:
        used.update(c for c in PLUGIN_REFERENCE.findall(path.read_text()) if c in installed)
    return used - BUILTIN


def test_installed_collections_satisfy_requirements() -> None:
    installed = _installed()
    for name, spec in _requirements().items():
        assert name in installed, f"{name} is not installed"
        assert installed[name] in spec, f"{name} {installed[name]} does not satisfy {spec}"


def test_every_used_collection_is_listed() -> None:
    used = _used_collections()
    missing = used - set(_requirements())
    assert not missing, f"collections used but not in requirements.yml: {sorted(missing)}"


@pytest.mark.parametrize("name", sorted(_requirements()))
def test_listed_collection_is_used(name: str) -> None:
    assert name in _used_collections(), f"{name} is listed in requirements.yml but never used"


def test_collections_dir_is_not_committed() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "collections"], capture_output=True, text=True, cwd=ROOT, check=True
    ).stdout.split()
    assert tracked in ([], ["collections/.gitkeep"])
    assert Path(ROOT / "collections").is_dir()
