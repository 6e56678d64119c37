"""Fixtures for the ssh role's lab tests (helpers live in ssh_helpers.py, importable here)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsbook.lab import lab as labmod

sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="module")
def lab(request: pytest.FixtureRequest) -> Iterator[labmod.Lab]:
    """A lab with the test module's NODES, named after this process, always torn down."""
    specs = [labmod.NodeSpec.parse(s) for s in request.module.NODES]
    name = f"pytest-ssh-{os.getpid()}"
    try:
        yield labmod.up(name, specs, log=lambda _m: None)
    finally:
        labmod.down(name, log=lambda _m: None)
